"""Conductor modes: what is asked at each bar line, and what a player's note means.

A mode is one small object with its own state. At the start of bar ``k`` the
conductor calls :meth:`Mode.at_bar_line` with the seed buffer and sends what
comes back (an :class:`Ask` for bar ``k + 1``, or nothing); on every note-on
of the player it calls :meth:`Mode.on_note`, which may give back the first bar
whose material is cancelled; on every transport change, and whenever the bars
start over after a fault or a port's return, :meth:`Mode.reset`. The clock,
the pending bars, the late policy, channel routing and logging stay in the
conductor, so a new mode is one class here and one entry in :data:`MODES`.

- ``continue`` (:class:`ContinueMode`): a bar every bar. The generator is
  primed at transport start, and re-primed at a bar line whenever the player
  sent new notes, from the last ``seed_bars + CONTINUE_EXTRA_BARS`` bars (4 by
  default: the phrase with the bars that led into it).
- ``call-response`` (:class:`CallResponseMode`): at a bar line after a bar
  with notes, the answer's first bar is asked for speculatively from the phrase
  (the run of bars with notes, at most ``seed_bars``); if the player plays
  again before the answer starts, it is cancelled. Otherwise the answer runs
  as many bars as the phrase had.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from affetto.daemon.config import DaemonConfig
from affetto.daemon.seed import SeedBuffer
from affetto.music import Note

CONTINUE_EXTRA_BARS = 2  # continue mode primes from seed_bars + this many bars of what was played


@dataclass(frozen=True, slots=True)
class Ask:
    """Ask the generator for ``bar``: from ``seed`` (None: go on from what it has), as ``task``."""

    bar: int
    seed: tuple[Note, ...] | None
    task: str


class Mode(ABC):
    """What the conductor asks at bar lines; one object per run, with its own state."""

    name: ClassVar[str]
    task: ClassVar[str]  # the BarRequest task its bars are asked as

    @abstractmethod
    def at_bar_line(self, bar: int, seed: SeedBuffer) -> Ask | None:
        """Bar ``bar`` just started: what to ask for bar ``bar + 1``, if anything."""

    def on_note(self, beat: float) -> int | None:
        """The player started a note at song beat ``beat``: the first bar whose asked-for
        material is now cancelled, or None. Default: a note changes nothing asked."""
        return None

    def reset(self) -> None:
        """The transport changed or the bars start over: forget what was asked. Default: nothing kept."""
        return None


class ContinueMode(Mode):
    """A bar every bar, re-primed from the recent bars whenever the player played something new."""

    name = "continue"
    task = "continue"

    def __init__(self, prime_bars: int) -> None:
        self.prime_bars = prime_bars  # bars of what was played that a prime reads
        self.need_prime = True
        self.primed_upto: float = -math.inf  # newest seed onset the generator has seen

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

    def __init__(self, phrase_bars: int, bar_beats: float) -> None:
        self.phrase_bars = phrase_bars  # the longest phrase answered
        self.bar_beats = bar_beats
        self.answer: tuple[int, int] | None = None  # (first bar, bars) of the current answer

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


MODES: dict[str, Callable[[DaemonConfig], Mode]] = {
    "continue": lambda config: ContinueMode(config.seed_bars + CONTINUE_EXTRA_BARS),
    "call-response": lambda config: CallResponseMode(config.seed_bars, config.meter.beats_per_bar),
}


def make_mode(config: DaemonConfig) -> Mode:
    """The mode ``config.mode`` names (config has checked the name against its list)."""
    return MODES[config.mode](config)
