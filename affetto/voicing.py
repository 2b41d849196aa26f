"""Measures of four-voice writing on step lines: consonance, parallels, triads, inner-voice activity.

A phrase is a (4, steps) array of MIDI pitches per sixteenth step (-1 for a
rest), soprano first. The ensemble's runtime judge chooses among candidate
voicings with these measures, and the evaluation reports them beside Bach's.
"""

from __future__ import annotations

import itertools

import numpy as np

CONSONANT_UPPER = frozenset({0, 3, 4, 5, 7, 8, 9})  # against the melody: unison/8ve, 3rds, 4th, 5th, 6ths
CONSONANT_BASS = frozenset({0, 3, 4, 7, 8, 9})  # a fourth above the bass is a dissonance
_UPPER_OK = np.isin(np.arange(12), sorted(CONSONANT_UPPER))  # interval class -> consonant against the melody
_BASS_OK = np.isin(np.arange(12), sorted(CONSONANT_BASS))
VOICE_RANGES = {"soprano": (59, 81), "alto": (53, 77), "tenor": (47, 70), "bass": (38, 64)}


def lines(rolls: np.ndarray, triple: np.ndarray, low: int) -> list[np.ndarray]:
    """Binary rolls (N, T, bars, 16, P) -> per phrase a (T, steps) pitch array (-1 rest), padding removed."""
    out = []
    for roll, tri in zip(rolls, np.asarray(triple).reshape(-1)):
        per_bar = 12 if tri > 0.5 else 16
        r = roll[:, :, :per_bar]  # (T, bars, per_bar, P)
        pitch = np.where(r.any(-1), low + r.argmax(-1), -1)
        out.append(pitch.reshape(r.shape[0], -1))
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


def consonance(line: np.ndarray) -> tuple[int, int]:
    """(consonant, sounding) steps of alto, tenor and bass against the soprano."""
    good = total = 0
    for t in (1, 2, 3):
        both = (line[0] >= 0) & (line[t] >= 0)
        interval = (line[0][both] - line[t][both]) % 12
        allowed = _BASS_OK if t == 3 else _UPPER_OK
        good += int(allowed[interval].sum())
        total += int(both.sum())
    return good, total


def parallels(line: np.ndarray) -> int:
    """Parallel fifths and octaves (unisons too) between any two voices moving in the same direction."""
    count = 0
    for a, b in itertools.combinations(range(line.shape[0]), 2):
        both = (line[a] >= 0) & (line[b] >= 0)
        x, y = line[a][both].astype(np.int64), line[b][both].astype(np.int64)
        if len(x) < 2:
            continue
        moved = np.ones(len(x), dtype=bool)  # successive distinct sonorities
        moved[1:] = (x[1:] != x[:-1]) | (y[1:] != y[:-1])
        x, y = x[moved], y[moved]
        dx, dy, interval = np.diff(x), np.diff(y), (x - y) % 12
        perfect = (interval[1:] == 0) | (interval[1:] == 7)
        same = (interval[1:] == interval[:-1]) & perfect
        count += int((same & (dx * dy > 0)).sum())
    return count


def chord_shares(line: np.ndarray) -> tuple[float, float, int]:
    """(minor-triad share, major-triad share, beats): the sounding notes on each beat's first step."""
    minor = major = beats = 0
    for s in range(0, line.shape[1], 4):
        pcs = {int(p) % 12 for p in line[:, s] if p >= 0}
        beats += 1
        if len(pcs) == 3:
            for root in pcs:
                if pcs == {root, (root + 3) % 12, (root + 7) % 12}:
                    minor += 1
                if pcs == {root, (root + 4) % 12, (root + 7) % 12}:
                    major += 1
    return minor / max(beats, 1), major / max(beats, 1), beats


def onsets(voice: np.ndarray) -> int:
    """Notes in one voice's line (a new pitch after a rest or another pitch)."""
    starts = (voice >= 0) & np.r_[True, voice[1:] != voice[:-1]]
    return int(starts.sum())


def inner_activity(line: np.ndarray) -> float:
    """Onsets per beat of alto and tenor together."""
    return (onsets(line[1]) + onsets(line[2])) / (line.shape[1] / 4)


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
