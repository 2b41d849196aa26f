"""Statistics of verdicts: Wilson intervals, confusion matrices, accuracies, metric tables.

Everything here is numpy and plain Python: it scores lists of (target, judged)
quadrants, whichever judge produced them, so the feature judge and the learned
judge are summarised the same way and the figures of a report line up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from affetto.analysis.emotion import Quadrant
from affetto.analysis.metrics import METRICS, gap_percent

Z95 = 1.959963984540054  # two-sided 95% quantile of the standard normal


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (nan, nan) for no trials.

    centre = (p + z²/2n) / (1 + z²/n), half-width = z/(1 + z²/n) * sqrt(p(1-p)/n + z²/4n²).
    Unlike the normal interval it stays inside [0, 1] and is sensible at p = 0 or 1.
    """
    if isinstance(successes, bool) or not isinstance(successes, (int, np.integer)) or successes < 0:
        raise ValueError(f"successes must be an int >= 0, got {successes!r}")
    if isinstance(trials, bool) or not isinstance(trials, (int, np.integer)) or trials < 0:
        raise ValueError(f"trials must be an int >= 0, got {trials!r}")
    if successes > trials:
        raise ValueError(f"successes ({successes}) cannot exceed trials ({trials})")
    if trials == 0:
        return (math.nan, math.nan)
    n, p = float(trials), successes / trials
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


def proportion(successes: int, trials: int) -> dict:
    """{"value", "ci95", "n"}: a share with its Wilson interval (value NaN for no trials)."""
    low, high = wilson_interval(int(successes), int(trials))
    return {"value": successes / trials if trials else math.nan, "ci95": [low, high], "n": int(trials)}


def confusion_matrix(
    targets: Sequence[int] | np.ndarray, judged: Sequence[int] | np.ndarray, classes: int = 4
) -> np.ndarray:
    """(classes, classes) counts; rows are targets, columns verdicts."""
    t = np.asarray(targets, dtype=np.int64)
    j = np.asarray(judged, dtype=np.int64)
    if t.shape != j.shape:
        raise ValueError(f"targets and verdicts differ in length: {len(t)} vs {len(j)}")
    if len(t) and (t.min() < 0 or j.min() < 0 or t.max() >= classes or j.max() >= classes):
        raise ValueError(f"classes must be in range 0..{classes - 1}")
    out = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(out, (t, j), 1)
    return out


def _side(quadrants: np.ndarray, axis: str) -> np.ndarray:
    """True where a quadrant is on the positive side of ``axis`` ("valence" or "arousal")."""
    positive = (Quadrant.Q1, Quadrant.Q4) if axis == "valence" else (Quadrant.Q1, Quadrant.Q2)
    return np.isin(quadrants, [int(q) for q in positive])


def summarise(targets: Sequence[int], judged: Sequence[int]) -> dict:
    """Accuracy (Wilson 95%), per-quadrant accuracy, valence and arousal accuracy, the confusion matrix.

    Per-quadrant accuracy is recall: of the phrases asked for Qk, the share judged Qk.
    """
    t = np.asarray(targets, dtype=np.int64)
    j = np.asarray(judged, dtype=np.int64)
    matrix = confusion_matrix(t, j)
    per = {}
    for q in Quadrant:
        row = matrix[int(q)]
        per[q.name] = proportion(int(row[int(q)]), int(row.sum()))
    return {
        "accuracy": proportion(int(np.trace(matrix)), int(matrix.sum())),
        "per_quadrant": per,
        "valence": proportion(int(np.count_nonzero(_side(t, "valence") == _side(j, "valence"))), len(t)),
        "arousal": proportion(int(np.count_nonzero(_side(t, "arousal") == _side(j, "arousal"))), len(t)),
        "confusion": matrix.tolist(),
    }


def chance() -> dict:
    """What a judge that ignores the music scores on quadrant-balanced targets."""
    return {"accuracy": 0.25, "valence": 0.5, "arousal": 0.5}


def mean_metrics(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Each metric of :data:`affetto.analysis.metrics.METRICS` averaged where defined (NaN if nowhere)."""
    out = {}
    for name in METRICS:
        values = np.array([r[name] for r in rows], dtype=float) if rows else np.zeros(0)
        defined = values[~np.isnan(values)]
        out[name] = float(defined.mean()) if len(defined) else math.nan
    return out


def metric_gaps(generated: dict[str, float], reference: dict[str, float]) -> dict[str, float]:
    """Gap in percent of every metric from the reference (see :func:`affetto.analysis.metrics.gap_percent`)."""
    return {name: gap_percent(generated[name], reference[name]) for name in METRICS}


def clean(value):
    """A JSON-safe copy: numpy scalars to Python, NaN and infinities to None."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return clean(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value
