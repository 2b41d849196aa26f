"""The evaluation's material: the model's own data, its held-out split, labelled 4-bar phrases.

Generated bars are judged in phrases of ``window_bars`` bars (4: the feature
judge needs several bars to hear a key), so real music is cut the same way:
every piece is labelled in training-sized segments exactly as
:mod:`affetto.models.data` labels them (the label the model was conditioned
on), and each segment's label passes to the aligned 4-bar windows inside it.
Every phrase, real or generated, goes through the token vocabulary before it
is judged, so both carry the same quantisation (grid, velocity bins, pitch
range) and the comparison is fair.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from affetto.analysis.judge import JudgeConfig
from affetto.errors import ConfigError
from affetto.models.corpus import Piece
from affetto.models.data import DataConfig, assign_splits, label, variants_of
from affetto.music.notes import Note, TimeSignature
from affetto.tokens.vocab import Vocabulary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Phrase:
    """A few bars as the model sees them: tokens (no BOS), decoded notes, meter, target label."""

    tokens: np.ndarray  # int64, starts with BAR
    notes: list[Note]  # onsets in beats from the phrase's first bar line
    meter: TimeSignature
    bars: int
    label: int = -1  # quadrant index, -1 for none
    piece: int = -1  # index of the source piece, -1 for generated material

    @property
    def beats(self) -> float:
        return self.bars * self.meter.beats_per_bar


def phrase_from_steps(steps: np.ndarray, meter: TimeSignature, bars: int, vocab: Vocabulary, *,
                      label: int = -1, piece: int = -1) -> Phrase:
    """A phrase from an (N, 4) step array whose onsets count from the phrase's first bar line."""
    from affetto.models.data import vocab_meter

    bar_steps = vocab.grid.steps_per_bar(meter)
    steps = np.asarray(steps, dtype=np.int64).reshape(-1, 4)
    written = vocab_meter(meter, vocab)  # a meter the vocabulary lacks is written as one of the same length
    if written is None:  # none: the bars without their header (they decode the same)
        tokens = vocab.encode_steps(steps, bar_steps, n_bars=bars) if not vocab.header else \
            vocab.encode_body(steps, bar_steps, bars)
    else:
        tokens = vocab.encode_steps(steps, bar_steps, n_bars=bars, meter=written)
    return Phrase(tokens, vocab.decode(tokens, meter), meter, bars, label, piece)


def phrase_from_notes(notes: Sequence[Note], meter: TimeSignature, bars: int, vocab: Vocabulary, *,
                      label: int = -1) -> Phrase:
    """A phrase from notes in beats (e.g. generated bars joined), through the vocabulary."""
    return phrase_from_steps(vocab.notes_to_steps(notes), meter, bars, vocab, label=label)


# ---- sources -------------------------------------------------------------------------
@dataclass
class Source:
    """Pieces of a data set, their given labels (if any), their splits and a description."""

    pieces: list[Piece]
    labels: dict  # piece index -> Quadrant, for data sets that name their quadrants
    splits: list[str]
    description: str

    def indices(self, split: str) -> list[int]:
        return [i for i, s in enumerate(self.splits) if s == split]


def load_source(data: str, *, groups: Sequence[str] = (), emopia: bool = False, labels_csv: str | None = None,
                vocab: Vocabulary, progress: bool = False) -> Source:
    """The data a model was trained on, as :func:`affetto.models.train.load_data` reads it.

    ``data`` is "corpus" (the music21 corpus, read from its cache), a folder of
    MIDI files, or an EMOPIA folder.
    """
    if data == "corpus":
        from affetto.models.corpus import DEFAULT_GROUPS, load_corpus

        groups = tuple(groups) or DEFAULT_GROUPS
        # No ``limit``: the full corpus is cached, and a limited one would be parsed afresh.
        pieces = load_corpus(groups, grid=vocab.grid, progress=progress)
        return Source(pieces, {}, assign_splits(pieces), f"music21 corpus ({len(groups)} groups)")
    if not Path(data).is_dir():
        raise ConfigError(
            f"training data {data!r} is not available here: pass --data corpus or a MIDI folder")
    from affetto.models.userdata import load_emopia, load_midi_folder

    loaded = load_emopia(data) if emopia else load_midi_folder(data, labels_csv, grid=vocab.grid)
    kind = "EMOPIA" if emopia else "MIDI folder"
    return Source(loaded.pieces, dict(loaded.labels), assign_splits(loaded.pieces), f"{kind} {data}")


def load_seed_folder(folder: str, vocab: Vocabulary) -> Source:
    """A folder of MIDI files used whole as held-out seeds (every piece in the "test" split)."""
    from affetto.models.userdata import load_midi_folder

    loaded = load_midi_folder(folder, None, grid=vocab.grid)
    if not loaded.pieces:
        raise ConfigError(f"{folder}: no usable MIDI files for seeds")
    return Source(loaded.pieces, dict(loaded.labels), ["test"] * len(loaded.pieces), f"MIDI folder {folder}")


# ---- labelled windows ----------------------------------------------------------------
def piece_windows(notes: np.ndarray, meter: TimeSignature, vocab: Vocabulary, data_config: DataConfig,
                  judge_config: JudgeConfig, *, given: int | None = None, window_bars: int = 4,
                  piece: int = -1) -> list[Phrase]:
    """Aligned ``window_bars``-bar windows of one piece's notes (steps), labelled by their segment.

    Segments are ``data_config.segment_bars`` long every ``hop_bars`` and
    labelled by the judge at ``label_tempo`` (or ``given``), as in training; a
    window takes the label of the first segment that holds it whole. Windows
    with fewer than 4 notes are skipped, as training skips such segments.
    """
    bar_steps = vocab.grid.steps_per_bar(meter)
    if len(notes) == 0 or bar_steps > vocab.config.max_bar_steps:
        return []
    spb = vocab.config.steps_per_beat
    seg, hop = data_config.segment_bars, data_config.hop_bars
    total_bars = int(notes[:, 0].max() // bar_steps) + 1
    taken: set[int] = set()
    out = []
    for first in range(0, max(1, total_bars - seg + hop), hop):
        lo, hi = first * bar_steps, (first + seg) * bar_steps
        sel = notes[(notes[:, 0] >= lo) & (notes[:, 0] < hi)]
        if len(sel) < 4:
            continue
        seg_notes = sel.copy()
        seg_notes[:, 0] -= lo
        if given is None:
            n_bars = int(seg_notes[:, 0].max() // bar_steps) + 1
            quadrant = int(label(seg_notes, bar_steps, n_bars, spb, data_config, judge_config).quadrant)
        else:
            quadrant = int(given)
        for start in range(first, first + seg - window_bars + 1, window_bars):
            if start in taken or start >= total_bars:
                continue
            a, b = start * bar_steps, (start + window_bars) * bar_steps
            win = notes[(notes[:, 0] >= a) & (notes[:, 0] < b)].copy()
            if len(win) < 4:
                continue
            taken.add(start)
            win[:, 0] -= a
            out.append(phrase_from_steps(win, meter, window_bars, vocab, label=quadrant, piece=piece))
    return out


def labelled_windows(source: Source, indices: Sequence[int], vocab: Vocabulary, data_config: DataConfig,
                     judge_config: JudgeConfig, *, window_bars: int = 4, augment: bool = False,
                     seed: int = 0, progress: bool = False, desc: str = "phrases") -> list[Phrase]:
    """Labelled windows of the pieces at ``indices`` (and of their augmented variants when ``augment``)."""
    rng = np.random.default_rng(seed)
    iterator = indices
    if progress:
        from tqdm import tqdm

        iterator = tqdm(indices, desc=desc, unit="piece", leave=False)
    out: list[Phrase] = []
    for index in iterator:
        piece = source.pieces[index]
        try:
            vocab.grid.steps_per_bar(piece.meter)
        except ValueError:
            continue
        given = source.labels.get(index)
        variants = [("orig", piece.notes)]
        if augment and given is None:
            variants = variants_of(piece, data_config, rng)
        for _, notes in variants:
            out.extend(piece_windows(notes, piece.meter, vocab, data_config, judge_config,
                                     given=None if given is None else int(given),
                                     window_bars=window_bars, piece=index))
    return out


def sample_indices(indices: Sequence[int], count: int | None, seed: int) -> list[int]:
    """At most ``count`` of ``indices``, drawn without replacement and kept in order (all for None)."""
    if count is None or count >= len(indices):
        return list(indices)
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(np.asarray(indices), size=count, replace=False))
