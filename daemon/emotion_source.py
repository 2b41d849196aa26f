"""Where the next bar's emotion comes from: the knob, or the player's own mood.

The conductor asks one :class:`EmotionSource` at every bar line, with the
controls' settings for the next bar (the knob's capsule, smoothed) and the
seed buffer, and asks the generator with the settings it answers:

- ``knob``: the knob's capsule, as it is;
- ``follow``: the mood the player is playing in, recognised at every bar
  line (:func:`affetto.words.mood.recognise`, the learned recogniser) from
  the player's current phrase: the bars since the player last changed mood
  (at most ``WINDOW_BARS``). The bar that just ended is heard alone first:
  when it clearly turns the phrase's arousal over (on the other side of
  neutral and at least ``CLEAR`` from it) a new phrase starts with it, so a
  change is followed at once; when it turns only the valence over, a new
  phrase starts once the next bar does too (a dominant chord in a minor
  phrase reads major on its own); otherwise it is heard with the bars before
  it, since one bar is enough for density and dynamics but not always for the
  mode (an arpeggio without its root, a bar of the relative major). The
  followed point on the valence/arousal plane moves toward what was heard by
  the config's ``emotion_smoothing`` (the knob's own smoothing); a silent bar
  leaves it where it is and ends the phrase. Before the player's first note
  the knob rules. When the mood turns over, the bars before the new phrase
  are forgotten from the seed buffer: what the player played before no longer
  speaks for them, so the mode primes the model from the new phrase alone
  (continue mode would otherwise prime from the last four bars, and the
  emotion plan's density and loudness, relative to that prime, would lag).
  Only for modes that continue or answer the seed: harmonise's loop keeps
  all its bars, whatever their moods;
- ``contrast``: the followed point with its valence turned over: a sad phrase
  (minor, soft, sparse) is answered calm (major, as soft and sparse), a tense
  one happy, and the other way round;
- ``blend``: the followed point offset by half the knob's own valence and
  arousal (the knob at happy brightens and livens what the player plays; at
  sad darkens and calms it).

Recognition runs here, in the conductor's thread at the bar line, where the
seed is read: never on the MIDI thread. It takes well under a millisecond
per bar (``last_ms``/``worst_ms``; ``bench/bench_follow.py`` measures it), far
inside the lookahead of one bar. With ``follow`` and ``contrast`` the knob is
not heard, so a knob turn asks nothing again (:attr:`hears_knob`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from affetto.analysis.emotion import Capsule, va_capsule
from affetto.daemon.config import EMOTION_SOURCES as SOURCES
from affetto.daemon.controls import Settings
from affetto.daemon.modes import mode_class
from affetto.daemon.seed import SeedBuffer
from affetto.errors import ConfigError
from affetto.music.notes import Note, TimeSignature
from affetto.words.mood import Mood

log = logging.getLogger(__name__)

BLEND = 0.5  # share of the knob's valence and arousal added to the player's in blend
WINDOW_BARS = 4  # the longest phrase heard at once
FORGETFUL_TASKS = ("continue", "answer")  # modes whose prime may drop the bars before a turn of mood
CLEAR = 0.6  # a bar turns the phrase's mood over when its valence or arousal is this far on the other side

Recognise = Callable[[Sequence[Note], TimeSignature], Mood]


def _clip(x: float) -> float:
    return min(1.0, max(-1.0, x))


def turned_over(phrase: float, bar: float) -> bool:
    """Whether a bar's valence (or arousal) ``bar`` clearly leaves the ``phrase``'s: on the other side of
    neutral, and at least ``CLEAR`` from it."""
    return phrase * bar < 0 and abs(bar) >= CLEAR


class EmotionSource:
    """The capsule for the next bar, from the knob or the player's recognised mood."""

    def __init__(self, kind: str, meter: TimeSignature, *, smoothing: float = 0.3,
                 recognise: Recognise | None = None, forget: bool = True) -> None:
        if kind not in SOURCES:
            raise ConfigError(f"emotion_source must be one of {', '.join(SOURCES)}, got {kind!r}")
        self.kind = kind
        self.meter = meter
        self.smoothing = smoothing  # weight of the followed point's last position at each bar line
        self.forget = forget  # a turn of mood forgets the old phrase from the seed buffer
        if recognise is None and kind != "knob":
            from affetto.words.mood import shipped_recogniser

            recognise = shipped_recogniser()  # loaded now, before the first bar line needs it
        self._recognise = recognise
        self.point: tuple[float, float] | None = None  # the followed (valence, arousal); None before a note
        self.mood: Mood | None = None  # the latest recognised mood
        self.last_ms = 0.0  # the latest recognition's time
        self.worst_ms = 0.0
        self.recognised = 0  # bars recognised
        self.since: int | None = None  # the first bar of the player's current phrase
        self.turning: tuple[int, float] | None = None  # (bar, valence) that alone turned the phrase's over

    @classmethod
    def from_config(cls, config) -> EmotionSource:
        forget = mode_class(config.mode).task in FORGETFUL_TASKS
        return cls(config.emotion_source, config.meter, smoothing=config.emotion_smoothing, forget=forget)

    @property
    def hears_knob(self) -> bool:
        """Whether a knob turn changes what this source answers."""
        return self.kind in ("knob", "blend")

    def at_bar_line(self, bar: int, seed: SeedBuffer, settings: Settings) -> Settings:
        """Bar ``bar`` just started: the settings for the next bar, its capsule from this source."""
        if self.kind == "knob":
            return settings
        recognise = self._recognise
        if bar < 1 or recognise is None:
            return self.apply(settings)
        if not seed.bar_has_notes(bar - 1):
            self.since = self.turning = None  # a silent bar ends the phrase
            return self.apply(settings)
        t0 = time.perf_counter_ns()
        heard = bar - 1
        mood = recognise(seed.phrase(heard, bar), self.meter)
        start = None  # the first bar of a new phrase, if one starts
        if self.since is None or self.mood is None or turned_over(self.mood.arousal, mood.arousal):
            start = heard
        elif (self.turning is not None and self.turning[0] == heard - 1
              and mood.valence * self.turning[1] > 0 and abs(mood.valence) >= CLEAR):
            start = heard - 1  # two bars in a row on the new side: the mode has changed
        elif turned_over(self.mood.valence, mood.valence):
            self.turning = (heard, mood.valence)
        else:
            self.turning = None
        if start is not None:
            if self.forget and self.mood is not None and self.since is not None:
                seed.forget_before(start)  # a new mood: the old phrase no longer speaks for the player
            self.since, self.turning = start, None
        since = heard if self.since is None else self.since
        if heard > since:
            mood = recognise(seed.phrase(max(since, bar - WINDOW_BARS), bar), self.meter)
        self.last_ms = (time.perf_counter_ns() - t0) / 1e6
        self._hear(bar, mood)
        return self.apply(settings)

    def _hear(self, bar: int, mood: Mood) -> None:
        self.worst_ms = max(self.worst_ms, self.last_ms)
        self.recognised += 1
        if self.mood is None or mood.quadrant != self.mood.quadrant:
            log.info("bar %d: the player sounds %s (%.1f ms)", bar - 1, mood, self.last_ms)
        self.mood = mood
        target = (mood.valence, mood.arousal)
        if self.point is None:
            self.point = target
        else:
            keep = self.smoothing
            self.point = (keep * self.point[0] + (1 - keep) * target[0],
                          keep * self.point[1] + (1 - keep) * target[1])

    def apply(self, settings: Settings) -> Settings:
        """``settings`` with this source's capsule (no recognition: after a knob turn, blend moves with it)."""
        capsule = self.capsule(settings.capsule)
        return settings if capsule is settings.capsule else replace(settings, capsule=capsule)

    def capsule(self, knob: Capsule) -> Capsule:
        """The capsule this source answers when the knob's is ``knob``."""
        if self.kind == "knob" or self.point is None:
            return knob
        valence, arousal = self.point
        if self.kind == "contrast":
            valence = -valence
        elif self.kind == "blend" and not knob.is_unconditioned:
            valence, arousal = valence + BLEND * knob.valence, arousal + BLEND * knob.arousal
        return va_capsule(_clip(valence), _clip(arousal))

    def reset(self) -> None:
        """Transport start: the player starts afresh (the knob rules until the next note)."""
        self.point = None
        self.mood = None
        self.since = self.turning = None
