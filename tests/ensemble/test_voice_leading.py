"""Decoding under voice-leading rules: written notes leave parallel fifths and octaves for pitches the model gave."""

from __future__ import annotations

import numpy as np

from affetto.analysis.voicing import consonance, parallel_events, parallels, repair_parallels

LOW = 33
P = 64


def line_of(*voices: list[int], hold: int = 4) -> np.ndarray:
    """(4, steps): each voice's notes, each held ``hold`` steps."""
    return np.array([[p for p in v for _ in range(hold)] for v in voices])


def probs_for(line: np.ndarray, extra: dict[tuple[int, int], float] | None = None) -> np.ndarray:
    """(4, steps, P): the line's own pitches likely (0.6), plus ``extra`` {(voice, pitch): prob} everywhere."""
    probs = np.zeros((*line.shape, P), np.float32)
    for v in range(line.shape[0]):
        for s, p in enumerate(line[v]):
            if p >= 0:
                probs[v, s, p - LOW] = 0.6
    for (v, pitch), prob in (extra or {}).items():
        probs[v, :, pitch - LOW] = np.maximum(probs[v, :, pitch - LOW], prob)
    return probs


# soprano C5 D5, alto G4 A4: a fifth moving up to a fifth (parallel fifths); tenor and bass move otherwise
PARALLEL = line_of([72, 74], [65, 67], [60, 59], [48, 55])


def test_parallel_events_say_which_voices_and_where():
    assert parallels(PARALLEL) == 1
    assert parallel_events(PARALLEL) == [(0, 1, 0, 4)]


def test_a_note_in_parallel_fifths_moves_to_a_likely_pitch_that_keeps_the_rules():
    # the model also finds F4 (65, held) likely for the alto: oblique motion, a sixth under D5
    probs = probs_for(PARALLEL, {(1, 65): 0.3, (1, 66): 0.01})
    fixed, moved = repair_parallels(PARALLEL, probs, LOW)
    assert moved == 1 and parallels(fixed) == 0
    assert list(fixed[1]) == [65] * 8  # the second alto note became F4, the model's own proposal
    assert (fixed[0] == PARALLEL[0]).all() and (fixed[2:] == PARALLEL[2:]).all()  # the melody is never touched
    good, total = consonance(fixed)
    assert good / total >= consonance(PARALLEL)[0] / consonance(PARALLEL)[1]


def test_nothing_moves_without_a_proposal_of_the_model_that_fits():
    fixed, moved = repair_parallels(PARALLEL, probs_for(PARALLEL), LOW)  # nothing else proposed
    assert moved == 0 and (fixed == PARALLEL).all()
    # proposed, but a dissonance against the melody (a second under D5) or a voice crossing: refused
    crossing = probs_for(PARALLEL, {(1, 73): 0.3, (1, 58): 0.3})
    assert repair_parallels(PARALLEL, crossing, LOW)[1] == 0


def test_the_shipped_ensemble_decodes_under_the_rules_and_can_be_asked_not_to():
    from affetto.analysis.emotion import Capsule, Quadrant
    from affetto.analysis.voicing import lines
    from affetto.ensemble.engine import Ensemble, melody_roll
    from affetto.music.notes import Note, TimeSignature

    tune = [Note(p, float(i), 1.0, 90) for i, p in enumerate([72, 74, 76, 77, 79, 77, 76, 74] * 2)]
    roll = melody_roll(tune, TimeSignature(), 4)
    counts = {}
    for rules in (False, True):
        ens = Ensemble(voice_leading=rules, colour=False)  # the rules alone, no emotion levers
        total = 0
        for seed in range(6):
            rolls = ens.phrases(roll, 4, TimeSignature(), Capsule.of(Quadrant.Q1), seed=seed, candidates=1)
            assert (rolls[0] == (roll > 0.5)).all()  # the melody is kept
            total += parallels(lines(rolls[None], np.array([0.0]), ens.spec.low)[0])
        counts[rules] = total
    assert counts[False] > 0 and counts[True] < counts[False], counts


def test_outside_melodies_are_harmonised_and_heard_by_music21(tiny_onnx, tmp_path):
    from affetto.models.evaluation.ensemble_outside import harmonise_outside, markdown
    from affetto.music.midifile import write_midi
    from affetto.music.notes import Note, TimeSignature

    write_midi(tmp_path / "tune.mid", [Note(p, float(i), 1.0, 90) for i, p in enumerate([60, 64, 67, 72] * 4)])
    write_midi(tmp_path / "five.mid", [Note(60, 0.0, 1.0)], meter=TimeSignature(5, 4))  # not written: skipped
    result = harmonise_outside(tiny_onnx, candidates=1, folder=tmp_path)
    assert list(result["per_seed"]) == ["tune"]
    moods = result["per_seed"]["tune"]
    assert set(moods) == {"happy", "tense", "sad", "calm", "happy_sad_notes_differ"}
    assert 0 <= moods.pop("happy_sad_notes_differ") <= 1
    for mood in moods.values():
        assert 0 <= mood["minor_triads"] <= 1 and 0 <= mood["consonance"] <= 1
        assert set(mood["voices_heard"]) == {"aarden_essen", "temperley_kostka_payne"}
    assert result["summary"]["seeds"] == 1 and "| tune |" in markdown(result)
    assert all(0 <= result["summary"][f"darker_{e}"] <= 1 for e in ("aarden_essen", "temperley_kostka_payne"))
