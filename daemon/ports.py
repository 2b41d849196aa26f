"""MIDI ports: API choice and the factory; JACK natively, the others through python-rtmidi.

- The API is resolved to one that really works here (:func:`resolve_api`):
  rtmidi's own default can pick ALSA where there is no ALSA and fail deep
  inside, and JACK is never its default. ``auto`` tries, per platform, the
  APIs that can work and says what it tried when none does.
- :func:`open_ports` picks the backend for the API. The backends live in
  their own modules and never import each other (nor this one):
  :mod:`affetto.daemon.jackports` (JACK-Client: input stamped at its own frame,
  output placed on the frame of its deadline, where rtmidi's JACK backend adds
  up to a period of jitter each way; it also notices the loss of the server)
  and :mod:`affetto.daemon.rtmidiports` (CoreMIDI, ALSA and WinMM). Both name
  ports the same way (:mod:`affetto.daemon.portnames`) and stamp input through
  the shared :class:`~affetto.daemon.timebase.OffsetTracker`.
"""

from __future__ import annotations

import queue
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from affetto.daemon import rtmidiports
from affetto.daemon.portnames import find_port
from affetto.errors import PortError

if TYPE_CHECKING:
    from affetto.daemon.jackports import JackInput, JackMidiPorts, JackOutput
    from affetto.daemon.rtmidiports import MidiInput, MidiOutput, MidiPorts

__all__ = ["endpoints", "find_port", "list_ports", "open_ports", "probe_api", "resolve_api"]

_API_NAMES = ("coremidi", "alsa", "jack", "winmm")
_AUTO_ORDER = {"linux": ("jack", "alsa"), "darwin": ("coremidi", "jack"), "win32": ("winmm",)}


def probe_api(name: str) -> str | None:
    """None when ``name`` works here, else the reason it does not."""
    if name == "jack":
        from affetto.daemon import jackports  # lazy: JACK-Client and libjack load only for JACK

        return jackports.probe()
    return rtmidiports.probe(name)


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
    return rtmidiports.list_ports(api)


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
    return rtmidiports.MidiPorts(api, port_name=port_name, in_port=in_port, out_port=out_port, inbox=inbox)


def endpoints(ports: MidiPorts | JackMidiPorts) -> tuple[MidiInput | JackInput, MidiOutput | JackOutput]:
    """The input and the output of ``ports``, which must be open (both backends open the two together)."""
    if ports.input is None or ports.output is None:
        raise PortError("the MIDI ports are not open")
    return ports.input, ports.output
