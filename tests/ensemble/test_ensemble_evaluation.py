"""The ensemble's figures on hand-made voices, and the whole evaluation on a tiny model."""

import numpy as np
import pytest

from affetto.models.evaluation.ensemble import (
    chord_shares,
    consonance,
    lines,
    musegan_metrics,
    parallels,
    runs,
)
from affetto.models.musegan.data import LOW

pytestmark = pytest.mark.torch


def test_parallel_fifths_and_octaves_are_counted_contrary_motion_is_not():
    line = np.array([[67, 67, 69, 69], [60, 60, 62, 62]])  # C-G -> D-A: a parallel fifth
    assert parallels(line) == 1
    down = np.array([[67, 67, 62, 62], [60, 60, 55, 55]])  # both down a fourth: parallel fifths too
    assert parallels(down) == 1
    oblique = np.array([[67, 67, 69, 69], [60, 60, 60, 60]])
    assert parallels(oblique) == 0
    octaves = np.array([[72, 74], [60, 62]])
    assert parallels(octaves) == 1


def test_consonance_against_the_melody():
    line = np.array([[72, 72], [69, 71], [64, 64], [48, 67]])  # a sixth, a second; a sixth twice; 8ve, 4th vs bass
    good, total = consonance(line)
    assert (good, total) == (4, 6)


def test_minor_triads_per_beat():
    line = np.full((4, 8), -1)
    line[:, :4] = np.array([69, 64, 60, 57])[:, None]  # A minor
    line[:, 4:] = np.array([67, 64, 60, 48])[:, None]  # C major
    minor, major, beats = chord_shares(line)
    assert (minor, major, beats) == (0.5, 0.5, 2)


def test_musegan_metrics_of_a_known_roll():
    rolls = np.zeros((1, 4, 4, 16, 64), bool)
    rolls[0, :, 0, :4, 60 - LOW] = True  # every track: one note of 4 steps in bar 1
    rolls[0, 1, 1, 0, 62 - LOW] = True  # alto: a 1-step note in bar 2
    m = musegan_metrics(rolls, np.zeros((1, 1)))
    assert m["empty_bars"]["soprano"] == 0.75 and m["empty_bars"]["alto"] == 0.5
    assert m["qualified_notes"]["alto"] == 0.5 and m["qualified_notes"]["bass"] == 1.0
    assert m["tonal_distance"]["soprano-bass"] == pytest.approx(0.0)
    assert [n[:2] for n in runs(lines(rolls, np.zeros((1, 1)))[0][1])] == [(0, 4), (16, 1)]


@pytest.mark.slow
def test_the_whole_evaluation_runs_on_a_tiny_model(tiny_onnx):
    pytest.importorskip("music21")
    from affetto.models.evaluation.ensemble import evaluate, markdown

    report = evaluate(tiny_onnx, phrases=8)
    assert report["phrases"] == 8
    assert set(report["candidates"]) == {"1", "8"}  # the raw model beside the judge's choice
    assert set(report["candidates"]["1"]["musegan"]) == {"free", "harmonised"}
    assert 0 <= report["candidates"]["8"]["harmony"]["consonant_share"] <= 1
    assert report["speed_one_thread"]["graph_ms_p50"] > 0
    assert "consonant share" in markdown(report)


def test_the_judge_prefers_the_candidate_that_fits_the_emotion():
    from affetto.analysis.voicing import choose

    minor = np.array([[69] * 8, [64] * 8, [60] * 8, [57] * 8])  # A minor throughout
    major = np.array([[72] * 8, [67] * 8, [64] * 8, [48] * 8])  # C major throughout
    assert choose([minor, major], valence=-1.0, arousal=0.0) == 0
    assert choose([minor, major], valence=1.0, arousal=0.0) == 1
    busy = minor.copy()
    busy[1, ::2] = 65  # the alto moves every step
    assert choose([minor, busy], valence=0.0, arousal=1.0) == 1
