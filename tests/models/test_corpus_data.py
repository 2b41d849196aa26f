"""The default corpus loader, augmentation, labels and the split."""

import numpy as np
import pytest

from affetto.analysis.emotion import Quadrant
from affetto.analysis.judge import JudgeConfig
from affetto.models import corpus
from affetto.models.corpus import Piece, load_corpus, parse_abc_text
from affetto.models.data import (
    DataConfig,
    assign_splits,
    build_examples,
    change_mode,
    segments,
    split_examples,
    time_scale,
    transpose_tokens,
)
from affetto.music.notes import Grid, Note, TimeSignature
from affetto.tokens.vocab import VocabConfig, Vocabulary

ABC = """X:1
T:Test tune
M:6/8
L:1/8
Q:3/8=100
K:G
D|GAB c2A|BAG A2D|GAB c2A|BAG G2:|
X:2
T:Second
M:4/4
L:1/8
K:Am
A2 c2 e2 c2|B2 d2 e4|A2 c2 e2 a2|g2 e2 a4|]
"""


def test_abc_tunes_are_split_parsed_and_bar_aligned():
    pieces = parse_abc_text(ABC, "test.abc", "test", Grid())
    assert [p.name for p in pieces] == ["test.abc#0", "test.abc#1"]
    jig = pieces[0]
    assert jig.meter == TimeSignature(6, 8)
    # The pickup D is shifted so the first G falls on a bar line (12 steps per 6/8 bar).
    first_g = jig.notes[jig.notes[:, 2] == 67][0]
    assert first_g[0] % 12 == 0
    assert len(jig.notes) > 20  # the repeat was expanded


def test_music21_corpus_loads_and_caches(tmp_path, monkeypatch):
    pieces = load_corpus(("bach",), cache_dir=tmp_path, limit=2, workers=1, progress=False)
    assert len(pieces) == 2 and all(p.group == "bach" for p in pieces)
    assert all(len(p.notes) > 50 for p in pieces)
    monkeypatch.setattr(corpus, "parse_score_file", lambda *a: pytest.fail("parsed again instead of cache"))
    again = load_corpus(("bach",), cache_dir=tmp_path, limit=2, workers=1, progress=False)
    assert [p.name for p in again] == [p.name for p in pieces]
    assert all(np.array_equal(a.notes, b.notes) for a, b in zip(again, pieces))


def test_augmentations():
    notes = np.array([[0, 4, 60, 80], [4, 2, 64, 80], [6, 2, 67, 80]])
    assert time_scale(notes, 0.5).tolist() == [[0, 2, 60, 80], [2, 1, 64, 80], [3, 1, 67, 80]]
    assert time_scale(notes, 2.0)[:, :2].tolist() == [[0, 8], [8, 4], [12, 4]]
    assert time_scale(np.array([[1, 1, 60, 80]]), 0.5) is None  # would leave the grid
    minor = change_mode(notes, tonic=0, mode="major")
    assert minor[:, 2].tolist() == [60, 63, 67]  # E -> Eb, C and G stay
    assert change_mode(minor, tonic=0, mode="minor")[:, 2].tolist() == [60, 64, 67]


def test_examples_labels_and_split_by_piece():
    vocab = Vocabulary()
    rng = np.random.default_rng(0)
    pieces = []
    for i in range(30):
        onsets = np.arange(0, 16 * 12, 2 if i % 2 else 8)
        notes = np.stack([onsets, np.full_like(onsets, 2), 60 + rng.integers(0, 12, len(onsets)),
                          np.full_like(onsets, 80)], axis=1)
        pieces.append(Piece(f"p{i}", "g", TimeSignature(4, 4), 120.0, notes))
    examples = build_examples(pieces, vocab, DataConfig(), labels={0: Quadrant.Q2})
    assert {e.quadrant for e in examples if e.piece == 0} == {int(Quadrant.Q2)}
    assert {e.variant for e in examples if e.piece == 0} == {"orig"}  # labelled: not augmented
    assert len({e.variant for e in examples}) > 1
    split = split_examples(examples, pieces)
    sides = {name: {e.piece for e in exs} for name, exs in split.items()}
    assert sides["valid"] and not (sides["train"] & sides["valid"]) and not (sides["train"] & sides["test"])
    for e in examples[:50]:
        vocab.check([vocab.bos, *e.tokens.tolist()], 16)


def test_segments_and_split_of_small_sets():
    notes = np.array([[s, 2, 60, 80] for s in range(0, 16 * 20, 4)])
    segs = segments(notes, 16, DataConfig(segment_bars=8, hop_bars=4))
    assert len(segs) == 4 and all(s[:, 0].min() == 0 for s in segs)
    two = [Piece("a", "g", TimeSignature(), 100.0, notes), Piece("b", "g", TimeSignature(), 100.0, notes)]
    assert "valid" in assign_splits(two)
    clips = [Piece(f"c{i}", "g", TimeSignature(), 100.0, notes, song="one-song") for i in range(5)]
    assert len(set(assign_splits(clips))) == 1  # clips of one song stay together


def test_transition_examples_learn_only_the_continuation_in_another_emotion():
    from affetto.models.data import transition_examples
    from affetto.models.train import TrainConfig, example_weights, make_batch

    vocab = Vocabulary()
    onsets = np.arange(0, 16 * 16, 4)  # quarter notes over 16 bars of 4/4
    major = np.stack([onsets, np.full_like(onsets, 4), 60 + np.array([0, 4, 7, 12])[np.arange(len(onsets)) % 4],
                      np.full_like(onsets, 80)], axis=1)
    busy = np.stack([np.arange(0, 16 * 16, 1), np.ones(256, int), 57 + np.array([0, 3, 7, 12])[np.arange(256) % 4],
                     np.full(256, 110)], axis=1)  # A minor, sixteenths, loud
    variants = [("orig", major), ("minor+x0.5+v1.4", busy)]
    rng = np.random.default_rng(0)
    found = []
    for _ in range(10):
        found += transition_examples(variants, 0, 16, vocab, DataConfig(transitions=2), JudgeConfig(), rng)
    assert found
    # With three variants, asking for mode transitions only pairs the minor one with another.
    three = [*variants, ("v0.6", major.copy())]
    mixed = transition_examples(three, 0, 16, vocab, DataConfig(transitions=20, mode_transition_share=1.0),
                                JudgeConfig(), np.random.default_rng(1))
    assert mixed and all(("minor" in e.variant.split("->")[0]) != ("minor" in e.variant.split("->")[1])
                         for e in mixed)
    for ex in found:
        assert 0 < ex.target_from < len(ex.tokens)
        head, tail = ex.tokens[: ex.target_from], ex.tokens[ex.target_from :]
        assert (head == vocab.bar).sum() == 4 and (tail == vocab.bar).sum() == 12
    ex = next(e for e in found if e.variant == "orig->minor+x0.5+v1.4")
    assert ex.quadrant == int(Quadrant.Q2)  # continued minor, busy and loud: tense
    _inputs, targets, _cond = make_batch([ex], [0], vocab, None, TrainConfig())
    assert (targets[0, : ex.target_from] == -100).all() and (targets[0, ex.target_from] != -100)
    plain = build_examples([Piece("p", "g", TimeSignature(), 100.0, major)], vocab, DataConfig(transitions=0))
    weights = example_weights([*plain, ex], balance=True, transition_share=0.5)
    assert weights[-1] == pytest.approx(0.5)


def test_transposing_moves_pitches_and_keys_together():
    vocab2 = Vocabulary(VocabConfig.with_controls())
    meter = TimeSignature(4, 4)
    notes = [Note(p, beat, 1.0) for beat in range(4) for p in (57, 60, 64)]
    tokens = np.array(vocab2.encode(notes, meter))
    up = transpose_tokens(vocab2, tokens, 3)
    assert vocab2.decode(up, meter) == [Note(n.pitch + 3, n.onset, n.duration, n.velocity) for n in
                                       vocab2.decode(tokens, meter)]
    assert vocab2.name(int(up[3])) == "KEY_Cm"  # A minor up a minor third
    unclear = vocab2.key(24)
    assert transpose_tokens(vocab2, np.array([unclear]), 5)[0] == unclear
