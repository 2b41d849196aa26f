"""The modes whose bars come from the lead model: ``continue``, ``call-response`` and ``ensemble``.

- ``continue`` (:class:`ContinueMode`): a bar every bar. The generator is
  primed at transport start, and re-primed at a bar line whenever the player
  sent new notes, from the last ``seed_bars + CONTINUE_EXTRA_BARS`` bars (4 by
  default: the phrase with the bars that led into it).
- ``call-response`` (:class:`CallResponseMode`): at a bar line after a bar
  with notes, the answer's first bar is asked for speculatively from the phrase
  (the run of bars with notes, at most ``seed_bars``); if the player plays
  again before the answer starts, it is cancelled. Otherwise the answer runs
  as many bars as the phrase had.
- ``ensemble`` (:class:`EnsembleMode`): continue mode whose bars come with
  voices (its generator is a band: the lead model with the ensemble under it).
"""

from __future__ import annotations

import math

from affetto.daemon.modes.base import Ask, Mode, ModeSettings
from affetto.daemon.seed import SeedBuffer

CONTINUE_EXTRA_BARS = 2  # continue mode primes from seed_bars + this many bars of what was played


class ContinueMode(Mode):
    """A bar every bar, re-primed from the recent bars whenever the player played something new."""

    name = "continue"
    task = "continue"
    revisable = True

    def __init__(self, prime_bars: int) -> None:
        self.prime_bars = prime_bars  # bars of what was played that a prime reads
        self.need_prime = True
        self.primed_upto: float = -math.inf  # newest seed onset the generator has seen

    @classmethod
    def from_config(cls, config: ModeSettings) -> Mode:
        return cls(config.seed_bars + CONTINUE_EXTRA_BARS)

    def at_bar_line(self, bar: int, seed: SeedBuffer) -> Ask:
        notes = None
        if self.need_prime or (seed.latest_onset is not None and seed.latest_onset > self.primed_upto):
            _first, recent = seed.recent(bar, bars=self.prime_bars)
            notes = tuple(recent)
            self.need_prime = False
            self.primed_upto = seed.latest_onset if seed.latest_onset is not None else -math.inf
        return Ask(bar + 1, notes, self.task)

    def reset(self) -> None:
        self.need_prime = True


class CallResponseMode(Mode):
    """Answer a phrase after a bar of silence; the player playing again cancels an answer not yet begun."""

    name = "call-response"
    task = "answer"
    revisable = True

    def __init__(self, phrase_bars: int, bar_beats: float) -> None:
        self.phrase_bars = phrase_bars  # the longest phrase answered
        self.bar_beats = bar_beats
        self.answer: tuple[int, int] | None = None  # (first bar, bars) of the current answer

    @classmethod
    def from_config(cls, config: ModeSettings) -> Mode:
        return cls(config.seed_bars, config.meter.beats_per_bar)

    def at_bar_line(self, bar: int, seed: SeedBuffer) -> Ask | None:
        if self.answer is not None:
            first, length = self.answer
            if bar + 1 < first + length:
                return Ask(bar + 1, None, self.task)
            if bar >= first + length:
                self.answer = None
            else:
                return None  # the answer's last bar is playing; listen again after it
        if bar >= 1 and seed.bar_has_notes(bar - 1):
            length = 1
            while length < self.phrase_bars and bar - 1 - length >= 0 and seed.bar_has_notes(bar - 1 - length):
                length += 1
            self.answer = (bar + 1, length)
            return Ask(bar + 1, tuple(seed.phrase(bar - length, bar)), self.task)
        return None

    def on_note(self, beat: float) -> int | None:
        if self.answer is None:
            return None
        first, _length = self.answer
        if beat < first * self.bar_beats:
            self.answer = None
            return first
        return None

    def reset(self) -> None:
        self.answer = None


class EnsembleMode(ContinueMode):
    """Continue mode whose bars carry the lead and the voices under it."""

    name = "ensemble"
    generator = "band"
    revisable = True  # a knob turn redoes the sounding bar's lead from its next half beat, and the voices under it
    routed = True
