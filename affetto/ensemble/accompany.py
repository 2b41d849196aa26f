"""Live accompaniment: voices under a looped phrase, or under the lead model's bars.

Parts: a bar's notes carry their *part* in ``Note.channel``: 0 is the lead
(the lead model's line), 1, 2 and 3 are the harmony voices (alto, tenor,
bass). The daemon routes part 0 to its output channel and parts 1..3 to its
harmony channels.

- A :class:`Voicer` writes the voices under a melody, bar by bar
  (:class:`~affetto.ensemble.engine.Ensemble` is one).
- :class:`LoopHarmoniser` serves ``harmonise`` bar requests: the player's
  loop (1, 2, 4 or 8 bars) is harmonised in 4-bar phrases, the ensemble's
  unit (a short loop is repeated to fill one; an 8-bar loop is two), and
  kept: the same loop under the same emotion gets the same voices on every
  pass, and a bar costs a dictionary lookup. A phrase of a new loop or under
  a new emotion is harmonised once, at the bar that first asks for it.
- :class:`Band` is a lead generator with voices: each lead bar is harmonised
  with up to three bars that led into it as melody (the seed's last bars
  first, then the lead's own), and the bar's voices ride along with its lead
  notes.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from affetto.analysis.emotion import Capsule
from affetto.errors import ConfigError
from affetto.music.notes import Note, TimeSignature
from affetto.runtime.sampling import NO_OVERRIDES, SamplingOverrides

LEAD = 0
LOOP_BARS = (1, 2, 4, 8)  # the loop lengths harmonise mode recognises
PHRASE_BARS = 4  # a short loop is repeated to fill this many bars before it is harmonised
CONTEXT_BARS = 3  # Band: bars of melody before the new one that its voices hear
CACHE_SIZE = 16  # harmonised phrases kept (a loop under a few emotions)


class Voicer(Protocol):
    meter: TimeSignature

    def voice_bars(self, melody: Sequence[Note], bars: int, capsule: Capsule, *, seed: int = 0) -> list[list[Note]]:
        """Voices under ``bars`` bars of ``melody`` (onsets in beats from the first bar line): per bar,
        its notes with onsets from that bar's line and ``channel`` set to the part (1, 2, 3)."""


def _capsule_key(capsule: Capsule) -> tuple[float, ...]:
    return tuple(round(w, 2) for w in capsule.weights)


def stable_seed(*parts: object) -> int:
    """A seed that depends only on ``parts`` (not on Python's per-process hash salt)."""
    return zlib.crc32(repr(parts).encode())


class LoopHarmoniser:
    """Serves harmonise requests with a :class:`Voicer`; keeps what it harmonised."""

    provider = "ensemble"

    def __init__(self, voicer: Voicer, *, seed: int = 0) -> None:
        self.voicer = voicer
        self.meter = voicer.meter
        self.model_path = getattr(voicer, "path", type(voicer).__name__)
        self.seed = seed
        self._cache: OrderedDict[tuple, list[list[Note]]] = OrderedDict()

    def harmonise_bar(
        self, loop: Sequence[Note], loop_bars: int, position: int, capsule: Capsule,
        sampling: SamplingOverrides = NO_OVERRIDES,
    ) -> list[Note]:
        """The voices of bar ``position`` (bars since the loop's first bar line) under ``loop``."""
        if loop_bars not in LOOP_BARS:
            raise ConfigError(f"a loop is 1, 2, 4 or 8 bars long, got {loop_bars!r}")
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise ConfigError(f"position must be an int >= 0, got {position!r}")
        period = max(PHRASE_BARS, loop_bars)
        where = position % period
        phrase = where // PHRASE_BARS  # an 8-bar loop is two phrases, each voiced when first asked for
        key = (tuple(loop), loop_bars, phrase, _capsule_key(capsule))
        bars = self._cache.get(key)
        if bars is None:
            length = self.meter.beats_per_bar
            first = phrase * PHRASE_BARS  # the phrase's first bar in the (repeated) loop
            melody = []
            for k in range(PHRASE_BARS // loop_bars if loop_bars < PHRASE_BARS else 1):
                for n in loop:
                    onset = n.onset + k * loop_bars * length - first * length
                    if 0 <= onset < PHRASE_BARS * length and 0 <= n.onset < loop_bars * length:
                        melody.append(Note(n.pitch, onset, n.duration, n.velocity, n.channel))
            # the same draws under every emotion (the seed leaves the capsule out): a knob turn changes
            # what the judge keeps and the capsule the model hears, not the dice
            bars = self.voicer.voice_bars(melody, PHRASE_BARS, capsule, seed=stable_seed(self.seed, key[:3]))
            self._cache[key] = bars
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return list(bars[where % PHRASE_BARS])

    # a harmoniser alone does not continue or answer phrases
    def prime(self, seed: Sequence[Note]) -> None:
        raise ConfigError("the harmoniser only harmonises: use --mode harmonise")

    def generate_bar(self, capsule: Capsule, sampling: SamplingOverrides = NO_OVERRIDES, *,
                     rng: np.random.Generator | None = None) -> list[Note]:
        raise ConfigError("the harmoniser only harmonises: use --mode harmonise")


class Band:
    """A lead generator whose bars come with voices under them (parts 1..3)."""

    def __init__(self, lead, voicer: Voicer, *, seed: int = 0) -> None:
        self.lead = lead
        self.voicer = voicer
        self.meter = lead.meter
        if abs(voicer.meter.beats_per_bar - self.meter.beats_per_bar) > 1e-9:
            raise ConfigError(f"the lead plays in {self.meter} but the voices in {voicer.meter}")
        self.model_path = f"{getattr(lead, 'model_path', '?')} + {getattr(voicer, 'path', type(voicer).__name__)}"
        self.provider = getattr(lead, "provider", "unknown")
        self.seed = seed
        self._window: list[list[Note]] = []  # the melody of the last bars, onsets from each bar line
        self._bars = 0
        if callable(getattr(lead, "revise", None)):  # a knob turn redoes the sounding bar (lead and voices)
            self.revise = self._revise

    def prime(self, seed: Sequence[Note]) -> None:
        self.lead.prime(seed)
        length = self.meter.beats_per_bar
        count = int(max((n.onset for n in seed), default=-1.0) // length) + 1
        bars: list[list[Note]] = [[] for _ in range(count)]
        for n in seed:
            if n.onset >= 0:
                b = int(n.onset // length)
                bars[b].append(Note(n.pitch, n.onset - b * length, n.duration, n.velocity, LEAD))
        self._window = bars[-CONTEXT_BARS:]

    def generate_bar(self, capsule: Capsule, sampling: SamplingOverrides = NO_OVERRIDES, *,
                     rng: np.random.Generator | None = None) -> list[Note]:
        lead = [Note(n.pitch, n.onset, n.duration, n.velocity, LEAD)
                for n in self.lead.generate_bar(capsule, sampling, rng=rng)]
        self._window = [*self._window, lead][-(CONTEXT_BARS + 1):]
        self._bars += 1
        return lead + self._voices_of_last_bar(capsule)

    def _voices_of_last_bar(self, capsule: Capsule) -> list[Note]:
        """The voices under the last bar of the window (the bars before it heard too)."""
        length = self.meter.beats_per_bar
        melody = [Note(n.pitch, n.onset + i * length, n.duration, n.velocity)
                  for i, bar in enumerate(self._window) for n in bar]
        if not melody:
            return []
        return self.voicer.voice_bars(melody, len(self._window), capsule, seed=stable_seed(self.seed, self._bars))[-1]

    def _revise(self, from_beat: float, capsule: Capsule, sampling: SamplingOverrides = NO_OVERRIDES, *,
                rng: np.random.Generator | None = None, drop_bars: int = 0) -> list[Note]:
        """A knob turn while the last bar (``drop_bars`` before the newest) sounds: the lead's rest of it
        from ``from_beat`` drawn again in ``capsule`` (the lead's own ``revise``), and the voices under
        the new bar, from ``from_beat`` on. The bars generated after it are forgotten."""
        rest = [Note(n.pitch, n.onset, n.duration, n.velocity, LEAD)
                for n in self.lead.revise(from_beat, capsule, sampling, rng=rng, drop_bars=drop_bars)]
        if drop_bars:
            self._window = self._window[: max(0, len(self._window) - drop_bars)]
            self._bars = max(0, self._bars - drop_bars)
        kept = [n for n in self._window[-1] if n.onset < from_beat - 1e-9] if self._window else []
        if self._window:
            self._window[-1] = kept + rest
        else:
            self._window = [rest]
        return rest + [n for n in self._voices_of_last_bar(capsule) if n.onset >= from_beat - 1e-9]
