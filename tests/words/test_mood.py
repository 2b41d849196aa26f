"""The mood recogniser: its features, its export and runtime (a tiny model built here), and the shipped one."""

from __future__ import annotations

import numpy as np
import pytest

from affetto.errors import ModelFileError
from affetto.music.notes import Note, TimeSignature
from affetto.words.mood import (
    PITCH_CLASSES,
    ROLL_CHANNELS,
    SUMMARY_SIZE,
    Mood,
    MoodRecogniser,
    default_mood_path,
    phrase_features,
    phrase_window,
    recognise,
)

FOUR = TimeSignature()


def line(pitches, step: float, velocity: int, bars: int = 2, start: float = 0.0) -> list[Note]:
    """``pitches`` cycled every ``step`` beats for ``bars`` bars of 4/4."""
    out, t, i = [], start, 0
    while t < start + 4 * bars - 1e-9:
        out.append(Note(pitches[i % len(pitches)], t, step * 0.9, velocity))
        t, i = t + step, i + 1
    return out


A_MINOR = (57, 60, 64, 69, 64, 60)
C_MAJOR = (60, 64, 67, 72, 67, 64)


def test_features_carry_pitch_classes_onsets_and_dynamics():
    soft = line(C_MAJOR, 0.5, 40)
    roll, summary, notes, bars = phrase_features(soft, FOUR)
    assert roll.shape == (ROLL_CHANNELS, 2 * 16) and summary.shape == (SUMMARY_SIZE,)
    assert notes == 16 and bars == 2
    assert set(np.flatnonzero(roll[:PITCH_CLASSES].sum(1))) == {0, 4, 7}  # C, E, G
    assert roll[PITCH_CLASSES, ::2].min() > 0 and roll[PITCH_CLASSES, 1::2].max() == 0  # an onset every eighth
    assert summary[0] == pytest.approx(np.log2(2.0 / 1.5))  # two onsets per beat
    loud = [Note(n.pitch, n.onset, n.duration, 110) for n in soft]
    _, loud_summary, _, _ = phrase_features(loud, FOUR)
    assert loud_summary[1] - summary[1] == pytest.approx(70 / 32)  # velocity is heard
    assert np.array_equal(loud_summary[[0, 3, 4, 5, 6, 7]], summary[[0, 3, 4, 5, 6, 7]])


def test_a_long_phrase_is_read_from_its_last_bars_and_a_late_start_from_its_first_note():
    notes = line(C_MAJOR, 1.0, 80, bars=6)
    kept, bars = phrase_window(notes, FOUR)
    assert bars == 4 and min(n.onset for n in kept) == 0.0 and len(kept) == 16
    waltz = [Note(60, 3.0 * b, 1.0) for b in range(7)]
    kept, bars = phrase_window(waltz, TimeSignature(3, 4))
    assert bars == 5 and [n.onset for n in kept] == [0.0, 3.0, 6.0, 9.0, 12.0]  # 16 beats hold 5 bars of 3/4
    late = [Note(64, 4.5, 1.0), Note(67, 6.0, 1.0)]
    kept, bars = phrase_window(late, FOUR)
    assert bars == 1 and [n.onset for n in kept] == [0.5, 2.0]


def test_recognise_checks_its_input():
    with pytest.raises(ValueError, match="meter must be a TimeSignature"):
        MoodRecogniser.__call__(object.__new__(MoodRecogniser), [], "4/4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"notes\[0\] must be a Note"):
        MoodRecogniser.__call__(object.__new__(MoodRecogniser), [(60, 0.0, 1.0)], FOUR)  # type: ignore[list-item]


# ---- a tiny model, exported and run by ONNX Runtime ----------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from affetto.export.mood import export_mood
    from affetto.models.checkpoint import save_checkpoint
    from affetto.models.mood.model import MoodConfig, MoodNet

    torch.manual_seed(3)
    model = MoodNet(MoodConfig(width=8, key_filters=4, layers=2, summary_width=4))
    folder = tmp_path_factory.mktemp("mood")
    save_checkpoint(folder / "ck", model, {"step": 0})
    result = export_mood(folder / "ck", folder / "mood.onnx", assets=True)
    return model, result


@pytest.mark.torch
def test_the_export_matches_pytorch_and_the_runtime_family_loads_it(tiny):
    import torch

    from affetto.runtime.families import load_model

    model, result = tiny
    assert result.max_abs_diff <= 1e-4 and result.manifest["family"] == "mood"
    assert result.path.with_suffix(".safetensors").exists() and result.path.with_suffix(".json").exists()
    recogniser = load_model(result.path)
    assert isinstance(recogniser, MoodRecogniser)
    notes = line(A_MINOR, 1.0, 50, bars=3)
    mood = recogniser(notes, FOUR)
    roll, summary, _, _ = phrase_features(notes, FOUR)
    with torch.no_grad():
        logits, va = model(torch.from_numpy(roll[None]), torch.ones(1, roll.shape[1]), torch.from_numpy(summary[None]))
    probs = torch.softmax(logits, -1)[0].numpy()
    assert mood.probabilities == pytest.approx(tuple(probs), abs=1e-5)
    assert mood.quadrant == f"Q{int(probs.argmax()) + 1}" and mood.confidence == pytest.approx(probs.max(), abs=1e-5)
    assert (mood.valence, mood.arousal) == pytest.approx(tuple(va[0].numpy()), abs=1e-5)
    assert mood.bars == 3 and mood.notes == 12


@pytest.mark.torch
def test_padding_in_a_batch_changes_no_phrases_answer(tiny):
    _, result = tiny
    recogniser = MoodRecogniser(result.path)
    short, _, _, _ = phrase_features(line(C_MAJOR, 0.25, 100, bars=1), FOUR)
    long, _, _, _ = phrase_features(line(A_MINOR, 1.0, 40, bars=4), FOUR)
    summaries = np.stack([phrase_features(line(C_MAJOR, 0.25, 100, bars=1), FOUR)[1],
                          phrase_features(line(A_MINOR, 1.0, 40, bars=4), FOUR)[1]])
    roll = np.zeros((2, ROLL_CHANNELS, long.shape[1]), np.float32)
    roll[0, :, : short.shape[1]], roll[1] = short, long
    mask = np.zeros((2, long.shape[1]), np.float32)
    mask[0, : short.shape[1]], mask[1] = 1, 1
    batched, _ = recogniser.run(roll, mask, summaries)
    alone, _ = recogniser.run(short[None], np.ones((1, short.shape[1]), np.float32), summaries[:1])
    assert np.allclose(batched[0], alone[0], atol=1e-5)


@pytest.mark.torch
def test_a_file_of_another_family_or_other_features_is_refused(tiny):
    _, result = tiny
    with pytest.raises(ModelFileError, match="not a mood model"):
        MoodRecogniser(result.path, manifest={**result.manifest, "family": "lead"})
    with pytest.raises(ModelFileError, match="made for mood features"):
        MoodRecogniser(result.path, manifest={**result.manifest, "features": {"version": 0}})


def test_silence_is_no_mood_at_all():
    if not default_mood_path().exists():
        pytest.skip("no shipped mood model")
    mood = recognise([], FOUR)
    assert mood == Mood("Q4", 0.0, 0.0, -1.0, notes=0, bars=0)


# ---- the shipped recogniser hears the four corners -------------------------------------------------------
@pytest.mark.skipif(not default_mood_path().exists(), reason="no shipped mood model")
@pytest.mark.parametrize(("pitches", "step", "velocity", "quadrant"), [
    (C_MAJOR, 0.25, 105, "Q1"),  # busy, loud, major: happy
    (A_MINOR, 0.25, 105, "Q2"),  # busy, loud, minor: tense
    (A_MINOR, 1.0, 42, "Q3"),  # sparse, soft, minor: sad
    (C_MAJOR, 1.0, 42, "Q4"),  # sparse, soft, major: calm
])
def test_the_shipped_recogniser_hears_mode_density_and_dynamics(pitches, step, velocity, quadrant):
    for shift in (0, 5, -3):  # any key
        notes = [Note(n.pitch + shift, n.onset, n.duration, n.velocity) for n in line(pitches, step, velocity)]
        mood = recognise(notes, FOUR)
        assert mood.quadrant == quadrant, (shift, mood)
        assert -1 <= mood.valence <= 1 and -1 <= mood.arousal <= 1 and 0 < mood.confidence <= 1
