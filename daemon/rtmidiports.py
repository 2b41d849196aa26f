"""The python-rtmidi backend: CoreMIDI, ALSA and WinMM ports (JACK has its own, :mod:`affetto.daemon.jackports`).

- The input callback (rtmidi's thread) only parses and ``put_nowait``s into
  the conductor's bounded inbox; overflow is dropped and counted.
- Timestamps come from rtmidi's delta times (the backend's own clock),
  mapped to ``time.monotonic_ns`` by the shared
  :class:`~affetto.daemon.timebase.OffsetTracker` (the smallest observed
  callback delay, leaking up slowly), so a callback held up waiting for the
  GIL does not shift them.
- Ports open ``"<name> in"`` / ``"<name> out"`` as virtual ports, or attach
  to existing ones by exact name or unique substring. Windows has no virtual
  ports: the error points to loopMIDI.
"""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Callable

from affetto.daemon.midiparse import MidiParser
from affetto.daemon.portnames import find_port
from affetto.daemon.timebase import OffsetTracker
from affetto.errors import PortError
from affetto.quiet import quiet_fds

LOOPMIDI = "https://www.tobias-erichsen.de/software/loopmidi.html"
STAMP_LEAK_NS = 20_000  # per message: lets the timestamp anchor follow a slowly drifting backend clock


def _rtmidi():
    try:
        import rtmidi
    except ImportError as err:  # pragma: no cover - a dependency
        raise PortError("python-rtmidi is not installed (pip install python-rtmidi)") from err
    return rtmidi


def api_constant(name: str) -> int:
    """rtmidi's constant for an API it serves here (JACK is served by jackports)."""
    rtmidi = _rtmidi()
    return {
        "coremidi": rtmidi.API_MACOSX_CORE,
        "alsa": rtmidi.API_LINUX_ALSA,
        "winmm": rtmidi.API_WINDOWS_MM,
    }[name]


def probe(name: str) -> str | None:
    """None when rtmidi's API ``name`` works here, else the reason it does not."""
    rtmidi = _rtmidi()
    api = api_constant(name)
    if api not in rtmidi.get_compiled_api():
        return "not compiled into this python-rtmidi"
    try:
        with quiet_fds():
            probe = rtmidi.MidiOut(rtapi=api, name="affetto-probe")
            probe.get_port_count()
            del probe
    except Exception as err:  # rtmidi raises its own SystemError subclasses here
        hint = {"alsa": " (no ALSA sequencer: /dev/snd/seq?)"}
        return f"{err}{hint.get(name, '')}"
    return None


def list_ports(api: str) -> tuple[list[str], list[str]]:
    """(input port names, output port names) for one of rtmidi's APIs."""
    rtmidi = _rtmidi()
    try:
        with quiet_fds():
            midi_in = rtmidi.MidiIn(rtapi=api_constant(api), name="affetto-list")
            midi_out = rtmidi.MidiOut(rtapi=api_constant(api), name="affetto-list")
        return midi_in.get_ports(), midi_out.get_ports()
    except Exception as err:
        raise PortError(f"cannot list {api} MIDI ports: {err}") from err


def _stamper() -> Callable[[float], int]:
    """Monotonic timestamps from backend delta times (see the module docstring)."""
    tracker = OffsetTracker(leak_ns=STAMP_LEAK_NS)
    acc = 0

    def stamp(delta_s: float) -> int:
        nonlocal acc
        acc += int(delta_s * 1e9)
        return acc + tracker.sample(acc, time.monotonic_ns())

    return stamp


class InputHandler:
    """The rtmidi input callback: parse and ``put_nowait`` into the bounded inbox, nothing else."""

    def __init__(self, inbox: queue.Queue) -> None:
        self.inbox = inbox
        self.parser = MidiParser()
        self._stamp = _stamper()

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
    """An rtmidi input port feeding the inbox through :class:`InputHandler`."""

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

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._in.cancel_callback()
            self._in.close_port()
        del self._in


class MidiOutput:
    """An rtmidi output port; messages go out when sent (there is no frame to place them on)."""

    timed = False

    def __init__(self, api: str, client_name: str, *, port: str | None, virtual_name: str) -> None:
        rtmidi = _rtmidi()
        self.api = api
        try:
            self._out = rtmidi.MidiOut(rtapi=api_constant(api), name=client_name)
            self.name = _open(self._out, api, port, virtual_name, "output")
        except PortError:
            raise
        except Exception as err:
            raise PortError(f"cannot open MIDI output ({api}): {err}") from err

    def send(self, message: list[int]) -> None:
        try:
            self._out.send_message(message)
        except Exception as err:
            raise PortError(f"MIDI send failed: {err}") from err

    def drain(self, periods: int) -> None:
        """Nothing to wait for: rtmidi hands messages to the system as they are sent."""

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._out.close_port()
        del self._out


class MidiPorts:
    """An rtmidi input and output together, as a context manager (the APIs other than JACK)."""

    lost = False  # rtmidi's servers (CoreMIDI, ALSA, WinMM) do not go away under a running process

    def __init__(
        self,
        api: str,
        *,
        port_name: str = "affetto",
        in_port: str | None = None,
        out_port: str | None = None,
        inbox: queue.Queue | None = None,
    ) -> None:
        self.api = api
        self.port_name = port_name
        self.in_port = in_port
        self.out_port = out_port
        self.inbox = inbox if inbox is not None else queue.Queue(maxsize=4096)
        self.input: MidiInput | None = None
        self.output: MidiOutput | None = None

    @property
    def backend(self) -> str:
        """What carries the MIDI, for the log."""
        return f"python-rtmidi ({self.api})"

    def open(self) -> MidiPorts:
        try:
            with quiet_fds():
                self.output = MidiOutput(
                    self.api, self.port_name, port=self.out_port, virtual_name=f"{self.port_name} out"
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

    def close(self) -> None:
        if self.output is not None:
            self.output.close()
            self.output = None
        if self.input is not None:
            self.input.close()
            self.input = None

    def __enter__(self) -> MidiPorts:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
