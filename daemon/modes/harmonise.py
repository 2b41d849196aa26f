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
from affetto.daemon.modes.loopmatch import MARGIN_STEPS, Onset, Verdict, cycle, judge
from affetto.daemon.seed import SeedBuffer
from affetto.ensemble.accompany import LOOP_BARS
from affetto.music.notes import Note

log = logging.getLogger(__name__)

HISTORY_BARS = 2 * max(LOOP_BARS)  # bars kept for loop detection


def loop_at(start: int, last: int, match: Callable[[int, int], bool]) -> int | None:
    """The shortest loop length in :data:`LOOP_BARS` that bars ``start .. last`` repeat, or None.

    A length ``L`` fits when every bar from ``start + L`` to ``last`` repeats
    its bar of the first pass (``match(b, start + (b - start) % L)``: each pass is
    heard against the first, not against the pass before it, so small drifts
    cannot add up), and at least one bar has (``last >= start + L``).
    """
    for length in LOOP_BARS:
        if last < start + length:
            return None  # longer loops have even less evidence
        if all(match(b, start + (b - start) % length) for b in range(start + length, last + 1)):
            return length
    return None


class HarmoniseMode(Mode):
    """Loop-follow: learn the player's loop, then ask for the voices under each bar of its repeats.

    Learning: at each bar line the loop is the earliest start bar with notes,
    within the last :data:`HISTORY_BARS` bars, from which the bars repeat with
    the shortest length (:func:`loop_at`); one repeated bar is evidence
    enough, so the voices join in the second bar of the second pass, at its
    first note that is not yet due when they are ready (a few milliseconds
    after the bar line), and play every bar from the third on. A wrong guess (a 4-bar
    loop whose second bar repeats its first looks like a 1-bar loop at
    first) is found out at the next bar that does not repeat, and corrected.

    Hearing: a bar repeats its bar of the first pass as a musician would hear
    it (:mod:`affetto.daemon.modes.loopmatch`): each note within
    :data:`~affetto.daemon.modes.loopmatch.MARGIN_STEPS` grid steps of where the
    first pass had it, across bar lines too; a bar of three notes or more may
    miss one of them (a note lost on a busy machine, or fluffed), but not two
    in a row. Every pass is heard against the first pass, not against the
    one before it.

    Following: while the bars repeat, the voices under the next bar are asked
    for at each bar line. :meth:`check`, called as the player's input is taken
    in, settles each note of the loop once its time and the margin have passed:
    when the player stopped or changed the phrase (more notes missing than the
    bar can spare, two in a row, or stray notes), the voices stop there, what was
    asked is cancelled from the sounding bar on, and the loop is learned afresh.
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
        self.phrase: tuple[Note, ...] = ()  # its first pass, quantised, onsets from ``start``'s line
        self.first_pass: tuple[Onset, ...] = ()  # its first pass as played: (beats from ``start``'s line, pitch)
        self._matches: dict[tuple[int, int], bool] = {}  # settled comparisons of learning
        self._heard: float | None = None  # the song beat up to which the player's input is taken in
        self.relearned = 0  # times the phrase changed under a known loop
        self.stopped = 0  # times the player stopped while voices played

    # -- hearing -------------------------------------------------------------------------
    @staticmethod
    def _margin(seed: SeedBuffer) -> float:
        return MARGIN_STEPS / seed.grid.steps_per_beat

    @staticmethod
    def _early(seed: SeedBuffer) -> float:
        return 0.5 / seed.grid.steps_per_beat  # a note this early belongs to the next bar (as the seed has it)

    def repeats(self, seed: SeedBuffer, bar: int, of: int, upto: float) -> bool:
        """Whether bar ``bar`` repeats bar ``of`` as far as heard up to song beat ``upto`` (False when
        nothing of ``of`` was heard in ``bar`` yet, or ``bar`` has notes ``of`` lacks)."""
        key = (bar, of)
        if key in self._matches:
            return self._matches[key]
        length = seed.meter.beats_per_bar
        margin = self._margin(seed)
        shift = (bar - of) * length
        expected = [(t + shift, p) for t, p in seed.onsets(of * length - margin, (of + 1) * length + margin)]
        heard = seed.onsets(bar * length - 2 * margin, (bar + 1) * length + 2 * margin)
        verdict = judge(expected, heard, bar, bar + 1, length, margin, upto, early=self._early(seed))
        own = [e for e in expected if bar * length <= e[0] < (bar + 1) * length]
        same = verdict.holds and (verdict.paired > 0 or not own)
        if upto >= (bar + 1) * length + 2 * margin:
            self._matches[key] = same  # everything of it is settled
        return same

    def _verdict(self, seed: SeedBuffer, upto: float) -> Verdict:
        """The bars since the loop was learned, up to the one sounding at ``upto``, heard against its
        first pass (the last two; the earlier ones were settled when they were)."""
        assert self.start is not None and self.loop is not None
        length = seed.meter.beats_per_bar
        margin = self._margin(seed)
        now = int(upto // length)
        first = max(self.start + self.loop, now - 1)
        end = max(first + 1, now + 1)
        lo, hi = first * length - 2 * margin, end * length + 2 * margin
        expected = cycle(self.first_pass, self.start * length, self.loop * length, lo, hi)
        return judge(expected, seed.onsets(lo, hi), first, end, length, margin, upto, early=self._early(seed))

    def _upto(self, bar: int, seed: SeedBuffer) -> float:
        """At bar line ``bar``: heard up to the line, or less when the input is behind (see :meth:`check`)."""
        line = bar * seed.meter.beats_per_bar
        return line if self._heard is None else min(line, self._heard)

    # -- the conductor's calls ---------------------------------------------------------------
    def at_bar_line(self, bar: int, seed: SeedBuffer) -> Ask | Cancel | None:
        if bar < 1:
            return None
        done = bar - 1  # the bar that just ended
        self._forget(done - HISTORY_BARS)
        seed.forget_before(done - HISTORY_BARS)
        upto = self._upto(bar, seed)
        if self.loop is not None and self.start is not None:
            verdict = self._verdict(seed, upto)
            if verdict.holds:
                return self._ask(bar + 1)
            self.relearned += 1
            log.info("%s: bar %d did not repeat the loop: %s stop, learning again (%s)", self.name,
                     verdict.broken_bar + 1 if verdict.broken_bar is not None else bar, self.plays,
                     self._said(verdict, seed))
            self._drop()
            return Cancel(bar, self._learn(bar, seed, upto))
        return self._learn(bar, seed, upto)

    def _learn(self, bar: int, seed: SeedBuffer, upto: float) -> Ask | None:
        done = bar - 1
        for start in range(done - HISTORY_BARS, done):
            if start < 0 or not seed.bar_has_notes(start):
                continue  # a loop starts on a bar with notes
            length = loop_at(start, done, lambda a, b: self.repeats(seed, a, b, upto))
            if length is not None:
                self.start, self.loop = start, length
                self.phrase = tuple(seed.phrase(start, start + length))
                origin = start * seed.meter.beats_per_bar
                half = self._early(seed)
                self.first_pass = tuple((t - origin, p) for t, p in
                                        seed.onsets(origin - half, origin + length * seed.meter.beats_per_bar - half))
                log.info("%s: a loop of %d bar(s) from bar %d; %s join in bar %d",
                         self.name, length, start + 1, self.plays, bar + 1)
                return self._ask(bar + 1, join_current=True)
        return None

    def _ask(self, bar: int, *, join_current: bool = False) -> Ask:
        assert self.start is not None and self.loop is not None
        return Ask(bar, self.phrase, self.task, self.loop, bar - self.start, join_current)

    def check(self, beat: float, seed: SeedBuffer) -> Cancel | None:
        """The player's input is taken in up to song beat ``beat``: if the loop's notes settled by now
        say the player stopped or changed the phrase, give the voices up from the sounding bar on."""
        self._heard = beat
        if self.loop is None or self.start is None:
            return None
        verdict = self._verdict(seed, beat)
        if verdict.holds:
            return None
        bar = int(beat // seed.meter.beats_per_bar)
        lost = verdict.first_missing
        since = [h for h in verdict.heard if lost is None or h[0] >= lost[0] - self._margin(seed)]
        if since:
            self.relearned += 1  # the phrase changed: other notes came instead
        else:
            self.stopped += 1  # nothing since the loop's notes went missing
        log.info("%s: the loop %s in bar %d: %s stop, learning again (%s)", self.name,
                 "changed" if since else "stopped", bar + 1, self.plays, self._said(verdict, seed))
        self._drop()
        return Cancel(bar)

    def _said(self, verdict: Verdict, seed: SeedBuffer) -> str:
        """What was expected and what was heard, for the log line that gives the loop up."""
        length = seed.meter.beats_per_bar
        bar = verdict.broken_bar or 0
        heard = ", ".join(f"{p}@{t - bar * length:.2f}" for t, p in verdict.heard[:8]) or "nothing"
        if verdict.first_missing is not None:
            t, p = verdict.first_missing
            return f"expected pitch {p} at beat {t - bar * length:.2f} of bar {bar + 1}; heard {heard}"
        stray = ", ".join(f"{p}@{t - bar * length:.2f}" for t, p in verdict.stray[:4])
        return f"notes the loop does not have in bar {bar + 1}: {stray}; heard {heard}"

    def _drop(self) -> None:
        self.start, self.loop, self.phrase, self.first_pass = None, None, (), ()

    def _forget(self, before: int) -> None:
        self._matches = {k: v for k, v in self._matches.items() if min(k) >= before}

    def reset(self) -> None:
        self._drop()
        self._heard = None
        self._matches.clear()
