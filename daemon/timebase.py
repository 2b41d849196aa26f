"""One offset tracker for every outside time base: rtmidi's delta times, JACK's frame clock, Link's clock.

Each maps to ``time.monotonic_ns`` as ``t_ns = outside_ns + offset_ns``. A
reading is taken as the outside instant and a monotonic instant at or after
it, so ``now - outside`` is the true offset plus a delay that is never negative
(the read itself, preemption, a callback waiting for the GIL). The tracker
keeps the lower envelope of the readings: a reading below the estimate is taken
at once, and otherwise the estimate rises by at most ``leak_ns`` per reading.
So a delayed reading moves it by one leak step at most, and an outside clock
drifting either way against ``monotonic_ns`` is followed (up to ``leak_ns``
per reading when the drift raises the offset).

This is the estimator the rtmidi and JACK backends each had; Link's clock had
a second one (the narrowest of 16 bracketed readings). The lower envelope is
kept because one disturbed reading can never pull it down and at most one leak
step up, where a window forgets its good readings after ``window`` polls.
"""

from __future__ import annotations


class OffsetTracker:
    """``offset_ns`` between an outside time base and ``monotonic_ns`` (see the module docstring)."""

    def __init__(self, *, leak_ns: int) -> None:
        if isinstance(leak_ns, bool) or not isinstance(leak_ns, int) or leak_ns < 0:
            raise ValueError(f"leak_ns must be an int >= 0, got {leak_ns!r}")
        self.leak_ns = leak_ns
        self._offset: int | None = None
        self.readings = 0

    @property
    def offset_ns(self) -> int:
        """The current estimate; 0 before the first reading."""
        return self._offset if self._offset is not None else 0

    def observe(self, observed_ns: int) -> int:
        """One reading of ``now - outside`` (a true offset plus a non-negative delay); the new estimate."""
        self.readings += 1
        if self._offset is None or observed_ns < self._offset + self.leak_ns:
            self._offset = observed_ns
        else:
            self._offset += self.leak_ns
        return self._offset

    def sample(self, outside_ns: int, now_ns: int) -> int:
        """A reading from an outside instant and a monotonic instant taken right after it."""
        return self.observe(now_ns - outside_ns)

    def to_ns(self, outside_ns: float) -> int:
        """Monotonic ns of an outside instant."""
        return round(outside_ns) + self.offset_ns

    def to_outside(self, t_ns: int) -> int:
        """The outside instant, in ns, of a monotonic time."""
        return t_ns - self.offset_ns
