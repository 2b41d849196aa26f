"""Native JACK MIDI through JACK-Client: input stamped at its frame, output placed on its frame.

rtmidi's JACK backend stamps input when its process callback runs and writes all
output at frame 0 of the next period, so each direction carries up to a period
of jitter. Here one JACK client ``<name>`` owns a MIDI input port ``<name> in``
and an output port ``<name> out`` and does both itself.

- The process callback runs in JACK's thread, in Python, so it is kept short:
  it reads incoming events, stamps each with the monotonic time of *its* frame,
  parses them and ``put_nowait``s into the conductor's bounded inbox (overflow
  is dropped and counted, it never blocks), then writes every queued outgoing
  message whose time falls in this period at its exact frame offset.
- Output: ``send(message, at_ns=deadline)`` queues a message for the frame of
  ``deadline``; the scheduler hands events over :attr:`JackOutput.lead_ns`
  early so the callback that covers the deadline's frame already has them. A
  message without a time goes out at the first frame of the next period.
  ``discard_pending()`` drops queued messages: a panic calls it first, so a
  note-on handed over before the panic cannot sound after its note-off.
- Time: JACK's frame clock maps to its microsecond clock (``jack_frames_to_time``,
  the server's own filtered estimate of each period's start); JACK-Client does
  not wrap those functions, so three are declared here with cffi. JACK's clock
  maps to ``time.monotonic_ns`` by the shared
  :class:`~affetto.daemon.timebase.OffsetTracker`, read every period (a reading
  delayed by preemption only comes out larger, and the tracker keeps the
  smallest, leaking upward slowly so a drift between the two clocks is followed).
- Overruns (xruns): when a period overruns, JACK can lose what a client wrote
  in it, and a lost note-off is a stuck note. After JACK reports an xrun the
  callback writes again, at once, the releasing messages (note-offs, CC 123,
  CC 120) of the last few periods that no later note-on on the same key or
  channel has superseded; a duplicate release is harmless. :meth:`drain`
  waits for periods that really ran, and starts over after an xrun.
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
import ctypes.util
import functools
import heapq
import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from affetto.daemon.midi import ALL_NOTES_OFF, ALL_SOUND_OFF, CHANNEL, CONTROL_CHANGE, KIND, NOTE_OFF, NOTE_ON
from affetto.daemon.midiparse import MidiParser
from affetto.daemon.portnames import find_port
from affetto.daemon.timebase import OffsetTracker
from affetto.errors import PortError
from affetto.quiet import quiet_fds

log = logging.getLogger(__name__)

FRAME_MASK = 0xFFFFFFFF  # jack_nframes_t is 32 bits and wraps
OFFSET_LEAK_NS = 5_000  # per period: follows a drift of ~1 ms/s at 48 kHz / 256 frames
LEAD_MARGIN_NS = 2_000_000  # beyond two periods, for the scheduler's and the callback's wake-up jitter
LOCK_TIMEOUT_S = 0.5  # a producer never waits longer for the pending queue (the callback holds it µs)
RELEASING_CCS = (ALL_SOUND_OFF, ALL_NOTES_OFF)
RESEND_PERIODS = 8  # after an xrun, releases written this many periods back are written again
DRAIN_TIMEOUT_S = 2.0  # a close waits at most this long for its last messages (JACK may be stalled)
NEED_JACK_CLIENT = "pip install JACK-Client, or pip install 'affetto[jack]'"
RETRY_S = 0.5  # while the server is gone, try it again this often; also how often lost connections are retried

_GRAVEYARD: list[object] = []


def _leak(obj: object) -> None:
    """Keep ``obj`` alive until the process ends: closing or freeing a client whose server died can crash."""
    _GRAVEYARD.append(obj)
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))


def import_jack() -> Any:
    """The ``jack`` module (JACK-Client), or a PortError that says how to get it."""
    try:
        import jack
    except (ImportError, OSError) as err:
        raise PortError(
            f"the JACK MIDI API needs the JACK-Client package and libjack ({NEED_JACK_CLIENT}): {err}"
        ) from err
    return jack


@functools.cache
def _time_functions() -> tuple[Any, Any]:
    """(ffi, lib) with the JACK time functions JACK-Client does not wrap, from the libjack it loaded."""
    jack = import_jack()
    import cffi  # JACK-Client depends on it

    ffi = cffi.FFI()
    ffi.cdef(
        "uint64_t jack_get_time(void);"
        "uint64_t jack_frames_to_time(const void *client, uint32_t frames);"
        "uint32_t jack_time_to_frames(const void *client, uint64_t usecs);"
    )
    return ffi, ffi.dlopen(getattr(jack, "_libname", None) or ctypes.util.find_library("jack"))


def open_client(name: str) -> Any:
    """A jack.Client called ``name`` on the running server (never starts one); PortError if none."""
    jack = import_jack()
    try:
        with quiet_fds():
            return jack.Client(name, no_start_server=True)
    except jack.JackError as err:
        raise PortError(f"cannot connect to the JACK server (is one running?): {err}") from err


class JackTime:
    """JACK's frame clock <-> ``time.monotonic_ns`` for one client (see the module docstring)."""

    def __init__(self, client: Any) -> None:
        jack = import_jack()
        ffi, lib = _time_functions()
        # JACK-Client keeps the jack_client_t* in ``_ptr``; pass the same address to our declarations
        self._ptr = ffi.cast("void *", int(jack._ffi.cast("uintptr_t", client._ptr)))
        self._frames_to_time = lib.jack_frames_to_time
        self._time_to_frames = lib.jack_time_to_frames
        self._get_time = lib.jack_get_time
        self.rate = client.samplerate
        self.tracker = OffsetTracker(leak_ns=OFFSET_LEAK_NS)
        for _ in range(65):
            self.sample()

    @property
    def offset_ns(self) -> int:
        return self.tracker.offset_ns

    def sample(self) -> None:
        """One more reading of the offset; cheap enough for every period."""
        jack_us = self._get_time()
        self.tracker.sample(jack_us * 1000, time.monotonic_ns())

    def cycle(self, first_frame: int, frames: int) -> tuple[int, float]:
        """(monotonic ns of ``first_frame``, ns per frame) for the period that starts there."""
        t0 = self._frames_to_time(self._ptr, first_frame)
        t1 = self._frames_to_time(self._ptr, (first_frame + frames) & FRAME_MASK)
        ns_per_frame = (t1 - t0) * 1000 / frames if t1 > t0 else 1e9 / self.rate
        return t0 * 1000 + self.offset_ns, ns_per_frame

    def frame_ns(self, frame: int) -> int:
        """Monotonic ns of a JACK frame (near the current one)."""
        return self._frames_to_time(self._ptr, frame & FRAME_MASK) * 1000 + self.offset_ns

    def frame_at(self, t_ns: int) -> int:
        """The JACK frame of a monotonic time (near now)."""
        return self._time_to_frames(self._ptr, max(0, (t_ns - self.offset_ns) // 1000))


class JackInput:
    """affetto's JACK MIDI input as the service sees it: a name and the parser's trouble counters."""

    def __init__(self, name: str, parser: MidiParser) -> None:
        self.name = name
        self.parser = parser


class JackOutput:
    """Queued, frame-placed output; the owner's process callback calls :meth:`write_cycle`."""

    timed = True

    def __init__(self, owner: JackMidiPorts, name: str, period_ns: int) -> None:
        self._owner = owner
        self.name = name
        self.period_ns = period_ns
        self.lead_ns = 2 * period_ns + LEAD_MARGIN_NS
        self._lock = threading.Lock()
        self._pending: list[tuple[int, int, bytes, bool]] = []  # heap of (at_ns, seq, data, timed)
        self._due: list[tuple[int, int, bytes, bool]] = []  # the callback's own: this period's, or held over
        self._seq = itertools.count()
        self._written: deque[tuple[int, bytes]] = deque(maxlen=1024)  # (period, data), the callback's own
        self._xruns_handled = 0
        self.resent = 0  # releases written again after xruns

    @property
    def lost(self) -> bool:
        return self._owner.lost

    def send(self, message: list[int], at_ns: int | None = None) -> None:
        """Queue ``message`` for the frame of ``at_ns`` (monotonic ns), or for the next period without one."""
        if self._owner.lost:
            raise PortError(f"the JACK server has gone away ({self._owner.reason})")
        timed = at_ns is not None
        entry = (at_ns if timed else time.monotonic_ns(), next(self._seq), bytes(message), timed)
        if not self._lock.acquire(timeout=LOCK_TIMEOUT_S):
            raise PortError("the JACK output queue is stuck")
        try:
            heapq.heappush(self._pending, entry)
        finally:
            self._lock.release()

    def discard_pending(self) -> list[list[int]]:
        """Drop every queued message; returns them (a caller releases notes whose note-offs were among them)."""
        if not self._lock.acquire(timeout=LOCK_TIMEOUT_S):
            raise PortError("the JACK output queue is stuck")
        try:
            dropped = sorted(self._pending)
            self._pending.clear()
        finally:
            self._lock.release()
        return [list(entry[2]) for entry in dropped]

    def drain(self, periods: int, timeout: float = DRAIN_TIMEOUT_S) -> bool:
        """Wait until the queue is written out and ``periods`` more periods ran without an xrun
        (False on loss or timeout). Periods that ran, not JACK's frame clock: under load the clock
        moves on while no period writes anything."""
        owner = self._owner
        end = time.monotonic() + timeout
        target: int | None = None
        xruns = owner.xruns
        while not owner.lost and time.monotonic() < end:
            if owner.xruns != xruns:  # what was written may be lost: wait for the writes again
                target, xruns = None, owner.xruns
            if target is None and not self._pending and not self._due and self._xruns_handled == xruns:
                target = owner.cycles + periods
            if target is not None and owner.cycles >= target:
                return True
            time.sleep(self.period_ns / 4e9)
        return False

    def close(self) -> None:
        """Nothing of its own to close: the client goes with :meth:`JackMidiPorts.close`."""

    # -- JACK's thread ------------------------------------------------------------
    def write_cycle(self, port: Any, start_ns: int, ns_per_frame: float, frames: int, full: type) -> None:
        """Write this period's messages at their frames, in non-decreasing order (JACK requires it)."""
        due = self._due
        pending = self._pending
        if self._xruns_handled != self._owner.xruns:
            self._xruns_handled = self._owner.xruns
            self._resend_releases(start_ns)
        if pending:  # noqa: SIM102 (a locked queue waits a period; kept apart from the emptiness test)
            if self._lock.acquire(False):
                try:
                    limit = start_ns + (frames - 0.5) * ns_per_frame
                    while pending and pending[0][0] < limit:
                        due.append(heapq.heappop(pending))
                finally:
                    self._lock.release()
        if not due:
            return
        last = written = 0
        cycle = self._owner.cycles
        try:
            for at_ns, _seq, data, timed in due:
                offset = round((at_ns - start_ns) / ns_per_frame)
                if offset < 0 and timed:
                    self._owner.trouble["JACK output: a message came after its frame (sent a period late)"] += 1
                offset = min(max(offset, last), frames - 1)
                port.write_midi_event(offset, data)
                self._written.append((cycle, data))
                last = offset
                written += 1
        except full:
            self._owner.trouble["JACK output buffer full (messages held for the next period)"] += 1
        finally:
            del due[:written]

    def _resend_releases(self, start_ns: int) -> None:
        """Queue again, first, the recent releases no later note-on superseded (JACK reported an xrun)."""
        oldest = self._owner.cycles - RESEND_PERIODS
        again: list[bytes] = []
        sounding_after: set[tuple[int, int]] = set()  # (channel, pitch) started later; pitch -1: any
        for cycle, data in reversed(self._written):
            if cycle < oldest:
                break
            kind, channel = data[0] & KIND, data[0] & CHANNEL
            if kind == NOTE_ON and data[2] > 0:
                sounding_after.update(((channel, data[1]), (channel, -1)))
            elif kind in (NOTE_OFF, NOTE_ON):
                if (channel, data[1]) not in sounding_after:
                    again.append(data)
            elif kind == CONTROL_CHANGE and data[1] in RELEASING_CCS and (channel, -1) not in sounding_after:
                again.append(data)
        self.resent += len(again)
        self._due[:0] = [(start_ns, -1, data, False) for data in reversed(again)]


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
        client.set_process_callback(self._process)
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
            with output._lock:
                output._pending.clear()
            output._due.clear()
            output._written.clear()
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
            client.deactivate()
            client.close()

    def __enter__(self) -> JackMidiPorts:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


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
