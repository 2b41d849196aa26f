"""Labelled phrases for the mood recogniser: 1-4 bars drawn from pieces, augmented, labelled by features.

The corpus has no mood labels, and it is mostly folk tunes and chorales
played at one loudness, so each drawn phrase is also changed the way a
player's phrases differ, before it is labelled:

- time-scaled (durations halved or doubled: busier or sparser);
- moved to its parallel mode (major <-> natural minor, pieces with a clear
  key only: :func:`affetto.analysis.judge.change_mode`);
- thinned (a share of its notes left out: a sparse phrase);
- played at a drawn loudness (a mean velocity of 28..120, the piece's own
  accents kept, with a little jitter): the player's dynamics;
- transposed.

Labels come from the feature judge (:func:`affetto.analysis.judge.judge_arrays`
at the fixed tempo of the lead model's labels): valence from the mode
(Krumhansl-Kessler profiles), arousal from onsets per beat and velocity. A
data set with quadrants (EMOPIA, :mod:`affetto.models.userdata`) gives its own
quadrant instead; those phrases are only transposed, and their valence and
arousal are not regressed (weight 0).

Phrases of the training pieces train; those of the validation and test
pieces (by the corpus's split) are the held-out phrases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from affetto.analysis.emotion import Quadrant
from affetto.analysis.judge import JudgeConfig, change_mode, estimate_key, judge_arrays
from affetto.models.corpus import Piece
from affetto.models.data import assign_splits, time_scale
from affetto.music.notes import Grid
from affetto.words.mood import MAX_BEATS, ROLL_CHANNELS, STEPS_PER_BEAT, SUMMARY_SIZE, phrase_arrays

GRID = Grid(STEPS_PER_BEAT)
MAX_STEPS = int(MAX_BEATS) * STEPS_PER_BEAT  # the longest roll a phrase makes


@dataclass(frozen=True)
class MoodDataConfig:
    min_bars: int = 1
    max_bars: int = 4  # and at most MAX_BEATS beats
    time_scale_rate: float = 0.5  # share of phrases time-scaled (x0.5 or x2)
    mode_change_rate: float = 0.5
    min_key_clarity: float = 0.65
    thin_rate: float = 0.3  # share of phrases thinned
    thin_keep: tuple[float, float] = (0.35, 0.85)  # share of notes a thinned phrase keeps
    loudness: tuple[float, float] = (28.0, 120.0)  # mean velocity drawn uniformly
    velocity_jitter: float = 8.0
    transpose: tuple[int, int] = (-6, 6)
    label_tempo: float = 110.0
    min_notes: int = 2

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PhraseSet:
    """Phrases as arrays: ``roll`` (N, C, MAX_STEPS) float16 zero-padded, ``steps`` (N,) their lengths,
    ``summary`` (N, S), ``quadrant`` (N,), ``va`` (N, 2) targets, ``va_weight`` (N,) (0: not regressed),
    ``density`` (N,) onsets per beat, ``velocity`` (N,) mean velocity, ``piece`` (N,) the source piece.
    ``notes`` keeps each phrase's (pitch, onset beats, duration beats, velocity) rows when asked for."""

    roll: np.ndarray
    steps: np.ndarray
    summary: np.ndarray
    quadrant: np.ndarray
    va: np.ndarray
    va_weight: np.ndarray
    density: np.ndarray
    velocity: np.ndarray
    piece: np.ndarray
    bar_beats: np.ndarray
    notes: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.quadrant)

    def mask(self, index: np.ndarray) -> np.ndarray:
        return (np.arange(MAX_STEPS)[None, :] < self.steps[index, None]).astype(np.float32)

    def counts(self) -> dict[str, int]:
        return {f"{q.name} {q.mood}": int((self.quadrant == int(q)).sum()) for q in Quadrant}


class PhraseDrawer:
    """Draws augmented, labelled phrases from pieces (key estimates cached per piece)."""

    def __init__(self, pieces: Sequence[Piece], config: MoodDataConfig = MoodDataConfig(),
                 labels: dict[int, Quadrant] | None = None, judge_config: JudgeConfig = JudgeConfig()) -> None:
        self.pieces = list(pieces)
        self.config = config
        self.labels = labels or {}
        self.judge_config = judge_config
        self._keys: dict[int, tuple[int, str, float]] = {}
        bars = np.array([self._bars(p) for p in self.pieces], np.float64)
        self.weights = bars / bars.sum() if bars.sum() > 0 else None  # longer pieces give more phrases

    @staticmethod
    def _bars(piece: Piece) -> int:
        if len(piece.notes) == 0:
            return 0
        return int(piece.notes[:, 0].max()) // GRID.steps_per_bar(piece.meter) + 1

    def key(self, index: int) -> tuple[int, str, float]:
        if index not in self._keys:
            notes = self.pieces[index].notes
            self._keys[index] = estimate_key(notes[:, 2], notes[:, 1] / STEPS_PER_BEAT)
        return self._keys[index]

    def draw(self, rng: np.random.Generator, *, augment: bool = True) -> tuple[int, np.ndarray, float] | None:
        """(piece index, phrase rows of (pitch, onset beats, duration beats, velocity), bar beats) or None."""
        c = self.config
        index = int(rng.choice(len(self.pieces), p=self.weights))
        piece = self.pieces[index]
        labelled = index in self.labels
        notes = piece.notes
        bar_steps = GRID.steps_per_bar(piece.meter)
        if augment and not labelled:
            if rng.random() < c.time_scale_rate:
                scaled = time_scale(notes, float(rng.choice((0.5, 2.0))))
                if scaled is not None:
                    notes = scaled
            tonic, mode, clarity = self.key(index)
            if clarity >= c.min_key_clarity and rng.random() < c.mode_change_rate:
                notes = change_mode(notes, tonic, mode)
        bar_beats = bar_steps / STEPS_PER_BEAT
        most = max(1, min(c.max_bars, int(MAX_BEATS // bar_beats)))
        n_bars = int(rng.integers(c.min_bars, max(c.min_bars, most) + 1))
        bars_with_notes = np.unique(notes[:, 0] // bar_steps)
        first = int(rng.choice(bars_with_notes))
        sel = notes[(notes[:, 0] >= first * bar_steps) & (notes[:, 0] < (first + n_bars) * bar_steps)]
        if augment and not labelled and rng.random() < c.thin_rate:
            sel = sel[rng.random(len(sel)) < rng.uniform(*c.thin_keep)]
        if len(sel) < c.min_notes:
            return None
        sel = sel.astype(np.float64)
        start = (sel[:, 0].min() // bar_steps) * bar_steps  # the phrase begins at its first bar with a note
        onset = (sel[:, 0] - start) / STEPS_PER_BEAT
        duration = sel[:, 1] / STEPS_PER_BEAT
        velocity = sel[:, 3]
        if augment and not labelled:
            level = rng.uniform(*c.loudness)
            velocity = level * velocity / max(velocity.mean(), 1.0) + rng.normal(0.0, c.velocity_jitter, len(sel))
        velocity = np.clip(np.round(velocity), 1, 127)
        pitch = sel[:, 2].astype(np.int64)
        if augment:
            low = max(c.transpose[0], 21 - int(pitch.min()))
            high = min(c.transpose[1], 108 - int(pitch.max()))
            if low <= high:
                pitch = pitch + int(rng.integers(low, high + 1))
        return index, np.stack([pitch, onset, duration, velocity], axis=1), bar_beats

    def label(self, index: int, rows: np.ndarray, bar_beats: float) -> tuple[int, float, float, float, float, float]:
        """(quadrant, valence, arousal, va weight, onsets per beat, mean velocity) of a phrase."""
        bars = int(rows[:, 1].max() // bar_beats) + 1
        verdict = judge_arrays(rows[:, 0].astype(np.int64), rows[:, 1], rows[:, 2], rows[:, 3], bars * bar_beats,
                               self.config.label_tempo, self.judge_config)
        given = self.labels.get(index)
        if given is not None:
            return int(given), verdict.valence, verdict.arousal, 0.0, verdict.density, verdict.velocity
        return int(verdict.quadrant), verdict.valence, verdict.arousal, 1.0, verdict.density, verdict.velocity


def draw_phrases(pieces: Sequence[Piece], count: int, seed: int, *, config: MoodDataConfig = MoodDataConfig(),
                 labels: dict[int, Quadrant] | None = None, augment: bool = True, keep_notes: bool = False,
                 progress: bool = False) -> PhraseSet:
    """``count`` labelled phrases drawn from ``pieces`` (with their ``labels``, if any)."""
    drawer = PhraseDrawer(pieces, config, labels)
    rng = np.random.default_rng(seed)
    roll = np.zeros((count, ROLL_CHANNELS, MAX_STEPS), np.float16)
    summary = np.zeros((count, SUMMARY_SIZE), np.float32)
    steps = np.zeros(count, np.int64)
    quadrant = np.zeros(count, np.int64)
    va = np.zeros((count, 2), np.float32)
    va_weight = np.zeros(count, np.float32)
    density = np.zeros(count, np.float32)
    velocity = np.zeros(count, np.float32)
    piece = np.zeros(count, np.int64)
    bar_beats = np.zeros(count, np.float32)
    kept: list[np.ndarray] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=count, desc="phrases", unit="phrase")
    i = tries = 0
    while i < count:
        tries += 1
        if tries > 20 * count + 100:
            raise ValueError(f"only {i} of {count} phrases could be drawn from {len(pieces)} pieces")
        drawn = drawer.draw(rng, augment=augment)
        if drawn is None:
            continue
        index, rows, beats_per_bar = drawn
        bars = int(rows[:, 1].max() // beats_per_bar) + 1
        r, s = phrase_arrays(rows[:, 0].astype(np.int64), rows[:, 1], rows[:, 2], rows[:, 3], bars, beats_per_bar)
        if r.shape[1] > MAX_STEPS:
            continue
        q, v, a, w, dens, vel = drawer.label(index, rows, beats_per_bar)
        roll[i, :, : r.shape[1]] = r
        steps[i] = r.shape[1]
        summary[i], quadrant[i], va[i], va_weight[i] = s, q, (v, a), w
        density[i], velocity[i], piece[i], bar_beats[i] = dens, vel, index, beats_per_bar
        if keep_notes:
            kept.append(rows)
        i += 1
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return PhraseSet(roll, steps, summary, quadrant, va, va_weight, density, velocity, piece, bar_beats,
                     kept if keep_notes else None)


def split_pieces(pieces: Sequence[Piece], labels: dict[int, Quadrant] | None = None
                 ) -> tuple[tuple[list[Piece], dict[int, Quadrant]], tuple[list[Piece], dict[int, Quadrant]]]:
    """(train pieces, their labels), (held-out pieces: validation and test, their labels)."""
    labels = labels or {}
    splits = assign_splits(pieces)
    out: dict[bool, tuple[list[Piece], dict[int, Quadrant]]] = {True: ([], {}), False: ([], {})}
    for i, (p, s) in enumerate(zip(pieces, splits)):
        group, given = out[s == "train"]
        if i in labels:
            given[len(group)] = labels[i]
        group.append(p)
    return out[True], out[False]
