"""Statistics of verdicts: the Wilson interval by hand, confusion matrices and accuracies on known cases."""

import math

import numpy as np
import pytest

from affetto.analysis.emotion import Quadrant
from affetto.models.evaluation.stats import (
    chance,
    clean,
    confusion_matrix,
    mean_metrics,
    metric_gaps,
    proportion,
    summarise,
    wilson_interval,
)

Q1, Q2, Q3, Q4 = (int(q) for q in Quadrant)


def test_wilson_matches_a_hand_computation():
    # 8 of 10, z = 1.959964: denom = 1 + z²/10 = 1.384146; centre = (0.8 + z²/20) / denom = 0.716735;
    # half = z/denom * sqrt(0.8*0.2/10 + z²/400) = 1.416009 * 0.160011 = 0.226577.
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.716735 - 0.226577, abs=1e-5)
    assert high == pytest.approx(0.716735 + 0.226577, abs=1e-5)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)  # the textbook figures


def test_wilson_at_the_edges_stays_inside_zero_one():
    low, high = wilson_interval(0, 10)
    assert low == 0.0
    assert high == pytest.approx(0.2775, abs=1e-4)  # z²/n / (1 + z²/n)
    low, high = wilson_interval(10, 10)
    assert high == pytest.approx(1.0) and low == pytest.approx(1 - 0.2775, abs=1e-4)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def test_wilson_shrinks_with_more_trials():
    narrow = np.diff(wilson_interval(800, 1000))[0]
    wide = np.diff(wilson_interval(8, 10))[0]
    assert narrow < wide / 5


@pytest.mark.parametrize("args", [(-1, 10), (11, 10), (1.5, 10), (True, 10)])
def test_wilson_rejects_impossible_counts(args):
    with pytest.raises(ValueError):
        wilson_interval(*args)


def test_confusion_rows_are_targets():
    matrix = confusion_matrix([Q1, Q1, Q2, Q3], [Q1, Q4, Q1, Q3])
    assert matrix.tolist() == [[1, 0, 0, 1], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    with pytest.raises(ValueError, match="length"):
        confusion_matrix([Q1], [Q1, Q2])
    with pytest.raises(ValueError, match="classes"):
        confusion_matrix([4], [0])


def test_summary_of_a_known_case():
    # Q1->Q1 right; Q1->Q4 keeps valence, loses arousal; Q2->Q1 keeps arousal, loses valence; Q3->Q3 right.
    s = summarise([Q1, Q1, Q2, Q3], [Q1, Q4, Q1, Q3])
    assert s["accuracy"]["value"] == 0.5 and s["accuracy"]["n"] == 4
    assert s["valence"]["value"] == 0.75
    assert s["arousal"]["value"] == 0.75
    assert s["per_quadrant"]["Q1"]["value"] == 0.5
    assert s["per_quadrant"]["Q2"]["value"] == 0.0
    assert s["per_quadrant"]["Q3"]["value"] == 1.0
    assert math.isnan(s["per_quadrant"]["Q4"]["value"])  # never asked for
    assert s["accuracy"]["ci95"] == list(wilson_interval(2, 4))


def test_a_perfect_judge_and_chance():
    targets = [Q1, Q2, Q3, Q4] * 5
    s = summarise(targets, targets)
    assert s["accuracy"]["value"] == s["valence"]["value"] == s["arousal"]["value"] == 1.0
    assert chance() == {"accuracy": 0.25, "valence": 0.5, "arousal": 0.5}


def test_metric_means_skip_undefined_values_and_gaps_are_percent():
    rows = [{"pitch_class_entropy": 1.0, "scale_consistency": 1.0, "groove_consistency": math.nan,
             "empty_beat_rate": 0.0, "polyphony": 1.0, "pitch_range": 12.0, "notes_per_bar": 4.0},
            {"pitch_class_entropy": 3.0, "scale_consistency": 0.5, "groove_consistency": math.nan,
             "empty_beat_rate": 0.5, "polyphony": 2.0, "pitch_range": 24.0, "notes_per_bar": 8.0}]
    means = mean_metrics(rows)
    assert means["pitch_class_entropy"] == 2.0 and math.isnan(means["groove_consistency"])
    gaps = metric_gaps(means, {**means, "notes_per_bar": 8.0, "empty_beat_rate": 0.0})
    assert gaps["notes_per_bar"] == pytest.approx(25.0)
    assert gaps["pitch_range"] == 0.0 and gaps["empty_beat_rate"] == math.inf


def test_clean_makes_json_safe_values():
    out = clean({"a": np.float32(0.5), "b": [math.nan, np.int64(3)], "c": (math.inf,), 1: np.array([1, 2])})
    assert out == {"a": 0.5, "b": [None, 3], "c": [None], "1": [1, 2]}
    assert proportion(0, 0)["value"] != proportion(0, 0)["value"]  # NaN before cleaning
