"""The judges on known cases: the learned judge on a trivially separable set, the feature judge on
hand-made phrases, labelled windows, and key coherence."""

from dataclasses import replace

import numpy as np
import pytest

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.analysis.judge import JudgeConfig, judge
from affetto.models.data import DataConfig
from affetto.models.emotion_classifier import (
    ClassifierConfig,
    EmotionClassifier,
    predict,
    train_classifier,
    trained_classifier,
)
from affetto.models.evaluation import Generated, coherence, key_kept, real_key_kept
from affetto.models.evaluation.data import phrase_from_notes, piece_windows
from affetto.music.notes import Note, TimeSignature
from affetto.tokens.vocab import Vocabulary

VOCAB = Vocabulary()
METER = TimeSignature(4, 4)
MAJOR = [0, 2, 4, 5, 7, 9, 11]
MINOR = [0, 2, 3, 5, 7, 8, 10]


def phrase_in(quadrant: int, rng: np.random.Generator, bars: int = 4, tonic: int = 60):
    """A phrase the quadrant's features describe: mode for valence, note rate and velocity for arousal."""
    major = quadrant in (0, 3)
    busy = quadrant in (0, 1)
    step, velocity = (0.25, 112) if busy else (1.0, 40)
    scale = MAJOR if major else MINOR
    notes, t = [], 0.0
    while t < bars * 4:
        degree = int(rng.choice([0, 0, 2, 4, 1, 3, 5, 6]))
        notes.append(Note(tonic + scale[degree], t, step, velocity))
        if t % 4 == 0:
            notes.append(Note(tonic - 12, t, 4.0, velocity))
        t += step
    return phrase_from_notes(notes, METER, bars, VOCAB, label=quadrant)


def synthetic_set(count: int, seed: int):
    rng = np.random.default_rng(seed)
    return [phrase_in(i % 4, rng, tonic=55 + int(rng.integers(0, 12))) for i in range(count)]


SMALL = ClassifierConfig(d_model=16, key_filters=8, layers=2, steps=150, batch=16, lr=1e-2, seed=0)


def test_feature_judge_hears_each_hand_made_quadrant():
    rng = np.random.default_rng(0)
    for q in Quadrant:
        phrase = phrase_in(int(q), rng)
        assert judge(phrase.notes, phrase.beats, 110.0).quadrant == q


def test_learned_judge_separates_a_trivially_separable_set():
    train, test = synthetic_set(64, seed=1), synthetic_set(32, seed=2)
    model, summary = train_classifier(train, VOCAB, SMALL)
    assert summary["steps"] == SMALL.steps and summary["labels"] == {"Q1": 16, "Q2": 16, "Q3": 16, "Q4": 16}
    probs = predict(model, test)
    assert probs.shape == (32, 4) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    accuracy = np.mean(probs.argmax(axis=1) == [p.label for p in test])
    assert accuracy >= 0.9


def test_learned_judge_is_transposition_invariant_in_its_key_branch():
    model = EmotionClassifier(VOCAB, SMALL)
    rng = np.random.default_rng(3)
    a = phrase_in(2, rng, tonic=60)
    shifted = a.tokens.copy()
    pitches = (shifted >= VOCAB.pitch0) & (shifted < VOCAB.vel0)
    shifted[pitches] += 5
    import torch

    with torch.no_grad():
        fa = model.key_features(torch.from_numpy(a.tokens[None]))
        fb = model.key_features(torch.from_numpy(shifted[None]))
    assert torch.allclose(fa, fb, atol=1e-6)


def test_learned_judge_is_cached_by_its_data(tmp_path):
    train = synthetic_set(16, seed=4)
    cfg = ClassifierConfig(d_model=8, key_filters=4, layers=1, steps=5, batch=8)
    first, info = trained_classifier(train, VOCAB, cfg, tmp_path, {"source": "synthetic"})
    assert not info["cached"] and (tmp_path / info["path"]).exists()
    assert info["path"].endswith(".safetensors")
    assert tmp_path.joinpath(info["path"]).with_suffix(".json").exists()
    again, info2 = trained_classifier(train, VOCAB, cfg, tmp_path, {"source": "synthetic"})
    assert info2["cached"] and info2["path"] == info["path"]
    assert np.allclose(predict(first, train), predict(again, train), atol=1e-6)
    _, info3 = trained_classifier(train[:-1], VOCAB, cfg, tmp_path, {"source": "synthetic"})
    assert info3["path"] != info["path"]  # other data, other key


def test_windows_take_their_segment_label():
    rng = np.random.default_rng(5)
    sad, happy = phrase_in(2, rng, bars=8), phrase_in(0, rng, bars=8)
    later = VOCAB.notes_to_steps(happy.notes) + np.array([128, 0, 0, 0])  # bars 8..15
    steps = np.concatenate([VOCAB.notes_to_steps(sad.notes), later])
    config = DataConfig(segment_bars=8, hop_bars=8)
    windows = piece_windows(steps, METER, VOCAB, config, JudgeConfig(), piece=7)
    assert [w.label for w in windows] == [2, 2, 0, 0]
    assert all(w.bars == 4 and w.piece == 7 and w.tokens[0] == VOCAB.bar for w in windows)
    assert all(max(n.onset for n in w.notes) < 16 for w in windows)
    given = piece_windows(steps, METER, VOCAB, config, JudgeConfig(), given=3)
    assert [w.label for w in given] == [3, 3, 3, 3]


def test_key_kept_compares_seed_and_continuation():
    rng = np.random.default_rng(6)
    c_major, c_minor, g_major = phrase_in(0, rng), phrase_in(1, rng), phrase_in(0, rng, tonic=67)
    happy, sad = Capsule.of(Quadrant.Q1), Capsule.of(Quadrant.Q3)
    assert key_kept(c_major, c_major, happy, 0.65) == (True, True, True)
    assert key_kept(c_major, c_minor, sad, 0.65) == (False, True, False)  # asked to change mode: tonic kept
    assert key_kept(c_major, g_major, happy, 0.65) == (False, False, True)
    assert key_kept(c_major, c_major, happy, 1.01) is None  # no seed is that clear
    g = Generated(key_kept=[(True, True, True), (False, True, False), (False, False, True), None])
    c = coherence([g])
    assert c["clear_seeds"] == 3
    assert c["key_kept"]["value"] == 0.5 and c["key_kept"]["n"] == 2
    assert c["key_kept_all"]["value"] == pytest.approx(1 / 3)
    assert c["tonic_kept_all"]["value"] == pytest.approx(2 / 3)


def test_real_key_kept_compares_adjacent_windows_of_one_piece():
    rng = np.random.default_rng(7)
    c_major, c_minor, g_major = phrase_in(0, rng), phrase_in(1, rng), phrase_in(0, rng, tonic=67)

    def of(p, piece):
        return replace(p, piece=piece)

    # piece 1 keeps C major, then leaves it for G major; piece 2 goes to C minor; the pair across pieces is skipped
    windows = [of(c_major, 1), of(c_major, 1), of(g_major, 1), of(c_major, 2), of(c_minor, 2)]
    ceiling = real_key_kept(windows, 0.65)
    assert ceiling["pairs"] == 3
    assert ceiling["key_kept"]["value"] == pytest.approx(1 / 3)
    assert ceiling["tonic_kept"]["value"] == pytest.approx(2 / 3)
    assert real_key_kept(windows, 1.01)["pairs"] == 0
