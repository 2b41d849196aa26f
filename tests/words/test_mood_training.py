"""The mood recogniser's data and training: labelled phrases drawn from pieces made here, checkpoints, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from affetto.analysis.emotion import Quadrant
from affetto.analysis.judge import judge_arrays
from affetto.music.notes import TimeSignature

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch


def pieces(count: int = 24):
    """Major scales and arpeggios in steps of 4 per beat (onset, duration, pitch, velocity), one piece each."""
    from affetto.models.corpus import Piece

    out = []
    rng = np.random.default_rng(0)
    for k in range(count):
        tonic = 55 + k % 12
        degrees = [0, 2, 4, 5, 7, 9, 11, 12, 11, 9, 7, 5, 4, 2, 0, 4, 7, 12, 7, 4, 0, 7, 4, 0]
        step = int(rng.choice([2, 4]))
        rows = [(i * step, step, tonic + d, 80) for i, d in enumerate(degrees * 2)]
        out.append(Piece(f"piece{k}", "test", TimeSignature(4, 4), 110.0, np.array(rows, np.int32)))
    return out


def test_phrases_are_labelled_by_the_judge_of_what_was_drawn_and_augmented():
    from affetto.models.mood.data import MoodDataConfig, draw_phrases

    config = MoodDataConfig(mode_change_rate=0.5, min_key_clarity=0.0)
    drawn = draw_phrases(pieces(), 300, 1, config=config, keep_notes=True)
    assert drawn.notes is not None and len(drawn) == 300
    for i in range(0, 300, 37):  # the label is the judge's verdict on the phrase's own notes
        rows = drawn.notes[i]
        bars = int(rows[:, 1].max() // 4.0) + 1
        verdict = judge_arrays(rows[:, 0].astype(np.int64), rows[:, 1], rows[:, 2], rows[:, 3], 4.0 * bars, 110.0)
        assert drawn.quadrant[i] == int(verdict.quadrant)
        assert drawn.va[i] == pytest.approx((verdict.valence, verdict.arousal), abs=1e-5)
        assert drawn.steps[i] == 16 * bars and 1 <= bars <= 4
    assert drawn.velocity.min() < 50 < 100 < drawn.velocity.max()  # played at drawn loudness, not at 80
    counts = drawn.counts()
    assert counts["Q3 sad"] + counts["Q2 tense"] > 30  # major pieces moved to minor give negative valence
    plain = draw_phrases(pieces(), 50, 1, augment=False)
    assert set(plain.velocity.round()) == {80.0}  # as written


def test_training_writes_checkpoints_and_resumes_where_it_stopped(tmp_path, monkeypatch):
    from affetto.models.checkpoint import read_meta
    from affetto.models.mood import train as training
    from affetto.models.mood.model import MoodConfig

    monkeypatch.setattr(training, "load_pieces", lambda cfg: (pieces(), {}))
    cfg = training.MoodTrainConfig(out=str(tmp_path / "run"), steps=20, batch=16, save_every=10, train_phrases=200,
                                   held_out_phrases=60, model=MoodConfig(width=8, key_filters=4, layers=1,
                                                                         summary_width=4))
    # the split is by piece name; assign_splits keeps a validation piece even in a set this small
    first = training.train(cfg, progress=False)
    meta = read_meta(tmp_path / "run" / "last")
    assert meta["step"] == 20 and [h["step"] for h in meta["history"]] == [10, 20]
    assert (tmp_path / "run" / "phrases.npz").exists() and 0.0 <= first["best_accuracy"] <= 1.0
    longer = training.MoodTrainConfig(**{**cfg.__dict__, "steps": 30})
    training.train(longer, resume=True, progress=False)
    meta = read_meta(tmp_path / "run" / "last")
    assert meta["step"] == 30 and [h["step"] for h in meta["history"]] == [10, 20, 30]
    assert json.loads((tmp_path / "run" / "last.json").read_text())["family"] == "mood"
    assert Quadrant.Q1.name in str(meta["data_summary"]["training"])
