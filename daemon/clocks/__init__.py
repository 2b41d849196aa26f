"""Clock sources as a family: one interface, one registry, one factory.

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

:data:`CLOCKS` names each source with the function that builds it from the
config: the config checks ``clock`` against it, ``affetto run --clock`` offers
its names, and :func:`make_clock` builds what it names. A new source is a
module in this folder and one :data:`CLOCKS` entry below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

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
from affetto.errors import ConfigError
from affetto.music.notes import TimeSignature
from affetto.registry import Registry

__all__ = [
    "CLOCKS",
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


class ClockSettings(Protocol):
    """What the clock sources read from the daemon's configuration (:class:`~affetto.daemon.config.DaemonConfig`)."""

    @property
    def clock(self) -> str: ...

    @property
    def bpm(self) -> float: ...

    @property
    def meter(self) -> TimeSignature: ...

    @property
    def link_start_stop(self) -> bool: ...


ClockBuilder = Callable[[ClockSettings], Clock]
CLOCKS: Registry[ClockBuilder] = Registry(
    lambda name, known: ConfigError(f"clock must be one of {', '.join(known)}, got {name!r}"))


def _midi(config: ClockSettings) -> Clock:
    return MidiClockFollower()


def _internal(config: ClockSettings) -> Clock:
    return InternalClock(config.bpm)


def _link(config: ClockSettings) -> Clock:
    from affetto.daemon.clocks.link import LinkClock  # the binding loads only here

    return LinkClock(config.meter.beats_per_bar, bpm=config.bpm, start_stop_sync=config.link_start_stop)


CLOCKS.add("midi", _midi)  # follow the DAW's MIDI clock
CLOCKS.add("internal", _internal)  # a fixed tempo
CLOCKS.add("link", _link)  # an Ableton Link session


def make_clock(config: ClockSettings) -> Clock:
    """The clock source ``config.clock`` names. A Link clock joins its session here, and a missing
    Link binding is one :class:`~affetto.errors.ConfigError` line."""
    return CLOCKS.get(config.clock)(config)
