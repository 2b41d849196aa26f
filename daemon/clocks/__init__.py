"""Clock sources as a family: one interface, one factory.

- :class:`~affetto.daemon.clocks.base.Clock`: the interface (a
  :class:`ClockState` to read, system messages to handle, a poll, ``begin`` when
  the daemon is ready, ``close``).
- :class:`InternalClock` (``clock = "internal"``): a fixed tempo, started when
  the daemon is ready.
- :class:`MidiClockFollower` (``"midi"``): a DAW's MIDI clock, transport and
  Song Position Pointer.
- :class:`~affetto.daemon.clocks.link.LinkClock` (``"link"``): an Ableton Link
  session (the binding is imported only for it).

Outside time bases (JACK's frames, Link's clock) reach ``monotonic_ns`` through
the one :class:`~affetto.daemon.timebase.OffsetTracker`.
"""

from __future__ import annotations

from affetto.daemon.clocks.base import (
    DEFAULT_BPM,
    NS_PER_MINUTE,
    Clock,
    ClockState,
    Transport,
    TransportEvent,
    bpm_to_ns_per_beat,
)
from affetto.daemon.clocks.internal import InternalClock
from affetto.daemon.clocks.midiclock import MidiClockFollower
from affetto.daemon.config import DaemonConfig

__all__ = [
    "DEFAULT_BPM",
    "NS_PER_MINUTE",
    "Clock",
    "ClockState",
    "InternalClock",
    "MidiClockFollower",
    "Transport",
    "TransportEvent",
    "bpm_to_ns_per_beat",
    "make_clock",
]


def make_clock(config: DaemonConfig) -> Clock:
    """The clock source ``config.clock`` names (config has checked the name). A Link clock joins
    its session here, and a missing Link binding is one :class:`~affetto.errors.ConfigError` line."""
    if config.clock == "internal":
        return InternalClock(config.bpm)
    if config.clock == "link":
        from affetto.daemon.clocks.link import LinkClock  # the binding loads only here

        return LinkClock(config.meter.beats_per_bar, bpm=config.bpm, start_stop_sync=config.link_start_stop)
    return MidiClockFollower()
