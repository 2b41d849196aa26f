"""MIDI ports through python-rtmidi: API choice, virtual or attached ports, JACK safety.

- The API is resolved to one that really works here (:func:`resolve_api`):
  rtmidi's own default can pick ALSA where there is no ALSA and fail deep
  inside, and JACK is never its default. ``auto`` tries, per platform, the
  APIs that can work and says what it tried when none does.
- :class:`MidiPorts` opens virtual ports ``"<name> in"`` / ``"<name> out"``, or
  attaches to existing ports by exact name or unique substring. Windows has
  no virtual ports: the error points to loopMIDI.
- The input callback (rtmidi's thread) only parses and ``put_nowait``s into
  the conductor's bounded inbox; overflow is dropped and counted.
- Timestamps: from rtmidi's delta times (the backend's own clock, e.g. JACK's
  cycle time), anchored to ``time.monotonic_ns`` by the smallest observed
  callback delay, so a callback held up waiting for the GIL does not shift them.
- JACK: if the server dies, rtmidi's send spins forever holding the GIL and
  closing a dead port crashes the process. A JACK-Client watch client's
  shutdown callback flags the loss within milliseconds; from then on sends
  raise :class:`PortError` and the dead rtmidi objects are never closed or
  freed. Messages reach JACK at the next period, so :meth:`MidiOutput.drain`
  waits a few periods (by JACK's frame clock) before a port is closed.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator

from affetto.daemon.midiparse import MidiParser
from affetto.errors import PortError

log = logging.getLogger(__name__)

LOOPMIDI = "https://www.tobias-erichsen.de/software/loopmidi.html"
_API_NAMES = ("coremidi", "alsa", "jack", "winmm")
_AUTO_ORDER = {"linux": ("jack", "alsa"), "darwin": ("coremidi", "jack"), "win32": ("winmm",)}
STAMP_LEAK_NS = 20_000  # lets the timestamp anchor follow a slowly drifting backend clock


def _rtmidi():
    try:
        import rtmidi
    except ImportError as err:  # pragma: no cover - a dependency
        raise PortError("python-rtmidi is not installed (pip install python-rtmidi)") from err
    return rtmidi


def api_constant(name: str) -> int:
    rtmidi = _rtmidi()
    return {
        "coremidi": rtmidi.API_MACOSX_CORE,
        "alsa": rtmidi.API_LINUX_ALSA,
        "jack": rtmidi.API_UNIX_JACK,
        "winmm": rtmidi.API_WINDOWS_MM,
    }[name]


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence C libraries (libjack, ALSA) that print to fd 2 while we probe."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def probe_api(name: str) -> str | None:
    """None when ``name`` works here, else the reason it does not."""
    rtmidi = _rtmidi()
    api = api_constant(name)
    if api not in rtmidi.get_compiled_api():
        return "not compiled into this python-rtmidi"
    try:
        with _quiet_stderr():
            probe = rtmidi.MidiOut(rtapi=api, name="affetto-probe")
            probe.get_port_count()
            del probe
    except Exception as err:  # rtmidi raises its own SystemError subclasses here
        hint = {"jack": " (is a JACK server running?)", "alsa": " (no ALSA sequencer: /dev/snd/seq?)"}
        return f"{err}{hint.get(name, '')}"
    return None


def resolve_api(name: str) -> str:
    """The API to use for ``name`` (``auto`` or an API name), checked to work; raises PortError."""
    if name != "auto":
        if name not in _API_NAMES:
            raise PortError(f"midi api must be one of auto, {', '.join(_API_NAMES)}, got {name!r}")
        why = probe_api(name)
        if why is not None:
            raise PortError(f"MIDI API {name} does not work here: {why}")
        return name
    platform = "linux" if sys.platform.startswith("linux") else sys.platform
    tried = []
    for candidate in _AUTO_ORDER.get(platform, ("alsa", "jack")):
        why = probe_api(candidate)
        if why is None:
            return candidate
        tried.append(f"{candidate}: {why}")
    raise PortError("no MIDI API works here; tried " + "; ".join(tried))


def list_ports(api: str) -> tuple[list[str], list[str]]:
    """(input port names, output port names) for a resolved API."""
    rtmidi = _rtmidi()
    try:
        with _quiet_stderr():
            midi_in = rtmidi.MidiIn(rtapi=api_constant(api), name="affetto-list")
            midi_out = rtmidi.MidiOut(rtapi=api_constant(api), name="affetto-list")
        return midi_in.get_ports(), midi_out.get_ports()
    except Exception as err:
        raise PortError(f"cannot list {api} MIDI ports: {err}") from err


def find_port(names: list[str], wanted: str, direction: str) -> int:
    """Index of the port named ``wanted`` exactly, else of the one port containing it."""
    if wanted in names:
        return names.index(wanted)
    hits = [i for i, n in enumerate(names) if wanted.lower() in n.lower()]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        listing = ", ".join(repr(n) for n in names) or "none"
        raise PortError(f"no MIDI {direction} port matches {wanted!r}; available: {listing}")
    raise PortError(
        f"{wanted!r} matches several MIDI {direction} ports: "
        + ", ".join(repr(names[i]) for i in hits)
        + "; give more of the name"
    )


_GRAVEYARD: list[object] = []


def _leak(obj: object) -> None:
    """Keep an rtmidi object alive until the process ends: freeing it could crash."""
    _GRAVEYARD.append(obj)
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))


class JackWatch:
    """A JACK-Client client that notices the server's shutdown and reads its frame clock."""

    def __init__(self, name: str, on_lost: Callable[[str], None] | None = None) -> None:
        try:
            import jack
        except (ImportError, OSError) as err:
            raise PortError(
                "the JACK API needs the JACK-Client package (pip install JACK-Client) so the daemon "
                f"notices a JACK server shutdown instead of hanging: {err}"
            ) from err
        self.lost = threading.Event()
        self.reason = ""
        self._on_lost = on_lost
        try:
            with _quiet_stderr():
                self.client = jack.Client(f"{name}-watch", no_start_server=True)
        except jack.JackError as err:
            raise PortError(f"cannot connect to the JACK server: {err}") from err
        self.client.set_shutdown_callback(self._shutdown)
        self.client.activate()
        self.blocksize = self.client.blocksize
        self.samplerate = self.client.samplerate

    @property
    def period_ns(self) -> int:
        return int(self.blocksize * 1e9 / self.samplerate)

    def _shutdown(self, status: object, reason: str) -> None:
        # a JACK thread: set flags only
        self.reason = str(reason) or "the JACK server shut down"
        self.lost.set()
        if self._on_lost is not None:
            self._on_lost(self.reason)

    def wait_periods(self, periods: int, timeout: float = 1.0) -> bool:
        """Wait until JACK's frame clock has moved ``periods`` periods on (False on loss or timeout)."""
        if self.lost.is_set():
            return False
        target = self.client.frame_time + periods * self.blocksize
        end = time.monotonic() + timeout
        while not self.lost.is_set() and time.monotonic() < end:
            if self.client.frame_time - target >= 0:
                return True
            time.sleep(self.period_ns / 4e9)
        return False

    def close(self) -> None:
        if self.lost.is_set():
            _leak(self.client)
            return
        with contextlib.suppress(Exception):
            self.client.deactivate()
            self.client.close()


class _Stamper:
    """Monotonic timestamps from backend delta times (see the module docstring)."""

    def __init__(self) -> None:
        self._acc = 0
        self._offset: int | None = None

    def __call__(self, delta_s: float) -> int:
        now = time.monotonic_ns()
        self._acc += int(delta_s * 1e9)
        observed = now - self._acc
        if self._offset is None or observed < self._offset + STAMP_LEAK_NS:
            self._offset = observed
        else:
            self._offset += STAMP_LEAK_NS
        return self._acc + self._offset


class InputHandler:
    """The input callback: parse and ``put_nowait`` into the bounded inbox, nothing else."""

    def __init__(self, inbox: queue.Queue) -> None:
        self.inbox = inbox
        self.parser = MidiParser()
        self._stamp = _Stamper()

    def __call__(self, event: tuple, data: object = None) -> None:
        message, delta = event
        t_ns = self._stamp(delta)
        for item in self.parser.feed(message, t_ns):
            try:
                self.inbox.put_nowait(item)
            except queue.Full:
                self.parser.trouble["input queue full (messages dropped)"] += 1


def _open(rt, api: str, port: str | None, virtual_name: str, direction: str) -> str:
    """Open a virtual port, or attach to an existing one by name or substring; returns its name."""
    if port is None:
        if api == "winmm":
            flag = "--in" if direction == "input" else "--out"
            raise PortError(
                f"Windows has no virtual MIDI ports: create one with loopMIDI ({LOOPMIDI}) and pass {flag}"
            )
        rt.open_virtual_port(virtual_name)
        return virtual_name
    names = rt.get_ports()
    index = find_port(names, port, direction)
    rt.open_port(index)
    return names[index]


class MidiInput:
    def __init__(
        self, api: str, client_name: str, inbox: queue.Queue, *, port: str | None, virtual_name: str
    ) -> None:
        rtmidi = _rtmidi()
        self.api = api
        self.handler = InputHandler(inbox)
        self.parser = self.handler.parser
        try:
            self._in = rtmidi.MidiIn(rtapi=api_constant(api), name=client_name, queue_size_limit=4096)
            self.name = _open(self._in, api, port, virtual_name, "input")
            self._in.ignore_types(sysex=True, timing=False, active_sense=True)
            self._in.set_callback(self.handler)
        except PortError:
            raise
        except Exception as err:
            raise PortError(f"cannot open MIDI input ({api}): {err}") from err

    def close(self, dead: bool = False) -> None:
        if dead:
            _leak(self._in)
            return
        with contextlib.suppress(Exception):
            self._in.cancel_callback()
            self._in.close_port()
        if self.api == "jack":
            _leak(self._in)  # RtMidi's JACK destructor frees buffers its process thread may still use
        del self._in


class MidiOutput:
    def __init__(
        self,
        api: str,
        client_name: str,
        *,
        port: str | None,
        virtual_name: str,
        watch: JackWatch | None = None,
    ) -> None:
        rtmidi = _rtmidi()
        self.watch = watch
        self.api = api
        try:
            self._out = rtmidi.MidiOut(rtapi=api_constant(api), name=client_name)
            self.name = _open(self._out, api, port, virtual_name, "output")
        except PortError:
            raise
        except Exception as err:
            raise PortError(f"cannot open MIDI output ({api}): {err}") from err

    @property
    def lost(self) -> bool:
        return self.watch is not None and self.watch.lost.is_set()

    def send(self, message: list[int]) -> None:
        if self.lost:
            raise PortError(f"the JACK server has gone away ({self.watch.reason})")  # type: ignore[union-attr]
        try:
            self._out.send_message(message)
        except Exception as err:
            raise PortError(f"MIDI send failed: {err}") from err

    def panic(self) -> None:
        """CC 123 (All Notes Off) and CC 120 (All Sound Off) on all 16 channels."""
        for channel in range(16):
            self.send([0xB0 | channel, 123, 0])
            self.send([0xB0 | channel, 120, 0])

    def drain(self, periods: int) -> None:
        """Wait until what was sent has left (JACK: ``periods`` periods of its frame clock)."""
        if self.watch is not None:
            self.watch.wait_periods(periods)

    def close(self) -> None:
        if self.lost:
            _leak(self._out)
            return
        with contextlib.suppress(Exception):
            self._out.close_port()
        if self.api == "jack":
            # RtMidi's JACK destructor frees its ring buffer before closing the client, while the
            # JACK thread may still read it: heap corruption, seen as "free(): invalid pointer"
            # aborts at exit. The port is closed; the object lives until the process ends.
            _leak(self._out)
        del self._out


class MidiPorts:
    """Input and output together, as a context manager; ``panic()`` on the output."""

    def __init__(
        self,
        api: str,
        *,
        port_name: str = "affetto",
        in_port: str | None = None,
        out_port: str | None = None,
        inbox: queue.Queue | None = None,
        on_lost: Callable[[str], None] | None = None,
        drain_periods: int = 4,
    ) -> None:
        self.api = api
        self.port_name = port_name
        self.in_port = in_port
        self.out_port = out_port
        self.inbox = inbox if inbox is not None else queue.Queue(maxsize=4096)
        self.on_lost = on_lost
        self.drain_periods = drain_periods
        self.watch: JackWatch | None = None
        self.input: MidiInput | None = None
        self.output: MidiOutput | None = None

    def open(self) -> MidiPorts:
        try:
            if self.api == "jack":
                self.watch = JackWatch(self.port_name, self.on_lost)
            with _quiet_stderr():
                self.output = MidiOutput(
                    self.api,
                    self.port_name,
                    port=self.out_port,
                    virtual_name=f"{self.port_name} out",
                    watch=self.watch,
                )
                self.input = MidiInput(
                    self.api,
                    self.port_name,
                    self.inbox,
                    port=self.in_port,
                    virtual_name=f"{self.port_name} in",
                )
        except BaseException:
            self.close()
            raise
        return self

    @property
    def lost(self) -> bool:
        return self.watch is not None and self.watch.lost.is_set()

    def panic(self) -> None:
        if self.output is not None and not self.lost:
            self.output.panic()

    def close(self) -> None:
        dead = self.lost
        if self.output is not None:
            if not dead:
                self.output.drain(self.drain_periods)
            self.output.close()
            self.output = None
        if self.input is not None:
            self.input.close(dead=dead)
            self.input = None
        if self.watch is not None:
            self.watch.close()
            self.watch = None

    def __enter__(self) -> MidiPorts:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
