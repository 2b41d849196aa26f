"""The judge, the colour's mode and held rests, and the parallel count run over all candidates at once:
they choose and write exactly what the previous per-candidate code did (tests/ensemble/reference_judge.py)."""

from __future__ import annotations

import numpy as np
import pytest
import reference_judge as ref

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.analysis.voicing import (
    choose,
    judge_figures,
    parallel_counts,
    parallel_events,
    repair_parallels,
    runs,
    step_probs,
    voice_parallels,
)
from affetto.ensemble import colour
from affetto.ensemble.engine import Ensemble, binarise, melody_roll
from affetto.music.notes import Note, TimeSignature

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)


def random_lines(rng: np.random.Generator, k: int, steps: int) -> np.ndarray:
    """(k, 4, steps) chorale-like lines: scale degrees in each voice's octave, notes of 2 steps or
    held longer, some rests, so that triads, parallels, held notes and short rests all occur."""
    tonic = int(rng.integers(0, 12))
    scale = np.array(MAJOR if rng.random() < 0.5 else MINOR)
    degree = rng.integers(0, 7, size=(k, 4, steps // 2))
    line = (np.array([72, 60, 55, 43])[None, :, None] + tonic + scale[degree]).repeat(2, axis=2)
    hold = rng.random((k, 4, steps)) < 0.5
    for t in range(1, steps):
        line[:, :, t] = np.where(hold[:, :, t], line[:, :, t - 1], line[:, :, t])
    line[rng.random((k, 4, steps)) < 0.08] = -1
    return line


def test_parallel_events_and_counts_match_the_pairwise_loop():
    rng = np.random.default_rng(0)
    found = 0
    for _ in range(400):
        steps = int(rng.integers(1, 70))
        # voices moving by the same intervals, often in fifths and octaves
        line = rng.integers(48, 60, size=(4, 1)) + rng.integers(-3, 4, size=(4, steps)).cumsum(1) * rng.choice(
            [1, 5, 7, 12], size=(4, 1))
        line[rng.random((4, steps)) < 0.15] = -1
        events = parallel_events(line)
        assert events == ref.parallel_events(line)
        assert parallel_counts(line[None])[0] == len(events)
        for voice in range(4):  # the plain-Python count a single new note is judged with
            assert voice_parallels(line.tolist(), voice) == sum(voice in e[:2] for e in events)
        found += len(events)
    assert found > 50  # the lines had parallels to find


def test_runs_match_the_step_by_step_loop():
    rng = np.random.default_rng(3)
    for _ in range(500):
        line = rng.integers(-1, 3, size=int(rng.integers(0, 40)))  # rests and repeated pitches
        assert runs(line) == ref.runs(line)


def test_judge_figures_and_choice_match_the_per_candidate_judge():
    rng = np.random.default_rng(1)
    choices = set()
    for _ in range(200):
        k, steps = int(rng.integers(2, 9)), int(rng.choice([48, 64]))
        lines = random_lines(rng, k, steps)
        figures = judge_figures(lines)
        for i, line in enumerate(lines):
            minor, major, _ = ref.chord_shares(line)
            good, total = ref.consonance(line)
            assert (figures["minor"][i], figures["major"][i]) == (minor, major)
            assert figures["activity"][i] == ref.inner_activity(line)
            assert figures["consonance"][i] == good / max(total, 1)
            assert figures["parallels"][i] == ref.parallels(line)
        valence, arousal = rng.uniform(-1, 1), rng.uniform(-1, 1)
        pick = choose(lines, valence, arousal)
        assert pick == ref.choose(list(lines), valence, arousal)
        choices.add(pick)
    assert len(choices) > 3


@pytest.mark.parametrize("valence", [-1.0, -0.6, 0.0, 0.6, 1.0])
@pytest.mark.parametrize("arousal", [-1.0, 0.0, 1.0])
def test_colour_as_judged_matches_each_candidate_coloured_alone(valence, arousal):
    rng = np.random.default_rng(int((valence + 2) * 10 + arousal * 3))
    moved = 0
    for _ in range(30):
        lines = random_lines(rng, int(rng.integers(1, 9)), int(rng.choice([48, 64])))
        batched = colour.colour_judged(lines, valence, arousal)
        for i, line in enumerate(lines):
            assert np.array_equal(batched[i], ref.colour_judged(line, valence, arousal))
            assert colour.colour_mode(line, valence)[1] == ref.colour_mode(line, valence)[1]
            moved += ref.colour_mode(line, valence)[1]
    assert moved > 0 or abs(valence) < 0.5  # an emotion with a mode moved notes


def per_candidate(ens: Ensemble, melody: np.ndarray, capsule: Capsule, seed: int, k: int) -> np.ndarray:
    """The previous engine, one candidate at a time: each coloured and judged alone, then the kept one
    repaired and coloured again from scratch."""
    s = ens.spec
    mel = np.repeat(melody[None], k, 0)
    probs = ens.run(mel, np.ones((k, 1)), np.tile(np.array(capsule.weights, np.float32), (k, 1)),
                    np.zeros((k, 1)), ens.latents(k, np.random.default_rng(seed)))
    tune = np.where(melody.any(-1), s.low + melody.argmax(-1), -1).reshape(-1)
    centre = colour.toward_centre(tune, capsule.valence, s.low, s.pitches)
    prefer = None if centre is None else centre[:, None, None, :].astype(np.float32)
    rolls = binarise(probs, ens.threshold, prefer)
    rolls[:, 0] = mel > 0.5
    drawn = [np.where(r.any(-1), s.low + r.argmax(-1), -1).reshape(4, -1) for r in rolls]
    pick = 0 if k == 1 else ref.choose([ref.colour_judged(c, capsule.valence, capsule.arousal) for c in drawn],
                                       capsule.valence, capsule.arousal)
    p = probs[pick] if prefer is None else probs[pick] * prefer
    fixed, _ = repair_parallels(drawn[pick], step_probs(p, 0.0), s.low)
    fixed = colour.colour_motion(ref.colour_judged(fixed, capsule.valence, capsule.arousal), capsule.arousal)
    return np.where((fixed >= s.low) & (fixed < s.low + s.pitches), fixed, -1)


@pytest.mark.parametrize("k", [1, 8])
def test_the_engine_writes_what_the_per_candidate_engine_wrote(k):
    ens = Ensemble()  # the shipped model
    s = ens.spec
    scale = (60, 62, 64, 65, 67, 69, 71, 72)
    tunes = [[Note(scale[(i * 3) % 8] + 12 * (i % 2), float(i), 1.0, 90) for i in range(16)],
             [Note(69 - (i % 5), i * 0.5, 0.5, 90) for i in range(32)],  # a falling minor figure in eighths
             [Note(p, 2.0 * i, 2.0, 90) for i, p in enumerate((67, 64, 65, 62, 64, 60, 62, 59))]]
    capsules = [Capsule.of(q) for q in Quadrant] + [Capsule(), Capsule((0.5, 0.1, 0.1, 0.3))]
    for t, tune in enumerate(tunes):
        melody = melody_roll(tune, TimeSignature(), s.bars, s)
        for c, capsule in enumerate(capsules):
            seed = 10 * t + c
            rolls = ens.voice_phrases(melody[None], np.zeros((1, 1), np.float32), capsule,
                                      np.random.default_rng(seed), k)[0]
            got = np.where(rolls.any(-1), s.low + rolls.argmax(-1), -1).reshape(4, -1)
            assert np.array_equal(got, per_candidate(ens, melody, capsule, seed, k)), (t, capsule)
