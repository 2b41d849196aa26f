"""The clock interface: map song beats to wall time and report the transport.

One interface, several sources (:mod:`affetto.daemon.clocks`). A source
publishes an immutable :class:`ClockState` (running flag, a point
``(origin_ns, origin_beat)`` and a slope in ns per beat); readers on any thread
take ``clock.state`` once and convert beats to deadlines with it, so a reader
never sees half an update. The conductor feeds a source the system messages
that arrive (:meth:`Clock.handle`), polls it (:meth:`Clock.check`, at least
every 50 ms) and tells it when the daemon is ready (:meth:`Clock.begin`); every
transport change comes back as :class:`TransportEvent` values.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum

DEFAULT_BPM = 120.0
NS_PER_MINUTE = 60_000_000_000


def bpm_to_ns_per_beat(bpm: float) -> float:
    return NS_PER_MINUTE / bpm


@dataclass(frozen=True, slots=True)
class ClockState:
    """A snapshot of a clock: beats are ``origin_beat + (t - origin_ns) / ns_per_beat``.

    ``epoch`` changes on every transport change (start, stop, continue,
    position jump), so holders of old deadlines can tell they are stale.
    """

    running: bool
    origin_ns: int
    origin_beat: float
    ns_per_beat: float
    epoch: int = 0

    @property
    def bpm(self) -> float:
        return NS_PER_MINUTE / self.ns_per_beat

    def beat_at(self, t_ns: int) -> float:
        """Song position at wall time ``t_ns`` (frozen while stopped)."""
        if not self.running:
            return self.origin_beat
        return self.origin_beat + (t_ns - self.origin_ns) / self.ns_per_beat

    def time_at(self, beat: float) -> int:
        """Wall time (monotonic ns) at which song position ``beat`` falls at the current tempo."""
        return self.origin_ns + round((beat - self.origin_beat) * self.ns_per_beat)


class Transport(Enum):
    START = "start"
    CONTINUE = "continue"
    STOP = "stop"
    LOCATE = "locate"  # a position jump (Song Position Pointer)


@dataclass(frozen=True, slots=True)
class TransportEvent:
    kind: Transport
    beat: float
    t_ns: int


class Clock(ABC):
    """The interface every clock source implements."""

    name: str = "clock"

    @property
    @abstractmethod
    def state(self) -> ClockState:
        """The current snapshot (an atomic read)."""

    def handle(self, status: int, data: int, t_ns: int) -> list[TransportEvent]:
        """Apply one system real-time/common message (``data`` is the SPP value). Default: ignore."""
        return []

    def check(self, t_ns: int) -> list[TransportEvent]:
        """Housekeeping at time ``t_ns`` (e.g. a silent clock cable); may return transport events."""
        return []

    def begin(self, t_ns: int) -> list[TransportEvent]:
        """The daemon is ready at ``t_ns``. A source that runs by itself starts here; one that
        follows outside time waits for it. Default: nothing happens."""
        return []

    def close(self) -> None:
        """Let go of what the source holds (a Link session). Default: nothing to let go of."""
        return None

    def __enter__(self) -> Clock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
