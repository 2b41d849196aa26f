"""A knob turn is heard on the shipped model: arousal moves density and loudness away from the seed's.

A seed of broken chords in eighths; the knob at happy for six bars, then sad
for six, then happy again, with the daemon's default smoothing. The sad bars
must carry at most 0.7x the onsets or 0.75x the velocity of the happy bars
before the turn, and the happy bars after it the reverse.
"""

import numpy as np
import pytest

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.music.notes import Note, TimeSignature
from affetto.runtime import default_model_path, load_model

SMOOTHING = 0.3  # the daemon's default emotion_smoothing
CHORDS = [(60, 64, 67, 72), (57, 60, 64, 69), (53, 57, 60, 65), (55, 59, 62, 67)]
SEED = [Note(p, bar * 4 + half * 2 + i * 0.5, 0.5, 80)
        for bar in range(2) for half in range(2) for i, p in enumerate(CHORDS[bar * 2 + half])]


def bars_after_turns(engine, rng) -> np.ndarray:
    """(onsets, mean velocity) of 18 bars: 6 happy, 6 sad, 6 happy, the capsule smoothed at each bar line."""
    engine.prime(SEED)
    capsule, rows = Capsule.of(Quadrant.Q1), []
    for target in [Quadrant.Q1] * 6 + [Quadrant.Q3] * 6 + [Quadrant.Q1] * 6:
        weights = Capsule.of(target).weights
        capsule = Capsule(tuple(SMOOTHING * o + (1 - SMOOTHING) * t for o, t in zip(capsule.weights, weights)))
        notes = engine.generate_bar(capsule, rng=rng)
        rows.append((len({round(n.onset * 4) for n in notes}), np.mean([n.velocity for n in notes]) if notes else 0.0))
    return np.array(rows)


@pytest.mark.skipif(not default_model_path().exists(), reason="no shipped model")
@pytest.mark.parametrize("take", range(3))
def test_a_turn_from_happy_to_sad_and_back_is_heard(take):
    engine = load_model(None, meter=TimeSignature(4, 4))
    rows = bars_after_turns(engine, np.random.default_rng(take))
    happy, sad, again = rows[:6].mean(axis=0), rows[6:12].mean(axis=0), rows[12:].mean(axis=0)
    assert sad[0] <= 0.7 * happy[0] or sad[1] <= 0.75 * happy[1], (happy, sad)
    assert sad[0] <= 0.7 * again[0] or sad[1] <= 0.75 * again[1], (sad, again)
