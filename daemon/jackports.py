"""Native JACK MIDI through JACK-Client: input stamped at its frame, output placed on its frame.

Split by concern: :mod:`affetto.daemon.jacktime` (frames <-> monotonic ns, loading JACK-Client),
:mod:`affetto.daemon.jackoutput` (the output queue) and this module (the client's lifecycle).

rtmidi's JACK backend stamps input when its process callback runs and writes all
output at frame 0 of the next period, so each direction carries up to a period
of jitter. Here one JACK client ``<name>`` owns a MIDI input port ``<name> in``
and an output port ``<name> out`` and does both itself.

- The process callback runs in JACK's thread, in Python, so it is kept short:
  it reads incoming events, stamps each with the monotonic time of *its* frame,
  parses them and ``put_nowait``s into the conductor's bounded inbox (overflow
  is dropped and counted, it never blocks), then writes every queued outgoing
  message whose time falls in this period at its exact frame offset.
- Output: queued and placed on the frame of each message's time
  (:mod:`affetto.daemon.jackoutput`, with the writing again of releases after
  an xrun); time: JACK's frames <-> ``time.monotonic_ns``
  (:mod:`affetto.daemon.jacktime`). This module is the client's lifecycle:
  open, the process callback, close, and the server's loss and return.
- Loss of the server: the shutdown callback (a JACK thread) sets flags, bumps
  :attr:`JackMidiPorts.generation` and calls ``on_lost``, nothing else. From then
  on sends raise :class:`PortError` and the dead client is never closed or
  freed. A watcher thread logs the loss and, every ``retry_s``, tries the server
  again; when it answers, a new client registers the same port names, and the
  connections our ports had (kept from JACK's port-connect notifications) are
  made again, each as soon as its other end exists (a DAW restarted with the
  server comes back a little later). Messages queued before the loss are
  dropped, ``generation`` moves on, and the conductor, which watches it,
  releases what it owns through the new client and starts its bars over.
- Attach mode (``--in``/``--out``): the ports are still our own, connected to the
  named JACK ports (exact name or unique substring, as :func:`ports.find_port`).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from affetto.daemon.jackoutput import JackOutput
from affetto.daemon.jacktime import NEED_JACK_CLIENT, JackTime, import_jack
from affetto.daemon.midiparse import MidiParser
from affetto.daemon.portnames import find_port
from affetto.errors import PortError
from affetto.quiet import quiet_fds

__all__ = ["NEED_JACK_CLIENT", "JackInput", "JackMidiPorts", "JackOutput", "JackTime", "import_jack", "list_ports",
           "open_client", "probe"]

log = logging.getLogger(__name__)

RETRY_S = 0.5  # while the server is gone, try it again this often; also how often lost connections are retried

_GRAVEYARD: list[object] = []


def _leak(obj: object) -> None:
    """Keep ``obj`` alive until the process ends: closing or freeing a client whose server died can crash."""
    _GRAVEYARD.append(obj)
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))


def open_client(name: str) -> Any:
    """A jack.Client called ``name`` on the running server (never starts one); PortError if none."""
    jack = import_jack()
    try:
        with quiet_fds():
            return jack.Client(name, no_start_server=True)
    except jack.JackError as err:
        raise PortError(f"cannot connect to the JACK server (is one running?): {err}") from err


class JackInput:
    """affetto's JACK MIDI input as the service sees it: a name and the parser's trouble counters."""

    def __init__(self, name: str, parser: MidiParser) -> None:
        self.name = name
        self.parser = parser


class JackMidiPorts:
    """One JACK client with a MIDI input and output port, as a context manager (the MidiPorts surface)."""

    def __init__(
        self,
        name: str = "affetto",
        *,
        in_port: str | None = None,
        out_port: str | None = None,
        inbox: queue.Queue | None = None,
        on_lost: Callable[[str], None] | None = None,
        drain_periods: int = 4,
        retry_s: float = RETRY_S,
    ) -> None:
        self.port_name = name
        self.in_port = in_port
        self.out_port = out_port
        self.inbox = inbox if inbox is not None else queue.Queue(maxsize=4096)
        self.on_lost = on_lost
        self.drain_periods = drain_periods
        self.parser = MidiParser()
        self.trouble = self.parser.trouble  # one set of counters, logged by the conductor
        self.reason = ""
        self.last_error: Exception | None = None
        self._lost = threading.Event()
        self.cycles = 0  # process callbacks run so far
        self.xruns = 0  # xruns JACK reported
        self._active = False
        self.client: Any = None
        self.time: JackTime | None = None
        self.input: JackInput | None = None
        self.output: JackOutput | None = None
        self.retry_s = retry_s
        self.generation = 0  # bumped at every loss and every return of the server
        self.reconnects = 0
        # ("in", the port feeding our input) and ("out", a port our output feeds): by role, so they are
        # made again even if the server gives the new client another name
        self._connections: set[tuple[str, str]] = set()
        self._missing: set[tuple[str, str]] = set()  # to make again once the other end exists
        self._closing = threading.Event()
        self._watcher: threading.Thread | None = None
        self._parking = ParkedProcess(self._process)

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    @property
    def connections(self) -> dict[str, list[str]]:
        """The ports feeding our input (``"in"``) and fed by our output (``"out"``), as JACK last told."""
        pairs = tuple(self._connections)  # one copy: JACK's notification thread changes the set
        return {role: sorted(other for r, other in pairs if r == role) for role in ("in", "out")}

    @property
    def backend(self) -> str:
        jack = import_jack()
        return f"native JACK MIDI (JACK-Client {jack.__version__}), frame-accurate"

    def open(self) -> JackMidiPorts:
        jack = import_jack()
        client = open_client(self.port_name)
        try:
            self._setup(client)
            self.input = JackInput(self._in.name, self.parser)
            if self.in_port is not None:
                self.input.name = f"{self._attach(self.in_port, 'input')} -> {self._in.name}"
            if self.out_port is not None:
                self.output.name = f"{self._out.name} -> {self._attach(self.out_port, 'output')}"  # type: ignore[union-attr]
            self._remember_connections()
        except BaseException as err:
            self.close()
            if isinstance(err, jack.JackError):
                raise PortError(f"cannot set up the JACK MIDI ports: {err}") from err
            raise
        self._watcher = threading.Thread(target=self._watch, name="affetto-jack-watch", daemon=True)
        self._watcher.start()
        return self

    def _setup(self, client: Any) -> None:
        """Register our ports on ``client``, set the callbacks and activate (at open and after a return)."""
        jack = import_jack()
        self.client = self._client = client  # _client: the callback's, kept
        self._in = client.midi_inports.register(f"{self.port_name} in")
        self._out = client.midi_outports.register(f"{self.port_name} out")
        self.time = JackTime(client)
        self._full = jack.JackError
        period_ns = int(client.blocksize * 1e9 / client.samplerate)
        if self.output is None:
            self.output = JackOutput(self, self._out.name, period_ns)
        elif period_ns != self.output.period_ns:
            log.warning(
                "the JACK server came back with a period of %.1f ms (was %.1f ms): restart affetto "
                "to hand events over early enough for it",
                period_ns / 1e6,
                self.output.period_ns / 1e6,
            )
        client.set_shutdown_callback(self._shutdown)
        client.set_xrun_callback(self._xrun)
        client.set_port_connect_callback(self._port_connect)
        self._parking = ParkedProcess(self._process, (self._out,))
        client.set_process_callback(self._parking)
        client.activate()
        client.get_ports()  # lets JACK-Client know existing ports, so connect notifications name them
        self._active = True

    def _remember_connections(self) -> None:
        for role, port in (("in", self._in), ("out", self._out)):
            for other in port.connections:
                self._connections.add((role, other.name))

    def _port_connect(self, a: Any, b: Any, connect: bool) -> None:
        # JACK's notification thread: bookkeeping only (a is the source, b the destination)
        if a is None or b is None or self.lost:
            return
        if b.name == self._in.name:
            pair = ("in", a.name)
        elif a.name == self._out.name:
            pair = ("out", b.name)
        else:
            return
        if connect:
            self._connections.add(pair)
        else:
            self._connections.discard(pair)

    # -- the watcher thread: loss, return, connections ----------------------------------
    def _watch(self) -> None:
        seen = self.generation
        while not self._closing.wait(self.retry_s):
            try:
                if self.lost:
                    if seen != self.generation:
                        seen = self.generation
                        log.error(
                            "the JACK server went away (%s): the model stays loaded; waiting for the server "
                            "to come back (Ctrl-C to quit)",
                            self.reason,
                        )
                    if self._reconnect():
                        seen = self.generation
                elif self._missing:
                    self._restore_connections()
            except Exception as err:  # never let the watcher die: the next round tries again
                self.trouble[f"JACK reconnection failed ({type(err).__name__})"] += 1
                self.last_error = err

    def _reconnect(self) -> bool:
        """One try: a new client with the same ports if the server answers; True when back."""
        try:
            client = open_client(self.port_name)
        except PortError:
            return False
        old = self._client
        self._active = False
        output = self.output
        if output is not None:  # what was queued for the old server would sound late now: drop it
            output.forget()
        try:
            self._setup(client)
        except Exception as err:
            log.warning("the JACK server answered but the ports could not be set up again: %s", err)
            with contextlib.suppress(Exception):
                client.close()
            return False
        if old is not None:
            _leak(old)
        self._missing = set(self._connections)
        self._connections = set()
        self.reconnects += 1
        self._lost.clear()
        self.generation += 1
        log.warning("the JACK server is back: ports %r and %r registered again", self._in.name, self._out.name)
        self._restore_connections()
        return True

    def _restore_connections(self) -> None:
        """Make again the connections our ports had, those whose other end exists by now."""
        existing = {p.name for p in self.client.get_ports(is_midi=True)}
        for role, other in sorted(self._missing):
            if other not in existing:
                continue
            source, dest = (other, self._in.name) if role == "in" else (self._out.name, other)
            try:
                self.client.connect(source, dest)
            except Exception as err:
                log.warning("could not connect %s -> %s again: %s", source, dest, err)
            else:
                log.info("connected again: %s -> %s", source, dest)
            self._missing.discard((role, other))
            self._connections.add((role, other))

    def _attach(self, wanted: str, direction: str) -> str:
        """Connect our port to the existing JACK MIDI port named ``wanted``; returns its full name."""
        own = f"{self.client.name}:"
        # our input reads from a JACK output port, our output writes to a JACK input port
        candidates = self.client.get_ports(is_midi=True, is_output=direction == "input", is_input=direction == "output")
        names = [p.name for p in candidates if not p.name.startswith(own)]
        other = names[find_port(names, wanted, direction)]
        if direction == "input":
            self.client.connect(other, self._in)
        else:
            self.client.connect(self._out, other)
        return other

    # -- JACK's threads --------------------------------------------------------------
    def _shutdown(self, status: object, reason: str) -> None:
        # a JACK thread: set flags only
        self.reason = str(reason) or "the JACK server shut down"
        self._lost.set()
        self.generation += 1
        if self.on_lost is not None:
            self.on_lost(self.reason)

    def _xrun(self, delayed_usecs: float) -> None:
        # JACK's notification thread: count only; the process callback resends
        self.xruns += 1

    def _process(self, frames: int) -> None:
        out = self._out
        try:
            out.clear_buffer()
            start_ns, ns_per_frame = self.time.cycle(self._client.last_frame_time, frames)  # type: ignore[union-attr]
            self._read(start_ns, ns_per_frame)
            self.output.write_cycle(out, start_ns, ns_per_frame, frames, self._full)  # type: ignore[union-attr]
            self.time.sample()  # type: ignore[union-attr]
        except Exception as err:  # an exception would make JACK stop calling us: count it and go on
            self.trouble[f"JACK process callback failed ({type(err).__name__})"] += 1
            self.last_error = err
        self.cycles += 1

    def _read(self, start_ns: int, ns_per_frame: float) -> None:
        feed, put = self.parser.feed, self.inbox.put_nowait
        for offset, data in self._in.incoming_midi_events():
            for item in feed(bytes(data), start_ns + int(offset * ns_per_frame)):
                try:
                    put(item)
                except queue.Full:
                    self.trouble["input queue full (messages dropped)"] += 1

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Let queued messages out (``drain_periods`` periods), then close; after a loss, never close."""
        self._closing.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=5.0)
        client = self.client
        if client is None:
            return
        if self._active and not self.lost and self.output is not None:
            self.output.drain(self.drain_periods)
        self.client = None
        if self.lost:
            _leak(client)
            return
        with contextlib.suppress(Exception):
            self._parking.deactivate(client)
            client.close()

    def __enter__(self) -> JackMidiPorts:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


class ParkedProcess:
    """A JACK process callback that can be parked before its client is deactivated.

    jack_deactivate cancels the thread that runs the process callback (JACK2 kills it); cancelled
    while it runs Python, that thread dies holding the GIL and the whole process hangs (seen in the
    JACK tests: the process thread gone, every other thread waiting for the GIL). :meth:`deactivate`
    therefore parks the callback first (it only clears ``outputs``, so nothing is sent twice), waits
    until a cycle has seen it parked, and deactivates then, when the thread waits between cycles."""

    def __init__(self, process: Callable[[int], None], outputs: tuple[Any, ...] = ()) -> None:
        self.process, self.outputs = process, outputs
        self.park = False
        self.parked = threading.Event()

    def __call__(self, frames: int) -> None:
        if self.park:
            for port in self.outputs:
                port.clear_buffer()
            self.parked.set()
            return
        self.process(frames)

    def deactivate(self, client: Any) -> bool:
        """Park, wait a few periods at most, deactivate; False if no cycle came (a stopped server)."""
        self.parked.clear()
        self.park = True
        try:
            period_s = client.blocksize / client.samplerate
        except Exception:  # a server gone: no cycle will come
            period_s = 0.0
        seen = self.parked.wait(max(0.05, 4 * period_s)) if period_s else False
        client.deactivate()
        return seen


def list_ports() -> tuple[list[str], list[str]]:
    """(ports affetto can read from, ports it can write to): JACK MIDI outputs and inputs."""
    client = open_client("affetto-list")
    try:
        sources = [p.name for p in client.get_ports(is_midi=True, is_output=True)]
        sinks = [p.name for p in client.get_ports(is_midi=True, is_input=True)]
    finally:
        with contextlib.suppress(Exception):
            client.close()
    return sources, sinks


def probe() -> str | None:
    """None when a JACK server answers, else why not."""
    try:
        client = open_client("affetto-probe")
    except PortError as err:
        return str(err)
    with contextlib.suppress(Exception):
        client.close()
    return None
