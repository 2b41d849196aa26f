"""Music-caption pairs from the music21 corpus: 4-bar windows, their measured facts, captions drawn per batch.

Each piece gives up to ``per_piece`` windows of four bars (evenly spread,
each with at least ``min_notes`` notes); a group gives at most ``per_group``
(the corpus is uneven: hundreds of Palestrina movements and Ryan's tunes, one
Joplin rag). The facts of a window (:class:`~affetto.models.text.captions.Facts`)
are measured once and cached beside the corpus; the captions are drawn anew
for every batch, and a window may be transposed (the key's name and the
register move with it, nothing else does). Splits follow the corpus's
deterministic split by piece (:func:`affetto.models.corpus.split_of`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from affetto.analysis.judge import PITCH_NAMES, pitch_class_histogram
from affetto.errors import DatasetError
from affetto.models.corpus import DEFAULT_GROUPS, Piece, default_cache_dir, load_corpus, split_of
from affetto.models.text.captions import Facts, Source, caption, source_of
from affetto.music.notes import TimeSignature
from affetto.words.describe import REGISTER_EDGES, Fields, bin_word, measure_arrays
from affetto.words.textmodel import (
    PHRASE_BARS,
    STEPS_PER_BEAT,
    Vocabulary,
    bar_steps_of,
    meter_id,
    music_rows,
    pad_batch,
    tempo_bin,
)

log = logging.getLogger(__name__)
DATA_FORMAT = 1


@dataclass(frozen=True)
class DataConfig:
    per_piece: int = 4
    per_group: int = 4000
    min_notes: int = 8
    transpose: int = 6  # windows move by -transpose+1 .. transpose semitones in training
    seed: int = 0

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def second_key(pitch: np.ndarray, duration: np.ndarray) -> tuple[int, str]:
    """(tonic, mode) by the Bellman-Budge profiles (music21's weights), the second estimator captions consult."""
    from music21.analysis.discrete import BellmanBudge

    est = BellmanBudge()
    hist = pitch_class_histogram(pitch, duration)
    best = (-2.0, 0, "major")
    for mode in ("major", "minor"):
        profile = np.asarray(est.getWeights(mode), dtype=float)
        for tonic in range(12):
            r = float(np.corrcoef(hist, np.roll(profile, tonic))[0, 1]) if hist.std() > 0 else 0.0
            if r > best[0]:
                best = (r, tonic, mode)
    return best[1], best[2]


@dataclass
class TextData:
    """Windows as model input rows, their facts and split."""

    notes: np.ndarray  # (M, MAX_NOTES, 4) int64
    globals_: np.ndarray  # (M, 2) int64
    facts: list[Facts]
    split: np.ndarray  # (M,) "train" / "valid" / "test"

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)

    def summary(self) -> dict:
        groups: dict[str, int] = {}
        for f in self.facts:
            groups[f.source.group] = groups.get(f.source.group, 0) + 1
        return {"source": "music21 corpus", "windows": len(self.facts), "groups": groups,
                "splits": {s: int((self.split == s).sum()) for s in ("train", "valid", "test")}}

    def batch(self, index: np.ndarray, vocab: Vocabulary, rng: np.random.Generator, max_text: int,
              transpose: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Facts]]:
        """(notes, globals, caption ids, facts) of some windows; ``transpose`` > 0 moves each at random."""
        notes = self.notes[index].copy()
        facts = []
        for row, i in enumerate(index):
            fact = self.facts[int(i)]
            if transpose:
                shift = int(rng.integers(-transpose + 1, transpose + 1))
                pitch = notes[row, :, 0]
                held = pitch > 0
                if shift and held.any() and pitch[held].min() + shift >= 1 and pitch[held].max() + shift <= 128:
                    pitch[held] += shift
                    fact = transposed(fact, shift)
            facts.append(fact)
        tokens = pad_batch([vocab.encode(caption(f, rng), max_text) for f in facts])
        used = max(1, int((notes[:, :, 0] > 0).sum(1).max()))
        return notes[:, :used], self.globals_[index], tokens, facts


def attribute_labels(facts: list[Facts]) -> dict[str, np.ndarray]:
    """Field -> (B,) int64 index of each window's value in :data:`~affetto.models.text.model.ATTRIBUTES`
    (-1 where a value is not listed, e.g. a meter the vocabulary lacks)."""
    from affetto.models.text.model import ATTRIBUTES

    said = [fact.fields.values() for fact in facts]
    out = {}
    for name, values in ATTRIBUTES.items():
        index = {v: i for i, v in enumerate(values)}
        out[name] = np.array([index.get(s[name], -1) for s in said], dtype=np.int64)
    return out


def transposed(fact: Facts, shift: int) -> Facts:
    """The facts of a window moved by ``shift`` semitones: the key's name and the register change."""
    f = fact.fields
    tonic = PITCH_NAMES[(PITCH_NAMES.index(f.tonic) + shift) % 12]
    mean = f.mean_pitch + shift
    fields = replace(f, key=f"{tonic} {f.mode}", mean_pitch=mean,
                     register=bin_word(mean, REGISTER_EDGES, ("low", "middle", "high")))
    return Facts(fields, fact.key_agreed, fact.source)


def windows_of(piece: Piece, cfg: DataConfig) -> list[np.ndarray]:
    """Up to ``per_piece`` 4-bar windows of a piece (step arrays, onsets from the window's first bar line)."""
    try:
        bar = bar_steps_of(piece.meter)
    except ValueError:
        return []
    notes = piece.notes
    if len(notes) == 0:
        return []
    span = bar * PHRASE_BARS
    starts = list(range(0, int(notes[:, 0].max()) + 1, span))
    out = []
    for start in starts:
        inside = (notes[:, 0] >= start) & (notes[:, 0] < start + span)
        if inside.sum() >= cfg.min_notes:
            w = notes[inside].copy()
            w[:, 0] -= start
            w[:, 1] = np.minimum(w[:, 1], start + span - notes[inside, 0])
            out.append(w)
    if len(out) > cfg.per_piece:
        pick = np.linspace(0, len(out) - 1, cfg.per_piece).round().astype(int)
        out = [out[i] for i in pick]
    return out


def window_facts(w: np.ndarray, meter: TimeSignature, tempo: float, source: Source) -> Facts:
    onset = w[:, 0] / STEPS_PER_BEAT
    duration = w[:, 1] / STEPS_PER_BEAT
    fields = measure_arrays(w[:, 2], onset, duration, w[:, 3], meter, tempo)
    tonic, mode = second_key(w[:, 2], duration)
    agreed = fields.key == f"{PITCH_NAMES[tonic]} {mode}"
    return Facts(fields, agreed, source)


def build(pieces: list[Piece], cfg: DataConfig) -> TextData:
    rng = np.random.default_rng(cfg.seed)
    by_group: dict[str, list[tuple[Piece, np.ndarray]]] = {}
    for piece in pieces:
        for w in windows_of(piece, cfg):
            by_group.setdefault(piece.group, []).append((piece, w))
    rows, glob, facts, split = [], [], [], []
    sources: dict[str, Source] = {}
    from tqdm import tqdm

    chosen = []
    for _, items in sorted(by_group.items()):
        if len(items) > cfg.per_group:
            keep = np.sort(rng.choice(len(items), cfg.per_group, replace=False))
            items = [items[i] for i in keep]
        chosen.extend(items)
    for piece, w in tqdm(chosen, desc="measuring windows", unit="window", mininterval=5):
        if piece.name not in sources:
            sources[piece.name] = source_of(piece.name, piece.group)
        rows.append(music_rows(w[:, [0, 1, 2]], piece.meter))
        glob.append([meter_id(piece.meter), tempo_bin(piece.tempo)])
        facts.append(window_facts(w, piece.meter, piece.tempo, sources[piece.name]))
        split.append(split_of(piece.split_key))
    if not rows:
        raise DatasetError("no windows in the corpus")
    return TextData(np.stack(rows), np.array(glob, dtype=np.int64), facts, np.array(split))


def _facts_to_json(f: Facts) -> dict:
    return {"fields": f.fields.to_dict(), "key_agreed": f.key_agreed, "source": f.source.to_dict()}


def _facts_from_json(d: dict) -> Facts:
    return Facts(Fields(**d["fields"]), bool(d["key_agreed"]), Source(**d["source"]))


def load_data(cfg: DataConfig = DataConfig(), cache_dir: str | Path | None = None,
              groups: tuple[str, ...] = DEFAULT_GROUPS) -> TextData:
    """The windows of the corpus (measured once, then read from the cache)."""
    key = json.dumps([DATA_FORMAT, cfg.to_dict(), sorted(groups)])
    stem = Path(cache_dir or default_cache_dir()) / f"text-{hashlib.sha1(key.encode()).hexdigest()[:12]}"
    if stem.with_suffix(".npz").exists() and stem.with_suffix(".json").exists():
        with np.load(stem.with_suffix(".npz"), allow_pickle=False) as z:
            notes, glob, split = z["notes"].astype(np.int64), z["globals"], z["split"]
        facts = [_facts_from_json(d) for d in json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))]
        return TextData(notes, glob, facts, split)
    data = build(load_corpus(groups), cfg)
    tmp = stem.with_name(stem.name + ".tmp.npz")
    np.savez_compressed(tmp, notes=data.notes.astype(np.int16), globals=data.globals_, split=data.split)
    stem.with_suffix(".json").write_text(json.dumps([_facts_to_json(f) for f in data.facts]), encoding="utf-8")
    tmp.replace(stem.with_suffix(".npz"))
    log.info("text data: %s", data.summary())
    return data
