"""The conductor's figures for the status page: one immutable snapshot, replaced, never changed.

The conductor's thread builds a :class:`Snapshot` at most every
:data:`PUBLISH_NS` (:meth:`StatusBoard.publish`) and swaps
:attr:`StatusBoard.current` for it: one reference assignment, which readers on
any thread take whole. No lock is involved, so the page can never hold up the
conductor, the scheduler or a JACK callback, and a reader never sees half an
update. :func:`document` turns a snapshot into the JSON the page, ``/status.json``
and ``/events`` serve.

What a snapshot holds: the transport (tempo, song position, running, the clock
source), the emotion the controls point at now (the knob or the XY pad) with a
trail of its recent positions, the capsule of the last bar asked for, the mode
and, in harmonise mode, the loop it learned; the bar book's counts and
generation times.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from affetto.analysis.emotion import Capsule
from affetto.daemon.barbook import NO_TIMES, BarBook, GenTimes
from affetto.daemon.clocks import ClockState
from affetto.daemon.config import DaemonConfig

PUBLISH_NS = 100_000_000  # a new snapshot at most this often (the page shows a few a second at most)
TRAIL_POINTS = 48  # the knob's recent positions kept for the page
TRAIL_STEP = 0.01  # a position joins the trail when it moved at least this far (valence/arousal units)


@dataclass(frozen=True, slots=True)
class Loop:
    """The loop a harmonise mode learned: ``bars`` long from song bar ``start`` (0-based), and its
    notes as ``(pitch, onset in beats from the loop's first bar line, duration in beats)``."""

    bars: int
    start: int
    notes: tuple[tuple[int, float, float], ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The daemon's figures at ``t_ns`` (monotonic); ``seq`` counts the snapshots published."""

    seq: int
    t_ns: int
    running: bool
    bpm: float
    beat: float  # song position in beats, 0-based (frozen while stopped)
    bar_beats: float
    meter: str
    clock: str
    mode: str
    target: Capsule  # where the controls point now
    capsule: Capsule  # the last bar's, smoothed toward the target at bar lines
    trail: tuple[tuple[float, float], ...] = ()  # (valence, arousal) of the target, oldest first
    loop: Loop | None = None
    generated: int = 0
    missed: int = 0
    played: int = 0
    errors: int = 0
    faults: int = 0
    gen: GenTimes = field(default=NO_TIMES)

    @property
    def bar(self) -> int:
        """The song bar under way, counted from 1 as a DAW shows it."""
        return math.floor(self.beat / self.bar_beats + 1e-9) + 1

    @property
    def beat_in_bar(self) -> float:
        """The beat in that bar, counted from 1."""
        return self.beat - (self.bar - 1) * self.bar_beats + 1


def _emotion(capsule: Capsule) -> dict[str, Any]:
    q = capsule.quadrant
    return {"valence": round(capsule.valence, 3), "arousal": round(capsule.arousal, 3), "quadrant": q.name,
            "mood": q.mood}


def _ms(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 1)


def document(snap: Snapshot) -> dict[str, Any]:
    """The snapshot as plain JSON types (what ``/status.json`` and ``/events`` carry)."""
    loop = snap.loop
    return {
        "running": snap.running,
        "bpm": round(snap.bpm, 2),
        "bar": snap.bar,
        "beat": round(snap.beat_in_bar, 2),
        "meter": snap.meter,
        "beats_per_bar": snap.bar_beats,
        "clock": snap.clock,
        "mode": snap.mode,
        "emotion": _emotion(snap.target),
        "playing": _emotion(snap.capsule),
        "trail": [[round(v, 3), round(a, 3)] for v, a in snap.trail],
        "loop": None if loop is None else {
            "bars": loop.bars, "from_bar": loop.start + 1,
            "notes": [[p, round(o, 3), round(d, 3)] for p, o, d in loop.notes],
        },
        "generated": snap.generated,
        "missed": snap.missed,
        "played": snap.played,
        "errors": snap.errors,
        "faults": snap.faults,
        "gen_ms": {"count": snap.gen.count, "p50": _ms(snap.gen.p50), "p99": _ms(snap.gen.p99)},
    }


class StatusBoard:
    """Where the conductor publishes; :attr:`current` is the latest snapshot (read it from any thread)."""

    def __init__(self, config: DaemonConfig, target: Capsule, now_ns: int) -> None:
        self.clock = config.clock
        self.mode = config.mode
        self.meter = str(config.meter)
        self.bar_beats = config.meter.beats_per_bar
        self._trail: deque[tuple[float, float]] = deque(maxlen=TRAIL_POINTS)
        self._trail_view: tuple[tuple[float, float], ...] = ()
        self._loop_key: tuple | None = None  # (start, bars, the phrase itself: kept, so `is` is safe)
        self._loop: Loop | None = None
        self._next_ns = now_ns
        self._track(target)
        self.current = Snapshot(0, now_ns, False, 0.0, 0.0, self.bar_beats, self.meter, self.clock, self.mode,
                                target, target, self._trail_view)

    def publish(self, now_ns: int, state: ClockState, target: Capsule, capsule: Capsule, mode: object,
                book: BarBook, faults: int) -> bool:
        """Swap in a new snapshot when :data:`PUBLISH_NS` has passed since the last; True if it did."""
        if now_ns < self._next_ns:
            return False
        self._next_ns = now_ns + PUBLISH_NS
        self._track(target)
        self.current = Snapshot(
            seq=self.current.seq + 1,
            t_ns=now_ns,
            running=state.running,
            bpm=state.bpm,
            beat=state.beat_at(now_ns),
            bar_beats=self.bar_beats,
            meter=self.meter,
            clock=self.clock,
            mode=self.mode,
            target=target,
            capsule=capsule,
            trail=self._trail_view,
            loop=self._learned(mode),
            generated=book.generated,
            missed=book.missed,
            played=book.played,
            errors=book.errors,
            faults=faults,
            gen=book.times(),
        )
        return True

    def _track(self, target: Capsule) -> None:
        point = (target.valence, target.arousal)
        if self._trail and max(abs(a - b) for a, b in zip(point, self._trail[-1])) < TRAIL_STEP:
            return
        self._trail.append(point)
        self._trail_view = tuple(self._trail)

    def _learned(self, mode: object) -> Loop | None:
        """A harmonise mode's loop (its ``start``, ``loop`` and ``phrase``), converted once per loop."""
        start, bars, phrase = (getattr(mode, name, None) for name in ("start", "loop", "phrase"))
        if start is None or bars is None:
            self._loop_key, self._loop = None, None
            return None
        key = (start, bars, phrase)
        if self._loop_key is None or key[:2] != self._loop_key[:2] or phrase is not self._loop_key[2]:
            notes = tuple((n.pitch, n.onset, n.duration) for n in phrase or ())
            self._loop_key, self._loop = key, Loop(bars, start, notes)
        return self._loop
