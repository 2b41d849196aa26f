"""Phrases for the transfer family: windows of 1-4 bars, parallel-mode pairs, note batches.

Every piece (the corpus's, or a user's performed MIDI) is cut into windows of
1 to 4 bars every ``hop_bars`` bars, a few per piece; a share of pieces also
gives windows of a time-scaled copy (halved or doubled durations: busier or
sparser material, as :mod:`affetto.models.data` augments). A window whose key
is clear (Krumhansl correlation >= ``min_key_clarity``) gets a partner, the
same window in the parallel mode (:func:`affetto.analysis.judge.change_mode`):
the supervised transfer pair. A batch draws windows of one shape (bars and
bar length), so the graph sees no padding; the pair's source is encoded with
its own condition and the decoder is asked for the partner under the
partner's, or for the window itself.

The performance decoder's batches are the same windows' notes with the
velocities they carry, scaled by one of ``velocity_scales`` (the corpus's
dynamic-level copies) for pieces without a label; the emotion they are
conditioned on is the judged one (a louder copy reads as higher arousal) or
the data set's label.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.analysis.judge import change_mode, estimate_key
from affetto.errors import ConfigError, DatasetError
from affetto.models.corpus import Piece
from affetto.models.data import assign_splits, scale_velocity, time_scale, window
from affetto.music.notes import Grid
from affetto.transfer.model import (
    MAX_BAR_STEPS,
    N_FEATURES,
    STEPS_PER_BEAT,
    bar_bins,
    capsule_of,
    condition,
    meter_index,
    note_features,
    phrase_roll,
    tonic_shift,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhraseConfig:
    max_bars: int = 4
    hop_bars: int = 2
    windows_per_piece: int = 8
    bar_weights: tuple[float, ...] = (0.1, 0.1, 0.1, 0.7)  # of 1, 2, 3, 4 bars
    min_notes: int = 4
    min_key_clarity: float = 0.65
    time_scale_rate: float = 0.5  # share of pieces that also give windows of a time-scaled copy
    time_scales: tuple[float, ...] = (0.5, 2.0)
    velocity_scales: tuple[float, ...] = (1.0, 0.55, 0.75, 1.2)
    max_notes: int = 192  # a performer batch row holds at most this many notes
    chord_weight: float = 1.0  # how much more often a batch draws a window of chords (>= 1.5 notes per onset)
    seed: int = 1234

    def __post_init__(self) -> None:
        if len(self.bar_weights) != self.max_bars or min(self.bar_weights) < 0 or sum(self.bar_weights) <= 0:
            raise ConfigError(f"bar_weights needs {self.max_bars} weights >= 0 with a positive sum")
        for name in ("max_bars", "hop_bars", "windows_per_piece", "min_notes", "max_notes"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name} must be an int >= 1, got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PhraseConfig:
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**d)


@dataclass
class Window:
    notes: np.ndarray  # (N, 4) int64 onset, duration, pitch, velocity in steps from the window's first bar line
    n_bars: int
    bar_steps: int
    meter: int  # index of the vocabulary's meter
    tonic: int
    mode: int  # 0 major, 1 minor
    piece: int
    partner: np.ndarray | None = None  # the same window in the parallel mode
    label: int | None = None  # the data set's quadrant, when it names one


@dataclass
class Phrases:
    """Windows of one split, grouped by shape (bars, bar steps)."""

    windows: list[Window] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_shape: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, w in enumerate(self.windows):
            self.by_shape[(w.n_bars, w.bar_steps)].append(i)
        self.chordal = np.array([len(w.notes) >= 1.5 * len(np.unique(w.notes[:, 0])) for w in self.windows],
                                dtype=bool)

    def weights(self, indices: Sequence[int], chord_weight: float) -> np.ndarray:
        """Drawing weights of ``indices``: ``chord_weight`` for windows of chords, 1 for the rest."""
        return np.where(self.chordal[np.asarray(indices, dtype=np.int64)], chord_weight, 1.0)

    def __len__(self) -> int:
        return len(self.windows)

    def pairs(self) -> int:
        return sum(w.partner is not None for w in self.windows)

    def describe(self) -> str:
        shapes = sorted(self.by_shape.items(), key=lambda kv: -len(kv[1]))[:4]
        top = ", ".join(f"{b} bar(s) of {s} steps: {len(i)}" for (b, s), i in shapes)
        return f"{len(self)} windows ({self.pairs()} with a parallel-mode partner); {top}"


def piece_windows(piece: Piece, index: int, cfg: PhraseConfig, rng: np.random.Generator,
                  label: Quadrant | None = None) -> list[Window]:
    """A few windows of a piece (and of a time-scaled copy, for unlabelled pieces)."""
    try:
        meter = meter_index(piece.meter)
        bar_steps = Grid(STEPS_PER_BEAT).steps_per_bar(piece.meter)
    except ConfigError:
        return []
    if bar_steps > MAX_BAR_STEPS or len(piece.notes) == 0:
        return []
    variants = [(np.asarray(piece.notes, dtype=np.int64), cfg.windows_per_piece)]
    if label is None and rng.random() < cfg.time_scale_rate:
        scaled = time_scale(variants[0][0], float(rng.choice(cfg.time_scales)))
        if scaled is not None:
            variants.append((scaled, max(1, cfg.windows_per_piece // 2)))
    weights = np.asarray(cfg.bar_weights, dtype=float) / sum(cfg.bar_weights)
    out = []
    for notes, count in variants:
        total = int(notes[:, 0].max() // bar_steps) + 1
        starts = np.arange(0, total, cfg.hop_bars)
        for first in rng.permutation(starts)[:count].tolist():
            bars = min(int(rng.choice(cfg.max_bars, p=weights)) + 1, total - first)
            win = window(notes, bar_steps, first, bars)
            if len(win) < cfg.min_notes:
                continue
            tonic, mode, clarity = estimate_key(win[:, 2], win[:, 1] / STEPS_PER_BEAT)
            partner = change_mode(win, tonic, mode) if clarity >= cfg.min_key_clarity else None
            out.append(Window(win, bars, bar_steps, meter, tonic, int(mode == "minor"), index, partner,
                              None if label is None else int(label)))
    return out


def build_phrases(pieces: Sequence[Piece], cfg: PhraseConfig = PhraseConfig(), *,
                  labels: dict[int, Quadrant] | None = None, progress: bool = False) -> dict[str, Phrases]:
    """Windows of every piece, split by piece (train, valid, test) as the lead's data are."""
    if not pieces:
        raise DatasetError("no pieces to cut phrases from")
    labels = labels or {}
    rng = np.random.default_rng(cfg.seed)
    splits = assign_splits(pieces)
    out: dict[str, list[Window]] = {"train": [], "valid": [], "test": []}
    iterator = enumerate(pieces)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, total=len(pieces), desc="phrases", unit="piece")
    for index, piece in iterator:
        out[splits[index]].extend(piece_windows(piece, index, cfg, rng, labels.get(index)))
    phrases = {name: Phrases(ws) for name, ws in out.items()}
    if not phrases["train"].windows:
        raise DatasetError("no training phrases: every piece was too short, empty or in an unknown meter")
    return phrases


# ---- batches ---------------------------------------------------------------------------------
def _capsule(w: Window, notes: np.ndarray) -> np.ndarray:
    if w.label is not None:
        return np.array(Capsule.of(Quadrant(w.label)).weights, dtype=np.float32)
    return capsule_of(notes, w.n_bars * w.bar_steps / STEPS_PER_BEAT)


def sample_batch(phrases: Phrases, batch: int, rng: np.random.Generator, *, pair_rate: float = 0.5,
                 velocity_scales: Sequence[float] = (1.0,), chord_weight: float = 1.0) -> dict[str, np.ndarray]:
    """A CVAE batch of one shape: source roll and condition, target roll and condition.

    A window with a partner is, at ``pair_rate``, a transfer pair (either
    direction); otherwise source and target are the window itself.
    """
    shapes = list(phrases.by_shape)
    if chord_weight == 1.0:
        sizes = np.array([len(phrases.by_shape[s]) for s in shapes], dtype=float)
        shape = shapes[int(rng.choice(len(shapes), p=sizes / sizes.sum()))]
        chosen = rng.choice(phrases.by_shape[shape], size=batch, replace=len(phrases.by_shape[shape]) < batch)
    else:
        sizes = np.array([phrases.weights(phrases.by_shape[s], chord_weight).sum() for s in shapes])
        shape = shapes[int(rng.choice(len(shapes), p=sizes / sizes.sum()))]
        pool = phrases.by_shape[shape]
        w = phrases.weights(pool, chord_weight)
        chosen = rng.choice(pool, size=batch, replace=len(pool) < batch, p=w / w.sum())
    keys = ("roll", "target", "src_cond", "tgt_cond", "src_density", "src_poly", "tgt_density", "tgt_poly", "meter")
    rows: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for i in chosen.tolist():
        w = phrases.windows[i]
        src, tgt, src_mode, tgt_mode = w.notes, w.notes, w.mode, w.mode
        if w.partner is not None and rng.random() < pair_rate:
            if rng.random() < 0.5:
                tgt, tgt_mode = w.partner, 1 - w.mode
            else:
                src, src_mode = w.partner, 1 - w.mode
        if w.label is None:
            scale = float(rng.choice(velocity_scales))
            src, tgt = scale_velocity(src, scale), scale_velocity(tgt, float(rng.choice(velocity_scales)))
        shift = tonic_shift(w.tonic)
        rows["roll"].append(phrase_roll(src, w.n_bars, w.bar_steps, shift))
        rows["target"].append(phrase_roll(tgt, w.n_bars, w.bar_steps, shift))
        rows["src_cond"].append(condition(_capsule(w, src), src_mode))
        rows["tgt_cond"].append(condition(_capsule(w, tgt), tgt_mode))
        for side, notes in (("src", src), ("tgt", tgt)):
            density, poly = bar_bins(notes, w.n_bars, w.bar_steps)
            rows[f"{side}_density"].append(density)
            rows[f"{side}_poly"].append(poly)
        rows["meter"].append(np.int64(w.meter))
    return {k: np.stack(v) for k, v in rows.items()}


def sample_perf_batch(phrases: Phrases, batch: int, rng: np.random.Generator, *,
                      velocity_scales: Sequence[float] = (1.0,), max_notes: int = 192) -> dict[str, np.ndarray]:
    """A performer batch: note features, mask, capsule and the velocities (/127) to learn."""
    chosen = rng.integers(0, len(phrases), size=batch).tolist()
    sets = []
    for i in chosen:
        w = phrases.windows[i]
        notes = w.notes[np.lexsort((w.notes[:, 2], w.notes[:, 0]))][:max_notes]
        if w.label is None:
            notes = scale_velocity(notes, float(rng.choice(velocity_scales)))
        sets.append((note_features(notes, w.bar_steps, w.meter), notes[:, 3], _capsule(w, notes)))
    n = max(len(f) for f, _, _ in sets)
    feats = np.zeros((batch, n, N_FEATURES), np.int64)
    mask = np.zeros((batch, n), np.float32)
    target = np.zeros((batch, n), np.float32)
    for row, (f, v, _) in enumerate(sets):
        feats[row, : len(f)], mask[row, : len(f)], target[row, : len(f)] = f, 1.0, v / 127.0
    return {"notes": feats, "note_mask": mask, "perf_cond": np.stack([c for _, _, c in sets]),
            "velocity": target}
