"""From pieces to labelled token segments: augmentation, labels, the split.

Augmentation decouples emotion from corpus. Folk tunes are mostly major and
busy, chorales and motets slow: without help a model would learn "Q1 = jig".
So every piece is also seen

* time-scaled: durations halved (busier, higher arousal) or doubled (sparser,
  lower arousal), against the same meter and tempo;
* in the parallel mode: major <-> natural minor by moving the third, sixth
  and seventh degrees a semitone, only for pieces whose key is clear
  (Krumhansl correlation >= ``min_key_clarity``), since a modal or chromatic
  piece has no "parallel" to move to;
* at another dynamic level (velocities scaled), which moves arousal;
* transposed (done per batch in the torch dataset; it changes no label);
* re-barred: a 2/4 tune's augmented copies are written as 4/4 (two bars as
  one), so the model sees full 4/4 bars of the material most folk tunes are
  notated in, while the original keeps its 2/4.

With a vocabulary that has control tokens, every bar also carries its
measured attributes (:mod:`affetto.analysis.attributes`); the key is the key of the
whole segment (for a transition, of its seed and of its continuation).

Each segment of ``segment_bars`` bars is then labelled by the feature judge
at a fixed tempo: the model cannot hear tempo, which the DAW sets, so labels
rest on what the tokens carry (mode, density, velocity).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from affetto.analysis.attributes import UNCLEAR_KEY, key_from, transpose_key
from affetto.analysis.emotion import Quadrant
from affetto.analysis.judge import PITCH_NAMES, JudgeConfig, change_mode, estimate_key, judge_arrays
from affetto.models.corpus import Piece, split_of
from affetto.music.notes import TimeSignature
from affetto.tokens.layout import KEY, PITCH
from affetto.tokens.vocab import Vocabulary

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class DataConfig:
    segment_bars: int = 16
    hop_bars: int = 8  # segments overlap by half
    max_tokens: int = 1023  # tokens per segment after BOS (model context - 1)
    variants: int = 3  # augmented copies per piece besides the original
    time_scales: tuple[float, ...] = (0.5, 2.0)
    velocity_scales: tuple[float, ...] = (0.55, 0.75, 1.2)
    mode_change_rate: float = 0.5
    min_key_clarity: float = 0.65
    label_tempo: float = 110.0
    seed: int = 1234
    transitions: int = 2  # per piece: seed bars in one variant, continued in another of other emotion
    transition_seed_bars: int = 4
    mode_transition_share: float = 0.5  # of transitions, those whose two variants differ in mode
    rebar: bool = True  # augmented copies of 2/4 tunes written as 4/4

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Example:
    tokens: np.ndarray  # int16, no BOS
    quadrant: int
    valence: float
    arousal: float
    piece: int  # index into the piece list
    variant: str
    target_from: int = 0  # tokens before this index are context only (no loss)


# ---- augmentation ------------------------------------------------------------
def time_scale(notes: np.ndarray, factor: float) -> np.ndarray | None:
    """Scale onsets and durations; None where halving would leave the grid."""
    out = notes.copy()
    if factor == 0.5:
        if (notes[:, 0] % 2).any() or (notes[:, 1] % 2).any():
            return None
        out[:, :2] //= 2
    elif factor == 2.0:
        out[:, :2] *= 2
    elif factor != 1.0:
        raise ValueError(f"time scale must be 0.5, 1 or 2, got {factor}")
    return out


def scale_velocity(notes: np.ndarray, factor: float) -> np.ndarray:
    out = notes.copy()
    out[:, 3] = np.clip(np.round(out[:, 3] * factor), 1, 127)
    return out


def transpose_tokens(vocab: Vocabulary, tokens: np.ndarray, shift: int) -> np.ndarray:
    """Tokens moved by ``shift`` semitones: pitches, and the tonic of KEY tokens.

    The caller keeps pitches inside the vocabulary's range.
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    types = vocab.types[tokens]
    out = tokens + (types == PITCH) * shift
    if vocab.n_keys:
        keys = types == KEY
        if keys.any():
            out[keys] = vocab.key0 + transpose_key(tokens[keys] - vocab.key0, shift)
    return out


def variants_of(piece: Piece, config: DataConfig, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """The original and ``config.variants`` randomly augmented copies of a piece."""
    out = [("orig", piece.notes)]
    beats = piece.notes[:, 1] / 4.0
    tonic, mode, clarity = estimate_key(piece.notes[:, 2], beats)
    for _ in range(config.variants):
        notes = piece.notes
        tags: list[str] = []
        if rng.random() < 0.6:
            factor = float(rng.choice(config.time_scales))
            scaled = time_scale(notes, factor)
            if scaled is not None:
                notes, tags = scaled, [*tags, f"x{factor:g}"]
        if clarity >= config.min_key_clarity and rng.random() < config.mode_change_rate:
            notes, tags = change_mode(notes, tonic, mode), [*tags, "minor" if mode == "major" else "major"]
        if rng.random() < 0.7:
            factor = float(rng.choice(config.velocity_scales))
            notes, tags = scale_velocity(notes, factor), [*tags, f"v{factor:g}"]
        if tags:
            out.append(("+".join(tags), notes))
    return out


# ---- segments and labels --------------------------------------------------------
def segments(notes: np.ndarray, bar_steps: int, config: DataConfig) -> list[np.ndarray]:
    """Windows of ``segment_bars`` bars every ``hop_bars`` bars, onsets relative to the window."""
    if len(notes) == 0:
        return []
    bars = int(notes[:, 0].max() // bar_steps) + 1
    out = []
    starts = range(0, max(1, bars - config.segment_bars + config.hop_bars), config.hop_bars)
    for first in starts:
        lo, hi = first * bar_steps, (first + config.segment_bars) * bar_steps
        sel = notes[(notes[:, 0] >= lo) & (notes[:, 0] < hi)]
        if len(sel) < 4:
            continue
        seg = sel.copy()
        seg[:, 0] -= lo
        out.append(seg)
    return out


def label(notes: np.ndarray, bar_steps: int, n_bars: int, steps_per_beat: int, config: DataConfig,
          judge_config: JudgeConfig):
    """Judge a segment given in steps."""
    spb = float(steps_per_beat)
    return judge_arrays(
        notes[:, 2],
        notes[:, 0] / spb,
        notes[:, 1] / spb,
        notes[:, 3],
        n_bars * bar_steps / spb,
        config.label_tempo,
        judge_config,
    )


def verdict_key(verdict, clarity: float) -> int:
    """The key class of a judgement (the judge names its key, e.g. "A minor")."""
    name, mode = verdict.key.split()
    return key_from(PITCH_NAMES.index(name), mode, verdict.key_clarity, clarity)


def meter_for(meter: TimeSignature, tag: str, config: DataConfig) -> TimeSignature:
    """The meter a variant is written in: augmented 2/4 copies as 4/4."""
    if config.rebar and tag != "orig" and meter == TimeSignature(2, 4):
        return TimeSignature(4, 4)
    return meter


def vocab_meter(meter: TimeSignature, vocab: Vocabulary) -> TimeSignature | None:
    """``meter`` if the vocabulary writes it, else one of its meters of the same length; None if none."""
    if not vocab.meters or meter in vocab.meters:
        return meter
    try:
        steps = vocab.grid.steps_per_bar(meter)
    except ValueError:
        return None
    same = [m for m in vocab.meters if vocab.grid.steps_per_bar(m) == steps]
    return same[0] if same else None


def fit_tokens(tokens: np.ndarray, max_tokens: int, bar_token: int) -> np.ndarray:
    """Cut a token stream to at most ``max_tokens``, at a bar line where possible."""
    if len(tokens) <= max_tokens:
        return tokens
    bars = np.flatnonzero(tokens[: max_tokens + 1] == bar_token)
    cut = int(bars[-1]) if len(bars) and bars[-1] > 0 else max_tokens
    return tokens[:cut]


def window(notes: np.ndarray, bar_steps: int, first: int, n_bars: int) -> np.ndarray:
    """Notes whose onsets fall in bars ``first .. first + n_bars - 1``, onsets relative to ``first``."""
    lo, hi = first * bar_steps, (first + n_bars) * bar_steps
    out = notes[(notes[:, 0] >= lo) & (notes[:, 0] < hi)].copy()
    out[:, 0] -= lo
    return out


def transition_examples(
    variants: list[tuple[str, np.ndarray]],
    index: int,
    bar_steps: int,
    vocab: Vocabulary,
    config: DataConfig,
    judge_config: JudgeConfig,
    rng: np.random.Generator,
    *,
    meter: TimeSignature = TimeSignature(4, 4),
) -> list[Example]:
    """Seed bars from one variant continued by the next bars of a variant of another emotion.

    The condition is the continuation's label and only the continuation is
    learned, so the model is taught what the daemon asks of it: to follow
    the knob even when the phrase so far says otherwise (a major seed
    continued in the parallel minor, a busy one continued sparser, ...).
    """
    k = config.transition_seed_bars
    n = config.segment_bars
    spb = vocab.config.steps_per_beat
    out: list[Example] = []
    if len(variants) < 2:
        return out
    moved = [any(t in ("minor", "major") for t in tag.split("+")) for tag, _ in variants]
    across = [(i, j) for i in range(len(variants)) for j in range(len(variants)) if moved[i] != moved[j]]
    for _ in range(config.transitions):
        if across and rng.random() < config.mode_transition_share:
            a, b = across[int(rng.integers(len(across)))]  # the same tune going on in the other mode
        else:
            a, b = rng.choice(len(variants), size=2, replace=False)
        (tag_a, notes_a), (tag_b, notes_b) = variants[int(a)], variants[int(b)]
        bars_a = int(notes_a[:, 0].max() // bar_steps) + 1
        bars_b = int(notes_b[:, 0].max() // bar_steps) + 1
        last = min(bars_a - k, bars_b - n)
        if last < 0:
            continue
        first = int(rng.integers(0, last + 1))
        seed = window(notes_a, bar_steps, first, k)
        cont = window(notes_b, bar_steps, first + k, n - k)
        if len(seed) < 2 or len(cont) < 4:
            continue
        before = label(seed, bar_steps, k, spb, config, judge_config)
        after = label(cont, bar_steps, n - k, spb, config, judge_config)
        if before.quadrant == after.quadrant:
            continue
        clarity = vocab.config.key_clarity
        head = vocab.encode_steps(seed, bar_steps, k, meter=meter, key=verdict_key(before, clarity))
        tail = vocab.encode_steps(cont, bar_steps, n - k, meter=meter, key=verdict_key(after, clarity))
        tokens = fit_tokens(np.concatenate([head, tail]), config.max_tokens, vocab.bar)
        if len(tokens) <= len(head):
            continue
        out.append(Example(tokens.astype(np.int16), int(after.quadrant), after.valence, after.arousal, index,
                           f"{tag_a}->{tag_b}", target_from=len(head)))
    return out


def build_examples(
    pieces: Sequence[Piece],
    vocab: Vocabulary,
    config: DataConfig = DataConfig(),
    judge_config: JudgeConfig = JudgeConfig(),
    *,
    labels: dict[int, Quadrant] | None = None,
    augment: bool = True,
    progress: bool = False,
) -> list[Example]:
    """Labelled token segments of every piece (and its variants when ``augment``).

    Pieces with a label in ``labels`` (a data set that names its quadrants)
    keep it for every segment and are not augmented, since time scaling and
    mode change would contradict the label; the rest are labelled by the judge.
    """
    labels = labels or {}
    rng = np.random.default_rng(config.seed)
    spb = vocab.config.steps_per_beat
    examples: list[Example] = []
    iterator = enumerate(pieces)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, total=len(pieces), desc="labelling", unit="piece")
    clarity = vocab.config.key_clarity
    for index, piece in iterator:
        given = labels.get(index)
        if augment and given is None:
            variants = variants_of(piece, config, rng)
        else:
            variants = [("orig", piece.notes)]
        by_meter: dict[TimeSignature, list[tuple[str, np.ndarray]]] = {}
        for tag, notes in variants:
            meter = vocab_meter(meter_for(piece.meter, tag, config), vocab)
            if meter is None:
                continue
            try:
                bar_steps = vocab.grid.steps_per_bar(meter)
            except ValueError:
                continue
            if bar_steps > vocab.config.max_bar_steps:
                continue
            by_meter.setdefault(meter, []).append((tag, notes))
            for seg in segments(notes, bar_steps, config):
                n_bars = int(seg[:, 0].max() // bar_steps) + 1
                verdict = label(seg, bar_steps, n_bars, spb, config, judge_config)
                if given is None:
                    quadrant, valence, arousal = int(verdict.quadrant), verdict.valence, verdict.arousal
                else:
                    quadrant, valence, arousal = int(given), given.valence, given.arousal
                key = verdict_key(verdict, clarity) if vocab.config.controls else UNCLEAR_KEY
                tokens = vocab.encode_steps(seg, bar_steps, n_bars, meter=meter, key=key)
                tokens = fit_tokens(tokens, config.max_tokens, vocab.bar)
                examples.append(Example(tokens.astype(np.int16), quadrant, valence, arousal, index, tag))
        if augment and given is None and config.transitions:
            for meter, group in by_meter.items():
                bar_steps = vocab.grid.steps_per_bar(meter)
                examples += transition_examples(group, index, bar_steps, vocab, config, judge_config, rng,
                                               meter=meter)
    return examples


def assign_splits(pieces: Sequence[Piece]) -> list[str]:
    """The split of every piece, by its hash; a small data set still gets one validation piece."""
    splits = [split_of(p.split_key) for p in pieces]
    if "valid" not in splits and len(set(p.split_key for p in pieces)) > 1:
        key = min((p.split_key for p in pieces), key=lambda k: hashlib.md5(k.encode("utf-8")).hexdigest())
        splits = ["valid" if p.split_key == key else s for p, s in zip(pieces, splits)]
    return splits


def split_examples(examples: Sequence[Example], pieces: Sequence[Piece]) -> dict[str, list[Example]]:
    """Train/valid/test by piece (or song), never by bar or variant."""
    splits = assign_splits(pieces)
    out: dict[str, list[Example]] = {"train": [], "valid": [], "test": []}
    for ex in examples:
        out[splits[ex.piece]].append(ex)
    return out


def label_distribution(examples: Sequence[Example]) -> dict[str, int]:
    counts = Counter(ex.quadrant for ex in examples)
    return {f"{q.name} {q.mood}": counts.get(int(q), 0) for q in Quadrant}


def describe(examples: Sequence[Example]) -> str:
    dist = label_distribution(examples)
    total = max(1, sum(dist.values()))
    tokens = sum(len(ex.tokens) for ex in examples)
    parts = [f"{k}: {v} ({100 * v / total:.0f}%)" for k, v in dist.items()]
    return f"{len(examples)} segments, {tokens} tokens; " + ", ".join(parts)
