"""Measures of four-voice writing on step lines: consonance, parallels, triads, inner-voice activity.

A phrase is a (4, steps) array of MIDI pitches per sixteenth step (-1 for a
rest), soprano first. The ensemble's runtime judge chooses among candidate
voicings with these measures, and the evaluation reports them beside Bach's.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

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


def step_lines(rolls: np.ndarray, per_bar: int, low: int) -> np.ndarray:
    """Binary rolls (K, T, bars, 16, P) of one meter -> (K, T, steps) pitch arrays (-1 rest), as :func:`lines`."""
    r = rolls[:, :, :, :per_bar]  # (K, T, bars, per_bar, P)
    pitch = np.where(r.any(-1), low + r.argmax(-1), -1)
    return pitch.reshape(*r.shape[:2], -1)


def runs(line: np.ndarray) -> list[tuple[int, int, int]]:
    """(start step, length, pitch) of each note of one voice's line."""
    line = np.asarray(line)
    if len(line) == 0:
        return []
    change = np.flatnonzero(line[1:] != line[:-1]) + 1
    starts, ends = np.concatenate([[0], change]), np.concatenate([change, [len(line)]])
    keep = line[starts] >= 0  # rests are not notes
    return list(zip(starts[keep].tolist(), (ends - starts)[keep].tolist(), line[starts[keep]].tolist()))


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


_PAIRS = {v: np.array(list(itertools.combinations(range(v), 2))).T for v in range(2, 5)}  # (upper, lower) voices


def _parallel_hits(line: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Parallel fifths and octaves in (..., V, steps) lines, every pair of voices at once.

    Returns ``hit`` (..., pairs, steps): True at the second sonority of a parallel; ``first``
    (..., pairs, steps): the step where the sonority before it began; and the pairs' (upper, lower)
    voices. Two voices' successive distinct sonorities are compared over the steps where both sound
    (a sonority held over several steps is one), as :func:`parallel_events` says.
    """
    *lead, v, t = line.shape
    upper, lower = _PAIRS[v] if v in _PAIRS else np.array(list(itertools.combinations(range(v), 2))).T
    x = line[..., upper, :].reshape(-1, t).astype(np.int64)  # (rows: lines x pairs, steps)
    y = line[..., lower, :].reshape(-1, t).astype(np.int64)
    steps = np.arange(t)
    both = (x >= 0) & (y >= 0)
    prev = np.full(x.shape, -1)  # the latest step before this one where both sound
    prev[:, 1:] = np.maximum.accumulate(np.where(both, steps, -1), axis=1)[:, :-1]
    rows = np.arange(len(x))[:, None]
    at = np.maximum(prev, 0)
    xp, yp = x[rows, at], y[rows, at]
    moved = (x != xp) | (y != yp)
    interval = (x - y) % 12
    hit = (both & (prev >= 0) & moved & (interval == (xp - yp) % 12) & ((interval == 0) | (interval == 7))
           & ((x - xp) * (y - yp) > 0))
    first = np.full(x.shape, -1)  # the step where the sonority before this one began
    first[:, 1:] = np.maximum.accumulate(np.where(both & ((prev < 0) | moved), steps, -1), axis=1)[:, :-1]
    shape = (*lead, len(upper), t)
    return hit.reshape(shape), first.reshape(shape), (upper, lower)


def parallel_events(line: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Parallel fifths and octaves (unisons too) between any two voices moving in the same direction:
    ``(upper voice, lower voice, step of the first sonority, step of the second)`` for each, pair by
    pair (in the order of ``itertools.combinations``) and in time order within a pair."""
    hit, first, (upper, lower) = _parallel_hits(line)
    pair, step = np.nonzero(hit)
    return [(int(upper[p]), int(lower[p]), int(first[p, s]), int(s)) for p, s in zip(pair, step)]


def parallel_counts(lines_: np.ndarray) -> np.ndarray:
    """Parallel fifths and octaves in each of (..., V, steps) lines (see :func:`parallels`)."""
    return _parallel_hits(lines_)[0].sum((-2, -1))


def parallels(line: np.ndarray) -> int:
    """Parallel fifths and octaves (unisons too) between any two voices moving in the same direction."""
    return int(_parallel_hits(line)[0].sum())


def voice_parallels(rows: list[list[int]], voice: int) -> int:
    """The parallel fifths and octaves ``voice`` takes part in, in a few steps of lines given as Python
    lists (one per voice): what :func:`parallels` counts for the pairs with ``voice`` in them, in plain
    Python, which is quicker than NumPy over the window a single new note is judged in."""
    count = 0
    for other in range(len(rows)):
        if other == voice:
            continue
        upper, lower = rows[min(voice, other)], rows[max(voice, other)]
        px = py = -1  # the sonority at the latest step where both sounded
        for x, y in zip(upper, lower):
            if x < 0 or y < 0:
                continue
            if px >= 0 and (x != px or y != py):
                interval = (x - y) % 12
                if (interval == 0 or interval == 7) and interval == (px - py) % 12 and (x - px) * (y - py) > 0:
                    count += 1
            px, py = x, y
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


_TRIAD_PCS = np.zeros((2, 12, 12), np.int64)  # (minor/major, root, pitch class): 1 where the triad has it
for _kind, _third in enumerate((3, 4)):
    for _root in range(12):
        _TRIAD_PCS[_kind, _root, [_root, (_root + _third) % 12, (_root + 7) % 12]] = 1


def judge_figures(candidates: np.ndarray) -> dict[str, np.ndarray]:
    """The judge's figures for (K, 4, steps) candidate lines at once, each (K,): the minor- and
    major-triad shares of the beats (:func:`chord_shares`), inner-voice onsets per beat
    (:func:`inner_activity`), the consonant share against the melody (:func:`consonance`) and the
    parallel fifths and octaves (:func:`parallels`)."""
    k, _, steps = candidates.shape
    beats = candidates[:, :, ::4]  # (K, 4, beats): the sounding notes on each beat's first step
    present = np.zeros((k, beats.shape[2], 12), np.int64)  # (K, beats, 12)
    cand, voice, beat = np.nonzero(beats >= 0)
    present[cand, beat, beats[cand, voice, beat] % 12] = 1
    three = present.sum(-1) == 3
    triads = np.einsum("kbp,mrp->kbmr", present, _TRIAD_PCS) == 3  # (K, beats, minor/major, root)
    shares = (three[..., None] & triads.any(-1)).sum(1) / max(beats.shape[2], 1)  # (K, 2)
    inner = candidates[:, 1:3]
    struck = (inner >= 0) & np.concatenate([np.ones((k, 2, 1), bool), inner[..., 1:] != inner[..., :-1]], -1)
    activity = struck.sum((1, 2)) / (steps / 4)
    melody, voices = candidates[:, :1], candidates[:, 1:]
    both = (melody >= 0) & (voices >= 0)  # (K, 3, steps)
    interval = (melody - voices) % 12
    ok = np.where(np.arange(3)[None, :, None] == 2, _BASS_OK[interval], _UPPER_OK[interval]) & both
    cons = ok.sum((1, 2)) / np.maximum(both.sum((1, 2)), 1)
    return {"minor": shares[:, 0], "major": shares[:, 1], "activity": activity, "consonance": cons,
            "parallels": parallel_counts(candidates).astype(float)}


def choose(candidates: Sequence[np.ndarray] | np.ndarray, valence: float, arousal: float) -> int:
    """The index of the candidate voicing that best fits (valence, arousal) and is cleanest.

    ``candidates`` are (4, steps) lines of one length (or one (K, 4, steps) array), all judged at
    once. Scores are standardised among the candidates: major-minus-minor triads times valence,
    inner-voice onsets times arousal, plus consonance against the melody, minus parallel fifths and
    octaves. An unconditioned request (0, 0) is judged on cleanliness alone.
    """
    if len(candidates) == 1:
        return 0
    f = judge_figures(np.asarray(candidates))
    score = (valence * _z(f["major"] - f["minor"]) + arousal * _z(f["activity"]) + _z(f["consonance"])
             - _z(f["parallels"]))
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
    p = probs[voice, start:end].mean(0)
    consonant = _consonant_steps(line, voice, start, end, pitch)
    lo_range, hi_range = VOICE_RANGES[VOICE_ORDER[voice]]
    in_range = lo_range <= pitch <= hi_range
    tries = []  # the model's likeliest other pitches that keep the rules, likeliest first
    for index in np.argsort(-p)[:REPAIR_ALTERNATIVES]:
        q = low + int(index)
        if q == pitch or p[index] < REPAIR_MIN_PROB:
            continue
        if (in_range and not lo_range <= q <= hi_range) or not _in_order(line, voice, start, end, q):
            continue
        if _consonant_steps(line, voice, start, end, q) < consonant:
            continue
        tries.append(q)
    if not tries:
        return False
    rows = line[:, lo:hi].tolist()  # the other voices' parallels are the same whatever this note becomes
    here = voice_parallels(rows, voice)
    for q in tries:
        rows[voice][start - lo : end - lo] = [q] * (end - start)
        if voice_parallels(rows, voice) < here:
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
