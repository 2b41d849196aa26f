"""The internal clock: a fixed tempo that runs from when the daemon is ready until it stops."""

from __future__ import annotations

import math

from affetto.daemon.clocks.base import DEFAULT_BPM, Clock, ClockState, Transport, TransportEvent, bpm_to_ns_per_beat
from affetto.errors import ConfigError


class InternalClock(Clock):
    """A fixed tempo that runs from :meth:`start` until :meth:`stop`."""

    name = "internal"

    def __init__(self, bpm: float = DEFAULT_BPM) -> None:
        if not isinstance(bpm, (int, float)) or not math.isfinite(bpm) or not 20 <= bpm <= 400:
            raise ConfigError(f"bpm must be a number in range 20..400, got {bpm!r}")
        self._state = ClockState(False, 0, 0.0, bpm_to_ns_per_beat(float(bpm)))

    @property
    def state(self) -> ClockState:
        return self._state

    def begin(self, t_ns: int) -> list[TransportEvent]:
        """Runs by itself: starts at ``t_ns`` from beat 0."""
        return self.start(t_ns)

    def start(self, t_ns: int, beat: float = 0.0) -> list[TransportEvent]:
        s = self._state
        self._state = ClockState(True, t_ns, beat, s.ns_per_beat, s.epoch + 1)
        return [TransportEvent(Transport.START, beat, t_ns)]

    def stop(self, t_ns: int) -> list[TransportEvent]:
        s = self._state
        beat = s.beat_at(t_ns)
        self._state = ClockState(False, t_ns, beat, s.ns_per_beat, s.epoch + 1)
        return [TransportEvent(Transport.STOP, beat, t_ns)]
