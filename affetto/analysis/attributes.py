"""Bar attributes measured from the music itself: key, note density, polyphony.

These are the control tokens of the vocabulary (``KEY``, ``DENS``, ``POLY``
after each bar's ``BAR`` and ``METER``): in training each bar carries the
values measured on the notes it holds, so the model learns what a "minor key,
two onsets per beat, chords of three" bar looks like from exact attributes
rather than from noisy emotion labels. At run time the engine writes them from
the knob (valence -> mode, a density control) and from the seed (its key,
density and texture), or lets the model choose them.

The definitions are small and fixed; their bin edges travel inside every
model file with the vocabulary.
"""

from __future__ import annotations

import numpy as np

from affetto.analysis.judge import PITCH_NAMES, estimate_key

# Distinct onsets per quarter-note beat; bin 0 is an empty bar, bin i >= 1 holds
# values up to DENSITY_EDGES[i - 1] (the last bin is open).
DENSITY_EDGES = (0.5, 1.0, 1.5, 2.0, 3.0)
# Notes per onset (1 = a single line, 3 = triads); bin 0 is an empty bar.
POLYPHONY_EDGES = (1.25, 1.75, 2.5, 3.25)
KEY_CLARITY = 0.6  # Krumhansl correlation below which a passage's key counts as unclear
UNCLEAR_KEY = 24  # key classes: 0..11 major (tonic pitch class), 12..23 minor, 24 unclear
N_KEYS = 25


def bin_of(value: float | np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """Bin 1..len(edges)+1 of positive values (``value <= edge`` goes below the edge)."""
    return np.searchsorted(np.asarray(edges, dtype=float), np.asarray(value, dtype=float), side="left") + 1


def bar_attributes(
    notes: np.ndarray, bar_steps: int, n_bars: int, steps_per_beat: int,
    density_edges: tuple[float, ...] = DENSITY_EDGES,
    polyphony_edges: tuple[float, ...] = POLYPHONY_EDGES,
) -> tuple[np.ndarray, np.ndarray]:
    """(density bin, polyphony bin) of each of ``n_bars`` bars of an (N, >=3) step array.

    Column 0 holds onsets in grid steps from the first bar line. An empty bar
    has bin 0 for both.
    """
    notes = np.asarray(notes, dtype=np.int64)
    onsets = notes[:, 0] if notes.ndim == 2 else np.zeros(0, np.int64)
    bars = onsets // bar_steps
    inside = (bars >= 0) & (bars < n_bars)
    bars, onsets = bars[inside], onsets[inside]
    counts = np.bincount(bars, minlength=n_bars)[:n_bars]
    distinct = np.unique(onsets)
    positions = np.bincount(distinct // bar_steps, minlength=n_bars)[:n_bars]
    beats = bar_steps / steps_per_beat
    density = np.where(positions > 0, bin_of(positions / beats, density_edges), 0)
    poly = np.where(positions > 0, bin_of(counts / np.maximum(positions, 1), polyphony_edges), 0)
    return density.astype(np.int64), poly.astype(np.int64)


def key_class(pitch: np.ndarray, duration_beats: np.ndarray, clarity: float = KEY_CLARITY) -> int:
    """0..11 major or 12..23 minor (tonic pitch class + 12 for minor); 24 when unclear or empty."""
    if len(pitch) < 2:
        return UNCLEAR_KEY
    tonic, mode, r = estimate_key(np.asarray(pitch), np.asarray(duration_beats, dtype=float))
    return key_from(tonic, mode, r, clarity)


BASS_WEIGHT = 2.0  # how much more an onset's lowest note counts when a played phrase's key is heard


def heard_key(steps: np.ndarray, steps_per_beat: int) -> tuple[int, str, float]:
    """(tonic, mode, correlation) of a played phrase, an (N, >=3) array of onset step, duration, pitch.

    Duration-weighted pitch classes as :func:`key_class` reads them, with each onset's lowest note
    counted :data:`BASS_WEIGHT` times: a melody that holds the third or the fifth (a nocturne's long A
    over F major) would otherwise name the relative or the dominant key; the bass names the key.
    """
    steps = np.asarray(steps, dtype=np.int64)
    onset, pitch = steps[:, 0], steps[:, 2]
    order = np.lexsort((pitch, onset))
    lowest = np.zeros(len(steps), dtype=bool)
    first = np.ones(len(order), dtype=bool)
    first[1:] = onset[order][1:] != onset[order][:-1]
    lowest[order[first]] = True
    weight = steps[:, 1] / steps_per_beat * np.where(lowest, BASS_WEIGHT, 1.0)
    return estimate_key(pitch, weight)


def heard_key_class(steps: np.ndarray, steps_per_beat: int, clarity: float = KEY_CLARITY) -> int:
    """:func:`heard_key` as a key class (0..11 major, 12..23 minor, 24 unclear or too few notes)."""
    if len(steps) < 2:
        return UNCLEAR_KEY
    return key_from(*heard_key(steps, steps_per_beat), clarity)


def key_from(tonic: int, mode: str, r: float, clarity: float = KEY_CLARITY) -> int:
    """The key class of an estimate (tonic, "major"/"minor", correlation)."""
    if not r >= clarity:
        return UNCLEAR_KEY
    return int(tonic) % 12 + (12 if mode == "minor" else 0)


def key_name(key: int) -> str:
    if key == UNCLEAR_KEY:
        return "?"
    return PITCH_NAMES[key % 12] + ("m" if key >= 12 else "")


def transpose_key(key: np.ndarray | int, shift: int) -> np.ndarray:
    """Key classes moved by ``shift`` semitones (the unclear class stays)."""
    key = np.asarray(key, dtype=np.int64)
    moved = (key // 12) * 12 + (key % 12 + shift) % 12
    return np.where(key == UNCLEAR_KEY, key, moved)
