"""``harmonise`` mode (loop-follow): voices under the player's looped phrase.

The player loops a phrase of 1, 2, 4 or 8 bars; :class:`HarmoniseMode`
learns it on its first pass and, once a bar of the second pass has repeated
its bar of the first, asks for the voices under the rest of the bar just
begun and under every following bar of the loop. A bar that does not repeat
its bar of the loop (the player changed the phrase, or stopped) cancels the
voices, and learning starts again. Its bars are served by the harmoniser
(voices only: the player's notes are never echoed) and carry the voices'
parts, which the conductor routes to the harmony channels.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from affetto.daemon.modes.base import Ask, Cancel, Mode
from affetto.daemon.seed import SeedBuffer
from affetto.ensemble.accompany import LOOP_BARS
from affetto.music.notes import Note

log = logging.getLogger(__name__)

MATCH_SHARE = 0.7  # a bar repeats another when this share of their notes pair up
MATCH_STEPS = 1  # ... a note pairs with one of the same pitch at most this many grid steps away
HISTORY_BARS = 2 * max(LOOP_BARS)  # bars of signatures kept for loop detection
STOP_STEPS = 1.5  # harmonise: the bar's first loop note this many grid steps overdue: stopped or changed


Signature = frozenset[tuple[int, int]]  # (grid step, pitch) of a bar's onsets


def bar_signature(seed: SeedBuffer, bar: int) -> Signature:
    """What a bar played: its onsets as (grid step from the bar line, pitch)."""
    steps = seed.grid.steps_per_beat
    return frozenset((round(n.onset * steps), n.pitch) for n in seed.phrase(bar, bar + 1))


def bars_match(a: Signature, b: Signature) -> bool:
    """Whether two bars are the same music: both empty, or most notes pair up (timing may wander a step)."""
    if not a or not b:
        return not a and not b
    rest = sorted(b)
    paired = 0
    for step, pitch in sorted(a):
        for i, (s2, p2) in enumerate(rest):
            if p2 == pitch and abs(s2 - step) <= MATCH_STEPS:
                del rest[i]
                paired += 1
                break
    return paired >= MATCH_SHARE * max(len(a), len(b))


def loop_at(bars: dict[int, Signature], start: int, last: int, match: Callable[[int, int], bool]) -> int | None:
    """The shortest loop length in :data:`LOOP_BARS` that bars ``start .. last`` repeat, or None.

    A length ``L`` fits when every bar from ``start + L`` to ``last`` repeats
    the bar ``L`` before it (``match(b, b - L)``), at least one bar has
    (``last >= start + L``), and the loop's bars have notes.
    """
    for length in LOOP_BARS:
        if last < start + length:
            return None  # longer loops have even less evidence
        if all(match(b, b - length) for b in range(start + length, last + 1)):
            return length
    return None


class HarmoniseMode(Mode):
    """Loop-follow: learn the player's loop, then ask for the voices under each bar of its repeats.

    Learning: at each bar line the bar that just ended is recorded
    (:func:`bar_signature`). The loop is the earliest start bar with notes,
    within the last :data:`HISTORY_BARS` bars, from which the bars repeat with
    the shortest length (:func:`loop_at`); one repeated bar is evidence
    enough, so the voices join in the second bar of the second pass, at its
    first note that is not yet due when they are ready (a few milliseconds
    after the bar line), and play every bar from the third on. A wrong guess (a 4-bar
    loop whose second bar repeats its first looks like a 1-bar loop at
    first) is found out at the next bar that does not repeat, and corrected.

    Following: while each ended bar repeats its bar of the loop, the voices
    under the next bar are asked for. When one does not (the phrase changed,
    or the player stopped), what was asked is cancelled from the bar line on
    and the bars since the change are learned afresh. Inside a bar the change
    is heard sooner: when the loop's first note of the bar is
    :data:`STOP_STEPS` grid steps overdue and the player has not played it
    (nothing, or other notes), the voices stop there (:meth:`check`).
    """

    name = "harmonise"
    task = "harmonise"
    generator = "harmoniser"  # voices under the loop, from the ensemble alone
    routed = True
    lead = False  # the player plays the line; it is never echoed
    repeat_on_miss = False  # the last bar's voices belong under another bar of the loop
    revisable = True  # the voices of the new emotion from the next beat (the loop's voicing is kept per emotion)
    plays = "voices"  # what it plays over the loop, as its log lines say (a mode built on this one says its own)

    def __init__(self) -> None:
        self.start: int | None = None  # the loop's first bar once known
        self.loop: int | None = None  # its length in bars
        self.phrase: tuple[Note, ...] = ()  # its first pass, onsets from ``start``'s line
        self.signatures: dict[int, Signature] = {}
        self._matches: dict[tuple[int, int], bool] = {}
        self.relearned = 0  # times the phrase changed under a known loop
        self.stopped = 0  # times the player stopped inside a bar while voices played
        self._expect: tuple[int, float, int] | None = None  # (bar, onset in it, pitch) of its first loop note

    def match(self, a: int, b: int) -> bool:
        """Whether bar ``a`` repeats bar ``b`` (False when either was not heard: a stall, or before Start)."""
        key = (a, b)
        if key not in self._matches:
            if a not in self.signatures or b not in self.signatures:
                return False
            self._matches[key] = bars_match(self.signatures[a], self.signatures[b])
        return self._matches[key]

    def at_bar_line(self, bar: int, seed: SeedBuffer) -> Ask | Cancel | None:
        if bar < 1:
            return None
        done = bar - 1  # the bar that just ended
        self.signatures[done] = bar_signature(seed, done)
        self._forget(done - HISTORY_BARS)
        seed.forget_before(done - HISTORY_BARS)
        self._expect = None
        if self.loop is not None and self.start is not None:
            if self.match(done, done - self.loop):
                self._expect_in(bar, seed)
                return self._ask(bar + 1)
            self.relearned += 1
            log.info("%s: bar %d did not repeat the loop: %s stop, learning again", self.name, done + 1,
                     self.plays)
            self.start, self.loop, self.phrase = None, None, ()
            return Cancel(bar, self._learn(bar, seed))
        return self._learn(bar, seed)

    def _learn(self, bar: int, seed: SeedBuffer) -> Ask | None:
        done = bar - 1
        for start in range(done - HISTORY_BARS, done):
            if not self.signatures.get(start):
                continue  # a loop starts on a bar with notes
            length = loop_at(self.signatures, start, done, self.match)
            if length is not None:
                self.start, self.loop = start, length
                self.phrase = tuple(seed.phrase(start, start + length))
                log.info("%s: a loop of %d bar(s) from bar %d; %s join in bar %d",
                         self.name, length, start + 1, self.plays, bar + 1)
                self._expect_in(bar, seed)
                return self._ask(bar + 1, join_current=True)
        return None

    def _ask(self, bar: int, *, join_current: bool = False) -> Ask:
        assert self.start is not None and self.loop is not None
        return Ask(bar, self.phrase, self.task, self.loop, bar - self.start, join_current)

    def _expect_in(self, bar: int, seed: SeedBuffer) -> None:
        """Bar ``bar`` plays voices: note when and what the loop's first note in it is."""
        assert self.start is not None and self.loop is not None
        length = seed.meter.beats_per_bar
        first = (bar - self.start) % self.loop * length
        due = sorted((n.onset - first, n.pitch) for n in self.phrase if first <= n.onset < first + length)
        if due:
            onset, pitch = due[0]
            self._expect = (bar, onset, pitch)

    def check(self, beat: float, seed: SeedBuffer) -> Cancel | None:
        """Inside a voiced bar, once the loop's first note of it is :data:`STOP_STEPS` grid steps
        overdue: if the player played nothing in the bar, or not that note, give the voices up now."""
        if self._expect is None:
            return None
        bar, onset, pitch = self._expect
        steps = seed.grid.steps_per_beat
        length = seed.meter.beats_per_bar
        if beat < bar * length + onset + STOP_STEPS / steps:
            return None
        self._expect = None
        played = seed.phrase(bar, bar + 1)
        if any(n.pitch == pitch and abs(n.onset - onset) * steps <= MATCH_STEPS + 1e-9 for n in played):
            return None
        if played:
            self.relearned += 1  # the phrase changed
        else:
            self.stopped += 1
        log.info("%s: the loop %s in bar %d: %s stop, learning again (expected pitch %d at beat %.2f; heard %s)",
                 self.name, "changed" if played else "stopped", bar + 1, self.plays, pitch, onset,
                 ", ".join(f"{n.pitch}@{n.onset:.2f}" for n in played[:6]) or "nothing")
        self.start, self.loop, self.phrase = None, None, ()
        return Cancel(bar)

    def _forget(self, before: int) -> None:
        for old in [b for b in self.signatures if b < before]:
            del self.signatures[old]
        self._matches = {k: v for k, v in self._matches.items() if min(k) >= before}

    def reset(self) -> None:
        self.start, self.loop, self.phrase = None, None, ()
        self._expect = None
        self.signatures.clear()
        self._matches.clear()
