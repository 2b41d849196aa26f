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
from affetto.analysis.voicing import CONSONANT_BASS, CONSONANT_UPPER
from affetto.runtime.plan import MODE_VALENCE

KEY_CLARITY = 0.5  # the phrase's key must be at least this clear to be coloured
CALM_AROUSAL = -0.5  # arousal at or below which voices hold through short rests
HOLD_STEPS = 2  # the longest rest (in steps) a calm voice holds through
TO_MINOR = {4: -1, 9: -1}  # degrees above the tonic -> semitones moved: major third and sixth down
TO_MAJOR = {3: 1, 8: 1, 10: 1}  # minor third, sixth and seventh up


def phrase_key(line: np.ndarray, steps_per_beat: int = 4) -> tuple[int, str, float] | None:
    """(tonic, mode, clarity) of the phrase as the model wrote it (melody and voices), or None when it
    has fewer than two sounding steps. A melody alone is too thin a witness: the voices state its harmony.
    Each sounding step counts for its length, as notes weighted by duration do."""
    pitch = line[line >= 0]
    if len(pitch) < 2:
        return None
    return estimate_key(pitch, np.full(len(pitch), 1.0 / steps_per_beat))


_UPPER = [d in CONSONANT_UPPER for d in range(12)]
_OK = np.array([_UPPER, _UPPER, [d in CONSONANT_BASS for d in range(12)]])  # (voice, interval): consonant


def _notes(voices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Note ids per step (-1 at rests) of (V, steps) voices, and each note's pitch."""
    sounding = voices >= 0
    prev = np.concatenate([np.full((len(voices), 1), -2), voices[:, :-1]], axis=1)
    start = sounding & (voices != prev)
    ids = np.cumsum(start.ravel()).reshape(voices.shape) - 1
    ids = np.where(sounding, ids, -1)
    return ids, voices[start]


def _triad_table(third: int) -> np.ndarray:
    """(root, pitch class): the pitch classes of the triad on each root with this third."""
    table = np.zeros((12, 12), bool)
    for root in range(12):
        table[root, [root, (root + third) % 12, (root + 7) % 12]] = True
    return table


_TRIADS = {third: _triad_table(third) for third in (3, 4)}


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


def colour(line: np.ndarray, valence: float, arousal: float) -> np.ndarray:
    """The written voices under the emotion's levers (the melody row is never touched)."""
    out, _ = colour_mode(line, valence)
    if arousal <= CALM_AROUSAL:
        out = hold_through_rests(out)
    return out
