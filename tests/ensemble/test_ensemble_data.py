"""Chorale phrases: rolls, folding, labels, the split, and one real chorale from the music21 corpus."""

import numpy as np
import pytest

from affetto.models.musegan.data import (
    LOW,
    PITCHES,
    Chorale,
    build_splits,
    capsules,
    fold,
    parallel_mode,
    parse_chorale,
    sample_batch,
    split_of,
    to_roll,
)

pytestmark = pytest.mark.torch


def test_fold_keeps_pitch_classes_inside_the_window():
    p = np.array([-1, LOW - 1, LOW, LOW + PITCHES, 127])
    out = fold(p)
    assert out[0] == -1
    assert ((out[1:] >= LOW) & (out[1:] < LOW + PITCHES)).all()
    assert ((out[1:] - p[1:]) % 12 == 0).all()


def test_a_repeated_note_stays_apart_in_the_roll():
    pitch = np.full((4, 64), -1)
    onset = np.zeros((4, 64), bool)
    pitch[0, :8] = 60
    onset[0, [0, 4]] = True
    roll = to_roll(pitch, onset, 4)
    assert roll.shape == (4, 4, 16, PITCHES)
    assert roll[0, 0, :, 60 - LOW].tolist() == [1, 1, 1, 0, 1, 1, 1, 1] + [0] * 8


def test_capsules_follow_mode_and_activity():
    cond = capsules(np.array([1.0, -1.0, -1.0, 1.0]), np.array([5.0, 5.0, 1.0, 1.0]), 3.0)
    assert cond.argmax(1).tolist() == [0, 1, 2, 3]  # Q1 happy, Q2 tense, Q3 sad, Q4 calm


def test_split_is_deterministic_and_holds_chorales_out():
    names = [f"bach/bwv{i}.mxl" for i in range(300)]
    splits = [split_of(n) for n in names]
    assert splits == [split_of(n) for n in names]
    assert 0.05 < splits.count("test") / 300 < 0.18


def chorale(name="c", minor=False):
    scale = [0, 2, 3, 5, 7, 8, 10] if minor else [0, 2, 4, 5, 7, 9, 11]
    steps = 16 * 6
    pitch = np.full((4, steps), -1, np.int16)
    for t, base in enumerate((72, 67, 60, 48)):
        for s in range(steps):
            pitch[t, s] = base + scale[(s // 4 + t) % 7]
    onset = np.zeros((4, steps), bool)
    onset[:, ::4] = True
    return Chorale(name, False, pitch, onset)


def test_parallel_mode_makes_the_same_tune_in_the_other_mode():
    major = chorale()
    minor = parallel_mode(major, 0.3)
    assert minor is not None and minor.name.endswith("@parallel")
    thirds = (major.pitch - minor.pitch)[major.pitch >= 0]
    assert set(np.unique(thirds)) <= {0, 1}
    splits = build_splits([chorale(f"c{i}") for i in range(20)])
    names = splits["train"].names + splits["valid"].names
    assert any("@parallel" in n for n in names)
    assert not any("@parallel" in n for n in splits["test"].names)  # held-out chorales stay as Bach wrote them


def test_batches_transpose_and_label():
    ph = build_splits([chorale(f"c{i}") for i in range(40)])["train"]
    roll, cond, triple = sample_batch(ph, 8, np.random.default_rng(0), 4, 3.0)
    assert roll.shape == (8, 4, 4, 16, PITCHES) and cond.shape == (8, 4) and triple.shape == (8, 1)
    assert np.allclose(cond.sum(1), 1)


def test_one_real_chorale_parses_as_four_voices():
    pytest.importorskip("music21")
    from music21 import corpus

    path = str(corpus.getWork("bwv66.6"))
    c = parse_chorale(path, "bach/bwv66.6.mxl")
    assert c is not None and c.pitch.shape[0] == 4 and c.pitch.shape[1] % 16 == 0
    sounding = c.pitch >= 0
    mean = [c.pitch[t][sounding[t]].mean() for t in range(4)]
    assert mean == sorted(mean, reverse=True)  # soprano above alto above tenor above bass
