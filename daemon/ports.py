"""MIDI ports: API choice, virtual or attached ports; JACK natively, the others through python-rtmidi.

- The API is resolved to one that really works here (:func:`resolve_api`):
  rtmidi's own default can pick ALSA where there is no ALSA and fail deep
  inside, and JACK is never its default. ``auto`` tries, per platform, the
  APIs that can work and says what it tried when none does.
- :func:`open_ports` picks the ports for the API; they open ``"<name> in"`` /
  ``"<name> out"``, or attach to existing ports by exact name or unique substring. Windows has
  no virtual ports: the error points to loopMIDI.
- JACK goes through :mod:`affetto.daemon.jackports` (JACK-Client): input is
  stamped at its own frame and output is placed on the frame of its deadline,
  where rtmidi's JACK backend adds up to a period of jitter each way. It also
  notices the loss of the server (sends then raise :class:`PortError`).
- CoreMIDI, ALSA and WinMM go through python-rtmidi. Its input callback
  (rtmidi's thread) only parses and ``put_nowait``s into the conductor's
  bounded inbox; overflow is dropped and counted. Timestamps come from
  rtmidi's delta times (the backend's own clock), anchored to
  ``time.monotonic_ns`` by the smallest observed callback delay, so a callback
  held up waiting for the GIL does not shift them.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from affetto.daemon.midiparse import MidiParser
from affetto.errors import PortError
from affetto.quiet import quiet_fds

if TYPE_CHECKING:
    from affetto.daemon.jackports import JackMidiPorts

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
    """rtmidi's constant for an API it serves here (JACK is served by jackports)."""
    rtmidi = _rtmidi()
    return {
        "coremidi": rtmidi.API_MACOSX_CORE,
        "alsa": rtmidi.API_LINUX_ALSA,
        "winmm": rtmidi.API_WINDOWS_MM,
    }[name]


def probe_api(name: str) -> str | None:
    """None when ``name`` works here, else the reason it does not."""
    if name == "jack":
        from affetto.daemon import jackports

        return jackports.probe()
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
    if api == "jack":
        from affetto.daemon import jackports

        return jackports.list_ports()
    rtmidi = _rtmidi()
    try:
        with quiet_fds():
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
    """The rtmidi input callback: parse and ``put_nowait`` into the bounded inbox, nothing else."""

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


def open_ports(
    api: str,
    *,
    port_name: str = "affetto",
    in_port: str | None = None,
    out_port: str | None = None,
    inbox: queue.Queue | None = None,
    on_lost: Callable[[str], None] | None = None,
    drain_periods: int = 4,
) -> MidiPorts | JackMidiPorts:
    """The ports for a resolved API, not yet open (use as a context manager).

    JACK gets :class:`affetto.daemon.jackports.JackMidiPorts` (one client,
    frame-accurate, ``on_lost`` called when the server goes away, ``drain_periods``
    waited before closing); the other APIs a pair of rtmidi ports.
    """
    if api == "jack":
        from affetto.daemon.jackports import JackMidiPorts

        return JackMidiPorts(port_name, in_port=in_port, out_port=out_port, inbox=inbox, on_lost=on_lost,
                             drain_periods=drain_periods)
    return MidiPorts(api, port_name=port_name, in_port=in_port, out_port=out_port, inbox=inbox)
