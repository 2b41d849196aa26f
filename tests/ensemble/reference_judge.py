"""The harmoniser's previous per-candidate code, kept verbatim as the oracle for the batched judge.

Each function here is the version that judged and coloured one candidate line at a time (before the
judge, the colour's mode and held rests, and the parallel count ran over all candidates at once);
tests/ensemble/test_batched_judge.py checks the batched code chooses and writes exactly what this did.
"""

from __future__ import annotations

import itertools

import numpy as np

from affetto.analysis.voicing import chord_shares, consonance, inner_activity
from affetto.ensemble.colour import (
    _OK,
    _TRIADS,
    CALM_AROUSAL,
    HOLD_STEPS,
    KEY_CLARITY,
    TO_MAJOR,
    TO_MINOR,
    phrase_key,
)
from affetto.runtime.plan import MODE_VALENCE


def parallel_events(line: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Parallel fifths and octaves (unisons too) between any two voices moving in the same direction:
    ``(upper voice, lower voice, step of the first sonority, step of the second)`` for each."""
    events = []
    sounding = line >= 0
    for a, b in itertools.combinations(range(line.shape[0]), 2):
        both = sounding[a] & sounding[b]
        x, y = line[a][both], line[b][both]
        if len(x) < 2:
            continue
        moved = np.ones(len(x), dtype=bool)  # successive distinct sonorities
        moved[1:] = (x[1:] != x[:-1]) | (y[1:] != y[:-1])
        x, y = x[moved].astype(np.int64), y[moved].astype(np.int64)
        interval = (x - y) % 12
        same = (interval[1:] == interval[:-1]) & ((interval[1:] == 0) | (interval[1:] == 7))
        if not same.any():
            continue
        same &= (x[1:] - x[:-1]) * (y[1:] - y[:-1]) > 0
        if same.any():
            where = np.flatnonzero(both)[moved]
            events += [(a, b, int(where[j]), int(where[j + 1])) for j in np.flatnonzero(same)]
    return events


def parallels(line: np.ndarray) -> int:
    return len(parallel_events(line))


def _z(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-6)


def choose(candidates: list[np.ndarray], valence: float, arousal: float) -> int:
    """The index of the candidate voicing that best fits (valence, arousal) and is cleanest.

    Scores are standardised among the candidates: major-minus-minor triads
    times valence, inner-voice onsets times arousal, plus consonance against
    the melody, minus parallel fifths and octaves. An unconditioned request
    (0, 0) is judged on cleanliness alone.
    """
    if len(candidates) == 1:
        return 0
    shares = np.array([chord_shares(c)[:2] for c in candidates])  # (K, 2) minor, major
    activity = np.array([inner_activity(c) for c in candidates])
    cons = np.array([(lambda g: g[0] / max(g[1], 1))(consonance(c)) for c in candidates])
    par = np.array([parallels(c) for c in candidates], dtype=float)
    score = valence * _z(shares[:, 1] - shares[:, 0]) + arousal * _z(activity) + _z(cons) - _z(par)
    return int(np.argmax(score))


def _notes(voices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Note ids per step (-1 at rests) of (V, steps) voices, and each note's pitch."""
    sounding = voices >= 0
    prev = np.concatenate([np.full((len(voices), 1), -2), voices[:, :-1]], axis=1)
    start = sounding & (voices != prev)
    ids = np.cumsum(start.ravel()).reshape(voices.shape) - 1
    ids = np.where(sounding, ids, -1)
    return ids, voices[start]

def _triad_thirds(line: np.ndarray, minor: bool) -> np.ndarray:
    """Per step, the pitch class of the third of the triad sounding on that beat's first step (major
    triads when ``minor`` is asked, to be lowered; minor ones otherwise, to be raised); -1 elsewhere."""
    third = 4 if minor else 3
    beats = line[:, ::4]  # (voices, beats)
    present = np.zeros((beats.shape[1], 12), bool)
    voice, beat = np.nonzero(beats >= 0)
    present[beat, beats[voice, beat] % 12] = True
    match = (present[:, None, :] == _TRIADS[third][None, :, :]).all(-1)  # (beats, roots)
    out = np.full(line.shape[1], -1)
    hit, root = np.nonzero(match)
    out[hit * 4] = (root + third) % 12
    return out


def colour_mode(line: np.ndarray, valence: float) -> tuple[np.ndarray, int]:
    """``line`` with its voices moved toward the mode ``valence`` asks; and how many notes moved."""
    if abs(valence) < MODE_VALENCE:
        return line, 0
    minor = valence < 0
    key = phrase_key(line)
    shift_of = np.zeros(12, np.int64)  # semitones moved, by degree above the tonic
    tonic = 0
    if key is not None and key[2] >= KEY_CLARITY and (key[1] == "major") == minor:
        tonic = key[0]
        for degree, semitones in (TO_MINOR if minor else TO_MAJOR).items():
            shift_of[degree] = semitones
    voices, melody = line[1:], line[0]
    ids, n_pitch = _notes(voices)
    if len(n_pitch) == 0:
        return line, 0
    shift = shift_of[(n_pitch - tonic) % 12]
    # the chord's own third on a beat the note sounds on: a major triad turns minor, or back
    thirds = _triad_thirds(line, minor)
    on_beat = (ids >= 0) & (thirds[None, :] >= 0) & (voices % 12 == thirds[None, :])
    chord = np.bincount(ids[on_beat], minlength=len(n_pitch)) > 0
    shift = np.where((shift == 0) & chord, -1 if minor else 1, shift)
    step_shift = np.where(ids >= 0, shift[ids], 0)
    # blocked where the melody holds the natural degree, or where it would clash where it did not
    rows = np.arange(3)[:, None]
    sounds = (melody >= 0)[None, :] & (ids >= 0)
    before = _OK[rows, (melody - voices) % 12]
    after = _OK[rows, (melody - voices - step_shift) % 12]
    blocked_step = sounds & ((melody % 12 == voices % 12) | (before & ~after))
    blocked = np.bincount(ids[blocked_step], minlength=len(n_pitch)) > 0
    moving = (shift != 0) & ~blocked
    # no false relations: a note moves only if no other voice keeps its natural degree beside it
    pcs = np.where(ids >= 0, voices % 12, -1)
    while True:
        held = np.where((ids >= 0) & ~moving[np.maximum(ids, 0)], pcs, -2)  # natural degrees that stay
        clash_step = np.zeros(voices.shape, bool)
        for v, (a, b) in enumerate(((1, 2), (0, 2), (0, 1))):
            clash_step[v] = (ids[v] >= 0) & ((held[a] == pcs[v]) | (held[b] == pcs[v]))
        clash = np.bincount(ids[clash_step & moving[np.maximum(ids, 0)] & (ids >= 0)], minlength=len(n_pitch)) > 0
        if not clash.any():
            break
        moving &= ~clash
    out = line.copy()
    out[1:] = np.where((ids >= 0) & moving[np.maximum(ids, 0)], voices + step_shift, voices)
    return out, int(moving.sum())


def hold_through_rests(line: np.ndarray, max_rest: int = HOLD_STEPS) -> np.ndarray:
    """Alto, tenor and bass hold each note through a following rest of up to ``max_rest`` steps."""
    out = line.copy()
    for voice in (1, 2, 3):
        row = out[voice]
        step = 1
        while step < len(row):
            if row[step] < 0 <= row[step - 1]:
                end = step
                while end < len(row) and row[end] < 0:
                    end += 1
                if end - step <= max_rest:
                    row[step:end] = row[step - 1]
                step = end
            step += 1
    return out


def colour_judged(line: np.ndarray, valence: float, arousal: float) -> np.ndarray:
    """The previous ``colour(line, valence, arousal, motion=False)``."""
    out, _ = colour_mode(line, valence)
    if arousal <= CALM_AROUSAL:
        out = hold_through_rests(out)
    return out


def runs(line: np.ndarray) -> list[tuple[int, int, int]]:
    """(start step, length, pitch) of each note of one voice's line."""
    notes, start = [], 0
    for s in range(1, len(line) + 1):
        if s == len(line) or line[s] != line[start]:
            if line[start] >= 0:
                notes.append((start, s - start, int(line[start])))
            start = s
    return notes
