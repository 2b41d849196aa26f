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
    """Parallel fifths and octaves (unisons too) between any two voices moving in the same direction."""
    return len(parallel_events(line))


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


VOICE_ORDER = ("soprano", "alto", "tenor", "bass")
REPAIR_WINDOW = 8  # steps either side of a note that its parallels are counted over
REPAIR_ALTERNATIVES = 6  # most probable other pitches tried for a note
REPAIR_MIN_PROB = 0.02  # an alternative the model gives less than this is not tried


def step_probs(probs: np.ndarray, triple: float) -> np.ndarray:
    """(T, bars, 16, P) probabilities -> (T, steps, P) on the bar's steps (a 3/4 bar has 12)."""
    per_bar = 12 if triple > 0.5 else 16
    t, bars, _, p = probs.shape
    return probs[:, :, :per_bar].reshape(t, bars * per_bar, p)


def _consonant_steps(line: np.ndarray, voice: int, start: int, end: int, pitch: int) -> int:
    sop = line[0, start:end]
    sounding = sop >= 0
    table = _BASS_OK if voice == 3 else _UPPER_OK
    return int(table[(sop[sounding] - pitch) % 12].sum())


def _in_order(line: np.ndarray, voice: int, start: int, end: int, pitch: int) -> bool:
    """Whether ``pitch`` keeps ``voice`` between the voices above and below it over the steps."""
    above = line[voice - 1, start:end]
    if (above[above >= 0] < pitch).any():
        return False
    if voice + 1 < line.shape[0]:
        below = line[voice + 1, start:end]
        if (below[below >= 0] > pitch).any():
            return False
    return True


def _run_at(voice_line: np.ndarray, step: int) -> tuple[int, int] | None:
    """(start, end) of the note of a voice sounding at ``step``, or None at a rest."""
    pitch = voice_line[step]
    if pitch < 0:
        return None
    start, end = step, step + 1
    while start > 0 and voice_line[start - 1] == pitch:
        start -= 1
    while end < len(voice_line) and voice_line[end] == pitch:
        end += 1
    return start, end


def _move_note(line: np.ndarray, probs: np.ndarray, low: int, voice: int, start: int, end: int) -> bool:
    """Move one written note to the model's likeliest other pitch that counts fewer parallels around it
    and keeps the rules (see :func:`repair_parallels`); whether it moved."""
    steps = line.shape[1]
    pitch = int(line[voice, start])
    lo, hi = max(0, start - REPAIR_WINDOW), min(steps, end + REPAIR_WINDOW)
    here = parallels(line[:, lo:hi])
    p = probs[voice, start:end].mean(0)
    consonant = _consonant_steps(line, voice, start, end, pitch)
    lo_range, hi_range = VOICE_RANGES[VOICE_ORDER[voice]]
    in_range = lo_range <= pitch <= hi_range
    for index in np.argsort(-p)[:REPAIR_ALTERNATIVES]:
        q = low + int(index)
        if q == pitch or p[index] < REPAIR_MIN_PROB:
            continue
        if (in_range and not lo_range <= q <= hi_range) or not _in_order(line, voice, start, end, q):
            continue
        if _consonant_steps(line, voice, start, end, q) < consonant:
            continue
        segment = line[:, lo:hi].copy()
        segment[voice, start - lo : end - lo] = q
        if parallels(segment) < here:
            line[voice, start:end] = q
            return True
    return False


def repair_parallels(line: np.ndarray, probs: np.ndarray, low: int) -> tuple[np.ndarray, int]:
    """Move written notes out of parallel fifths and octaves, each to another pitch the model found likely.

    ``line`` is a (4, steps) phrase (soprano given) and ``probs`` the model's
    (4, steps, P) probabilities for it. For each parallel in time order, one
    of its written notes (the lower voice's second note first, then the upper
    voice's, then their first notes) is moved to the most probable of the
    model's :data:`REPAIR_ALTERNATIVES` likeliest other pitches that counts
    fewer parallels around it, is as consonant against the melody, stays in
    its voice's range and crosses no neighbour. A parallel no such pitch
    exists for is kept. Returns the new line and the number of notes moved.
    This is decoding under voice-leading rules, as the lead model decodes
    under its grammar: the model proposes, the rules choose among its
    proposals.
    """
    line = line.copy()
    moved = 0
    kept: set[tuple[int, int, int, int]] = set()
    for _ in range(4 * line.shape[1]):  # a bound: every move removes at least one parallel near it
        events = [e for e in sorted(parallel_events(line), key=lambda e: (e[3], e[2])) if e not in kept]
        if not events:
            break
        a, b, first, second = events[0]
        tries = [(v, s) for s in (second, first) for v in (b, a) if v >= 1]
        for voice, step in tries:
            span = _run_at(line[voice], step)
            if span is not None and _move_note(line, probs, low, voice, *span):
                moved += 1
                break
        else:
            kept.add(events[0])
    return line, moved
