"""Is the player still playing the loop? Heard notes paired with the notes the loop has, as a musician hears it.

A note of the loop is heard when the player plays the same pitch within
:data:`MARGIN_STEPS` grid steps of where the loop had it, either way and across
bar lines (a note a step late over the bar line is still the loop's last note,
not a stray note of the next bar). Notes are paired nearest first, one to one.
A bar of the loop with :data:`SPARE_FROM` notes or more may have one fault (a
note of the loop missing, or a stray note it does not have) without the loop
being given up; a note played out of place is both, so it gives the loop up,
as do two of the loop's onsets missed in a row.

Only what is settled counts: a note of the loop is missing only once its time
plus the margin has passed the beat up to which the player's input has been
taken in (``upto``); until then it is pending, neither heard nor missed.
Times are song beats, unquantised, so a note is judged where it was played,
not where the grid rounded it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MARGIN_STEPS = 1.5  # a loop note is heard when its pitch lands within this many grid steps of it
SPARE_FROM = 3  # a loop bar with at least this many notes may have one fault: a note missing, or a stray one

Onset = tuple[float, int]  # (song beat of the onset, pitch)


def spare(expected: int) -> int:
    """How many faults (loop notes missing, stray notes) a bar of ``expected`` loop notes may have."""
    return 1 if expected >= SPARE_FROM else 0


def pair(expected: Sequence[Onset], heard: Sequence[Onset], margin: float) -> tuple[set[int], set[int]]:
    """Pair loop notes with heard notes of the same pitch at most ``margin`` beats away, nearest first,
    one to one: (indices of ``expected`` paired, indices of ``heard`` paired)."""
    candidates = sorted(
        (abs(h - e), i, j)
        for i, (e, pe) in enumerate(expected)
        for j, (h, ph) in enumerate(heard)
        if pe == ph and abs(h - e) <= margin + 1e-9
    )
    used_e: set[int] = set()
    used_h: set[int] = set()
    for _d, i, j in candidates:
        if i not in used_e and j not in used_h:
            used_e.add(i)
            used_h.add(j)
    return used_e, used_h


@dataclass(frozen=True, slots=True)
class Verdict:
    """How a span of bars went, judged up to a beat."""

    missing: tuple[Onset, ...]  # loop notes whose time (plus the margin) is past, not heard
    stray: tuple[Onset, ...]  # heard notes the loop does not have there (settled ones only)
    heard: tuple[Onset, ...]  # every note heard in the span
    broken_bar: int | None  # the first bar that lost more than it can spare (or two notes in a row), or None
    first_missing: Onset | None  # the first of the loop notes whose loss gave the loop up, if it is
    pending: int  # loop notes of the span not yet settled
    paired: int  # loop notes of the span heard

    @property
    def holds(self) -> bool:
        return self.broken_bar is None


def judge(expected: Sequence[Onset], heard: Sequence[Onset], first_bar: int, end_bar: int, bar_beats: float,
          margin: float, upto: float, *, early: float = 0.0) -> Verdict:
    """Judge bars ``first_bar .. end_bar - 1``: ``expected`` are the loop's notes and ``heard`` the player's,
    both in song beats, each covering the span and ``margin`` beyond it (so a note played across a bar
    line pairs with its loop note). A heard note belongs to the bar it starts in, or the next when it
    starts within ``early`` beats of its line (as the seed buffer snaps it).

    A bar is broken when it has more faults (loop notes missing, stray notes) than it can spare
    (:func:`spare`), or when two of the loop's onsets in a row are missing (every note of each: the
    player stopped, or plays something else).
    """
    expected = sorted(expected)
    heard = sorted(h for h in heard if h[0] <= upto)  # (a test's seed may hold what is yet to come)
    got_e, got_h = pair(expected, heard, margin)
    lo, hi = first_bar * bar_beats, end_bar * bar_beats
    missing, stray = [], []
    broken: int | None = None
    first_missing: Onset | None = None
    pending = paired = 0
    for bar in range(first_bar, end_bar):
        b_lo, b_hi = bar * bar_beats, (bar + 1) * bar_beats
        mine = [i for i, (e, _p) in enumerate(expected) if b_lo <= e < b_hi]
        lost = [expected[i] for i in mine if i not in got_e and expected[i][0] + margin <= upto]
        extra = [h for j, h in enumerate(heard)
                 if j not in got_h and b_lo - early <= h[0] < b_hi - early and h[0] + margin <= upto]
        pending += sum(1 for i in mine if i not in got_e and expected[i][0] + margin > upto)
        paired += sum(1 for i in mine if i in got_e)
        missing += lost
        stray += extra
        if broken is None and len(lost) + len(extra) > spare(len(mine)):
            broken = bar
            first_missing = lost[0] if lost else None
    # two onsets of the loop in a row missing, across bar lines too
    onsets: dict[float, list[int]] = {}
    for i, (e, _p) in enumerate(expected):
        if lo <= e < hi:
            onsets.setdefault(round(e, 6), []).append(i)
    previous_lost: list[int] | None = None
    for at in sorted(onsets):
        group = onsets[at]
        if expected[group[0]][0] + margin > upto:
            break  # not settled yet
        lost_all = not any(i in got_e for i in group)
        if lost_all and previous_lost is not None:
            bar = int(at // bar_beats)
            if broken is None or bar < broken:
                broken, first_missing = bar, expected[previous_lost[0]]
            break
        previous_lost = group if lost_all else None
    in_span = tuple(h for h in heard if lo - early <= h[0] < hi - early)
    return Verdict(tuple(missing), tuple(stray), in_span, broken, first_missing, pending, paired)


def cycle(first_pass: Sequence[Onset], origin: float, length: float, lo: float, hi: float) -> list[Onset]:
    """The loop's notes from ``lo`` to ``hi`` (song beats): ``first_pass`` (onsets from the loop's first
    line at ``origin``, one pass of ``length`` beats) repeated every pass."""
    if not first_pass or length <= 0:
        return []
    out = []
    first = int((lo - origin) // length) - 1
    last = int((hi - origin) // length) + 1
    for k in range(max(first, 0), last + 1):
        base = origin + k * length
        out += [(base + r, p) for r, p in first_pass if lo <= base + r < hi]
    return sorted(out)
