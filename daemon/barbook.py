"""The book of bars: the late-bar policy, and what was generated, missed and played.

The conductor keeps the clock, the pending bars and routing; this keeps the
accounts. Late-bar policy: a bar whose notes are not back ``margin_ms`` before
its bar line is a *missed* bar. With ``late_policy = "repeat"`` the last good
bar is played again in its place (nothing, if there is none yet; never in a
mode whose last bar belongs under another bar, such as harmonise); with
``"rest"`` the bar is silent. Misses are counted and logged (rate-limited). The
*last good bar* is the latest that came back whole, even one that came too late
to be played.

Generation times: the last :data:`GEN_KEEP` at most (the oldest half goes when
that is full); the status line shows the mean of the latest
:data:`GEN_RECENT`, the status page their median and 99th percentile, computed
once per new time.
"""

from __future__ import annotations

from dataclasses import dataclass

from affetto.daemon.scheduler import percentile
from affetto.music.notes import Note
from affetto.ratelimit import RateLimitedLog

GEN_KEEP = 512  # generation times kept
GEN_RECENT = 16  # the status line's mean is over this many


@dataclass(frozen=True, slots=True)
class GenTimes:
    """Generation times in ms over the kept window (None: nothing measured yet)."""

    count: int
    recent_mean: float | None  # the latest GEN_RECENT
    p50: float | None
    p99: float | None


NO_TIMES = GenTimes(0, None, None, None)


class BarBook:
    """Counts of bars, generation times, the last good bar and the late policy."""

    def __init__(self, late_policy: str, rate_log: RateLimitedLog) -> None:
        self.late_policy = late_policy
        self._rl = rate_log  # the conductor's: one limiter for its repeated lines
        self.generated = 0  # bars that came back in time and were played
        self.missed = 0  # bars given up (late, failed, or never asked for after a stall)
        self.played = 0  # bars handed to the scheduler, repeats included
        self.errors = 0  # generator failures
        self.gen_ms: list[float] = []
        self.last_good: list[Note] = []
        self._times: GenTimes = NO_TIMES
        self._times_stale = False

    def timed(self, elapsed_ns: int) -> None:
        """A bar came back after ``elapsed_ns`` of generation."""
        self.gen_ms.append(elapsed_ns / 1e6)
        if len(self.gen_ms) > GEN_KEEP:
            del self.gen_ms[: GEN_KEEP // 2]
        self._times_stale = True

    def times(self) -> GenTimes:
        """The generation times' summary (recomputed only after a new time)."""
        if self._times_stale:
            kept = list(self.gen_ms)
            recent = kept[-GEN_RECENT:]
            self._times = GenTimes(len(kept), sum(recent) / len(recent), percentile(kept, 50), percentile(kept, 99))
            self._times_stale = False
        return self._times

    def keep(self, notes: list[Note]) -> None:
        """``notes`` came back whole: the bar a repeat plays from now on."""
        self.last_good = notes

    def skipped(self, bars: int) -> None:
        """Bars never asked for (the conductor fell behind) count as missed."""
        self.missed += bars

    def miss(self, bar: int, why: str, *, may_repeat: bool) -> list[Note] | None:
        """Bar ``bar`` (0-based) is missed: count and log it; the notes to play in its place, if any."""
        self.missed += 1
        repeat = self.late_policy == "repeat" and may_repeat and bool(self.last_good)
        self._rl.warning(
            f"miss:{why}",
            "bar %d %s: %s (%d missed so far)",
            bar + 1,
            why,
            "repeating the last good bar" if repeat else "resting",
            self.missed,
        )
        return self.last_good if repeat else None
