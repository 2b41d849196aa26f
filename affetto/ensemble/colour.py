"""The emotion's levers on written voices: modal colour for valence, legato for calm.

The ensemble model follows the melody it is given far more than the capsule:
under a major tune its voices are major whatever the knob says. So, as the
lead model's context is moved to its parallel mode, the written voices are
coloured after the draw:

- **valence**: asked sad or tense under a melody in a major key, the voices'
  major third and sixth of the key drop a semitone (the minor tonic, the minor
  iv, the flat-VI and flat-III chords of the parallel minor: borrowed chords
  under the same tune); asked happy or calm in a minor key, the voices'
  minor third, sixth and seventh rise (major chords, a raised leading tone).
  A note is coloured only where the melody never sounds its natural degree
  while it lasts, where it stays as consonant against the melody as before,
  and where no other voice holds the natural degree beside it (no false
  relations).
- **arousal**: with low arousal a voice holds its notes through short rests
  (a re-struck pitch becomes one long note): calmer, longer lines. High
  arousal keeps the model's moving inner voices (the judge already prefers
  them, see :func:`affetto.analysis.voicing.choose`).

Lines are (4, steps) arrays of MIDI pitches per sixteenth step, -1 for a rest,
the melody in row 0 (see :func:`affetto.analysis.voicing.lines`).
"""

from __future__ import annotations

import numpy as np

from affetto.analysis.judge import estimate_key
from affetto.analysis.voicing import CONSONANT_BASS, CONSONANT_UPPER, runs

MODE_VALENCE = 0.25  # as the lead's emotion plan: closer to neutral leaves the mode alone
KEY_CLARITY = 0.5  # the phrase's key must be at least this clear to be coloured
CALM_AROUSAL = -0.5  # arousal at or below which voices hold through short rests
HOLD_STEPS = 2  # the longest rest (in steps) a calm voice holds through
TO_MINOR = {4: -1, 9: -1}  # degrees above the tonic -> semitones moved: major third and sixth down
TO_MAJOR = {3: 1, 8: 1, 10: 1}  # minor third, sixth and seventh up


def phrase_key(line: np.ndarray, steps_per_beat: int = 4) -> tuple[int, str, float] | None:
    """(tonic, mode, clarity) of the phrase as the model wrote it (melody and voices), or None when it
    has fewer than two notes. A melody alone is too thin a witness: the voices state its harmony."""
    notes = [note for row in line for note in runs(row)]
    if len(notes) < 2:
        return None
    pitch = np.array([p for _, _, p in notes])
    beats = np.array([n for _, n, _ in notes], dtype=float) / steps_per_beat
    return estimate_key(pitch, beats)


def _consonant(voice: int, melody: np.ndarray, pitch: int) -> np.ndarray:
    ok = CONSONANT_BASS if voice == 3 else CONSONANT_UPPER
    return np.array([m < 0 or (m - pitch) % 12 in ok for m in melody])


def _triad_thirds(line: np.ndarray, minor: bool) -> dict[int, int]:
    """Step -> pitch class of the third of the triad sounding on that beat (major triads when
    ``minor`` is asked, to be lowered; minor ones otherwise, to be raised)."""
    out = {}
    third = 4 if minor else 3
    for s in range(0, line.shape[1], 4):
        pcs = {int(p) % 12 for p in line[:, s] if p >= 0}
        if len(pcs) == 3:
            for root in pcs:
                if pcs == {root, (root + third) % 12, (root + 7) % 12}:
                    out[s] = (root + third) % 12
    return out


def colour_mode(line: np.ndarray, valence: float) -> tuple[np.ndarray, int]:
    """``line`` with its voices moved toward the mode ``valence`` asks; and how many notes moved."""
    if abs(valence) < MODE_VALENCE:
        return line, 0
    minor = valence < 0
    key = phrase_key(line)
    moves: dict[int, int] = {}
    tonic = 0
    if key is not None and key[2] >= KEY_CLARITY and (key[1] == "major") == minor:
        tonic, moves = key[0], (TO_MINOR if minor else TO_MAJOR)
    thirds = _triad_thirds(line, minor)
    melody = line[0]
    wanted = []  # (voice, start, length, pitch, new pitch)
    for voice in (1, 2, 3):
        for start, length, pitch in runs(line[voice]):
            shift = moves.get((pitch - tonic) % 12)
            beat = next((b for b in range(start - start % 4, start + length, 4) if b >= start), None)
            if shift is None and beat is not None and thirds.get(beat) == pitch % 12:
                shift = -1 if minor else 1  # the chord's own third: a major triad turns minor, or back
            if shift is None:
                continue
            span = melody[start : start + length]
            if np.any((span >= 0) & (span % 12 == pitch % 12)):
                continue  # the melody holds the natural degree here
            before = _consonant(voice, span, pitch)
            if np.any(before & ~_consonant(voice, span, pitch + shift)):
                continue  # it would clash with the melody where it did not
            wanted.append((voice, start, length, pitch, pitch + shift))
    # no false relations: a note moves only if no other voice keeps its natural degree beside it
    head = np.full(line.shape, -1)  # the step each sounding step's note starts on
    for voice in (1, 2, 3):
        for start, length, _pitch in runs(line[voice]):
            head[voice, start : start + length] = start
    while True:
        moving = {(v, s) for v, s, *_ in wanted}
        keep = [(v, s, n, p, q) for v, s, n, p, q in wanted
                if not any(line[w, t] >= 0 and line[w, t] % 12 == p % 12 and (w, head[w, t]) not in moving
                           for w in (1, 2, 3) if w != v for t in range(s, s + n))]
        if len(keep) == len(wanted):
            break
        wanted = keep
    out = line.copy()
    for v, s, n, _p, q in wanted:
        out[v, s : s + n] = q
    return out, len(wanted)


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


def colour(line: np.ndarray, valence: float, arousal: float) -> np.ndarray:
    """The written voices under the emotion's levers (the melody row is never touched)."""
    out, _ = colour_mode(line, valence)
    if arousal <= CALM_AROUSAL:
        out = hold_through_rests(out)
    return out
