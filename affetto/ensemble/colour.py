"""The emotion's levers on written voices: a tonal centre and modal colour for valence, motion for arousal.

The ensemble model follows the melody it is given far more than the capsule:
under a major tune its voices are major whatever the knob says. So the
emotion steers the voices twice:

- **a tonal centre, before the draw is decoded** (:func:`centre_weights`): the
  melody's key is estimated and the voices are drawn toward a centre the
  valence asks. Sad or tense under a major tune: its relative minor (every
  note of the tune belongs to it, so the voices can stay consonant: vi, ii
  and iii in place of I, IV and V). Happy or calm under a minor tune: its
  relative major. Otherwise the tune's own key. The model's probabilities
  for alto, tenor and bass are weighted toward the centre's tonic triad
  (the bass toward its root) and away from pitches outside its scale; the
  model still chooses among what fits the tune.

and then colours the written voices after the draw:

- **valence**: asked sad or tense under a melody in a major key, the voices'
  major third and sixth of the key drop a semitone (the minor tonic, the minor
  iv, the flat-VI and flat-III chords of the parallel minor: borrowed chords
  under the same tune); asked happy or calm in a minor key, the voices'
  minor third, sixth and seventh rise (major chords, a raised leading tone).
  A note is coloured only where the melody never sounds its natural degree
  while it lasts, where it stays as consonant against the melody as before,
  and where no other voice holds the natural degree beside it (no false
  relations).
- **arousal**: with neutral or high arousal, alto, tenor and bass fill a
  leap of a third between two notes with the scale's passing tone on the
  last eighth of the first note (:func:`passing_tones`), as the chorales'
  inner voices move, and with high arousal long and re-struck notes move
  to their lower neighbour and back and a leap of a fourth runs through in
  two sixteenths; with low arousal a step down onto a beat is delayed by an
  eighth, or by the whole beat before a half note (a suspension,
  :func:`suspensions`), a leading note rising onto a beat is held an eighth
  (a retardation), a third between half notes passes on its last beat,
  and a voice holds its notes through short rests (a re-struck pitch
  becomes one long note): calmer, longer lines that still pass through
  dissonance, as Bach's do. High arousal keeps the model's moving inner
  voices (the judge already prefers them, see
  :func:`affetto.analysis.voicing.choose`).

Lines are (4, steps) arrays of MIDI pitches per sixteenth step, -1 for a rest,
the melody in row 0 (see :func:`affetto.analysis.voicing.lines`).
"""

from __future__ import annotations

import itertools

import numpy as np

from affetto.analysis.judge import estimate_key, key_correlations
from affetto.analysis.voicing import CONSONANT_BASS, CONSONANT_UPPER, runs, voice_parallels
from affetto.runtime.plan import MODE_VALENCE

KEY_CLARITY = 0.5  # the phrase's key must be at least this clear to be coloured
CALM_AROUSAL = -0.5  # arousal at or below which voices hold through short rests
HOLD_STEPS = 2  # the longest rest (in steps) a calm voice holds through
TO_MINOR = {4: -1, 9: -1}  # degrees above the tonic -> semitones moved: major third and sixth down
TO_MAJOR = {3: 1, 8: 1, 10: 1}  # minor third, sixth and seventh up
CENTRE_BIAS = 2.0  # at |valence| 1: the centre's tonic triad weighs 1 + this, pitches outside its scale 1 - this / 2
PASSING_AROUSAL = -0.25  # arousal at or above which voices fill leaps of a third with passing tones
NEIGHBOUR_AROUSAL = 0.5  # ... and at or above which a re-struck note is approached from below
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)


def centre(melody: np.ndarray, valence: float, steps_per_beat: int = 4) -> tuple[int, bool] | None:
    """(root pitch class, minor) of the tonal centre ``valence`` asks under ``melody`` (a line of MIDI
    pitches per step, -1 at rests): the tune's key, its relative minor or its relative major; None when
    valence is near neutral or the tune has fewer than two sounding steps."""
    if abs(valence) < MODE_VALENCE:
        return None
    pitch = melody[melody >= 0]
    if len(pitch) < 2:
        return None
    tonic, mode, _ = estimate_key(pitch, np.full(len(pitch), 1.0 / steps_per_beat))
    dark = valence < 0
    if mode == "major":
        return ((tonic + 9) % 12, True) if dark else (tonic, False)
    return (tonic, True) if dark else ((tonic + 3) % 12, False)


def centre_weights(root: int, minor: bool, low: int, pitches: int, strength: float) -> np.ndarray:
    """(3, pitches) weights for alto, tenor and bass over the roll's pitches (``low`` upward): the centre's
    tonic triad 1 + strength (its root twice over in the bass), the rest of its scale 1, the others
    1 - strength / 2 (at least 0.05)."""
    pcs = (low + np.arange(pitches)) % 12
    triad = np.isin(pcs, [root, (root + (3 if minor else 4)) % 12, (root + 7) % 12])
    scale = np.isin(pcs, [(root + d) % 12 for d in (MINOR_SCALE if minor else MAJOR_SCALE)])
    w = np.where(triad, 1 + strength, np.where(scale, 1.0, max(0.05, 1 - strength / 2)))
    out = np.tile(w, (3, 1))
    out[2, pcs == root] *= 1 + strength
    return out


def toward_centre(melody: np.ndarray, valence: float, low: int, pitches: int) -> np.ndarray | None:
    """(4, pitches) weights that draw the voices toward the centre ``valence`` asks under ``melody`` (a
    line, :func:`centre`): 1 for the melody's row; None when there is no centre to draw toward. The
    weights choose which pitch a voice sounds, never whether it sounds (see the engine's ``binarise``)."""
    where = centre(melody, valence)
    if where is None:
        return None
    return np.vstack([np.ones((1, pitches)),
                      centre_weights(*where, low, pitches, CENTRE_BIAS * min(1.0, abs(valence)))])


def phrase_key(line: np.ndarray, steps_per_beat: int = 4) -> tuple[int, str, float] | None:
    """(tonic, mode, clarity) of the phrase as the model wrote it (melody and voices), or None when it
    has fewer than two sounding steps. A melody alone is too thin a witness: the voices state its harmony.
    Each sounding step counts for its length, as notes weighted by duration do."""
    pitch = line[line >= 0]
    if len(pitch) < 2:
        return None
    return estimate_key(pitch, np.full(len(pitch), 1.0 / steps_per_beat))


def phrase_keys(lines_: np.ndarray) -> list[tuple[int, str, float] | None]:
    """:func:`phrase_key` of each of (K, V, steps) lines, the histograms counted at once."""
    k = len(lines_)
    sounding = lines_ >= 0
    hist = np.zeros((k, 12))
    np.add.at(hist, (np.nonzero(sounding)[0], lines_[sounding] % 12), 0.25)  # sixteenths, in beats: exact sums
    out: list[tuple[int, str, float] | None] = []
    for row, n in zip(hist, sounding.sum((1, 2))):
        if n < 2:
            out.append(None)
            continue
        major, minor = key_correlations(row)  # per row: the same arithmetic as estimate_key
        out.append((int(major.argmax()), "major", float(major.max())) if major.max() >= minor.max()
                   else (int(minor.argmax()), "minor", float(minor.max())))
    return out


_UPPER = [d in CONSONANT_UPPER for d in range(12)]
_OK = np.array([_UPPER, _UPPER, [d in CONSONANT_BASS for d in range(12)]])  # (voice, interval): consonant


def _notes(voices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Note ids per step (-1 at rests) of (..., V, steps) voices, numbered across all rows, and each
    note's pitch."""
    sounding = voices >= 0
    prev = np.concatenate([np.full((*voices.shape[:-1], 1), -2), voices[..., :-1]], axis=-1)
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


def _triad_thirds(lines_: np.ndarray, minor: bool) -> np.ndarray:
    """(K, steps): per step of each of (K, V, steps) lines, the pitch class of the third of the triad
    sounding on that beat's first step (major triads when ``minor`` is asked, to be lowered; minor
    ones otherwise, to be raised); -1 elsewhere."""
    third = 4 if minor else 3
    beats = lines_[:, :, ::4]  # (K, voices, beats)
    present = np.zeros((len(lines_), beats.shape[2], 12), bool)
    cand, voice, beat = np.nonzero(beats >= 0)
    present[cand, beat, beats[cand, voice, beat] % 12] = True
    match = (present[:, :, None, :] == _TRIADS[third][None, None, :, :]).all(-1)  # (K, beats, roots)
    out = np.full((len(lines_), lines_.shape[2]), -1)
    cand, hit, root = np.nonzero(match)
    out[cand, hit * 4] = (root + third) % 12
    return out


def colour_modes(lines_: np.ndarray, valence: float) -> tuple[np.ndarray, np.ndarray]:
    """(K, 4, steps) lines with their voices moved toward the mode ``valence`` asks, each line on its
    own (:func:`colour_mode`), all at once; and how many notes moved in each."""
    k = len(lines_)
    if abs(valence) < MODE_VALENCE:
        return lines_, np.zeros(k, np.int64)
    minor = valence < 0
    shift_of = np.zeros((k, 12), np.int64)  # per line, semitones moved by degree above the tonic
    tonic = np.zeros(k, np.int64)
    for i, key in enumerate(phrase_keys(lines_)):
        if key is not None and key[2] >= KEY_CLARITY and (key[1] == "major") == minor:
            tonic[i] = key[0]
            for degree, semitones in (TO_MINOR if minor else TO_MAJOR).items():
                shift_of[i, degree] = semitones
    voices, melody = lines_[:, 1:], lines_[:, :1]  # (K, 3, steps), (K, 1, steps)
    ids, n_pitch = _notes(voices)  # note ids numbered across the lines
    if len(n_pitch) == 0:
        return lines_, np.zeros(k, np.int64)
    owner = np.zeros(len(n_pitch), np.int64)  # the line each note belongs to
    owner[ids[ids >= 0]] = np.nonzero(ids >= 0)[0]
    shift = shift_of[owner, (n_pitch - tonic[owner]) % 12]
    # the chord's own third on a beat the note sounds on: a major triad turns minor, or back
    thirds = _triad_thirds(lines_, minor)[:, None, :]  # (K, 1, steps)
    on_beat = (ids >= 0) & (thirds >= 0) & (voices % 12 == thirds)
    chord = np.bincount(ids[on_beat], minlength=len(n_pitch)) > 0
    shift = np.where((shift == 0) & chord, -1 if minor else 1, shift)
    step_shift = np.where(ids >= 0, shift[ids], 0)
    # blocked where the melody holds the natural degree, or where it would clash where it did not
    rows = np.arange(3)[:, None]
    sounds = (melody >= 0) & (ids >= 0)
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
            clash_step[:, v] = (ids[:, v] >= 0) & ((held[:, a] == pcs[:, v]) | (held[:, b] == pcs[:, v]))
        clash = np.bincount(ids[clash_step & moving[np.maximum(ids, 0)] & (ids >= 0)], minlength=len(n_pitch)) > 0
        if not clash.any():
            break
        moving &= ~clash
    out = lines_.copy()
    out[:, 1:] = np.where((ids >= 0) & moving[np.maximum(ids, 0)], voices + step_shift, voices)
    return out, np.bincount(owner[moving], minlength=k)


def colour_mode(line: np.ndarray, valence: float) -> tuple[np.ndarray, int]:
    """``line`` with its voices moved toward the mode ``valence`` asks; and how many notes moved."""
    out, moved = colour_modes(line[None], valence)
    return out[0], int(moved[0])


def hold_through_rests(line: np.ndarray, max_rest: int = HOLD_STEPS) -> np.ndarray:
    """Alto, tenor and bass hold each note through a following rest of up to ``max_rest`` steps
    (``line`` is (4, steps), or (..., 4, steps) lines at once)."""
    voices = line[..., 1:, :]
    steps = np.arange(line.shape[-1])
    rest = voices < 0
    prev_rest = np.concatenate([np.ones((*rest.shape[:-1], 1), bool), rest[..., :-1]], axis=-1)
    begins = np.maximum.accumulate(np.where(rest & ~prev_rest, steps, -1), axis=-1)  # where this rest began
    # the next sounding step, or the end: from the right, the nearest step that sounds
    ends = np.flip(np.minimum.accumulate(np.flip(np.where(rest, line.shape[-1], steps), -1), axis=-1), -1)
    held = np.take_along_axis(voices, np.maximum(begins - 1, 0), -1)  # the note before the rest
    fill = rest & (begins >= 1) & (ends - begins <= max_rest)  # a rest after a note, short enough
    out = line.copy()
    out[..., 1:, :] = np.where(fill, held, voices)
    return out


def passing_tones(line: np.ndarray, steps_per_beat: int = 4, *, neighbours: bool = False, fourths: bool = False,
                  slow: bool = False) -> tuple[np.ndarray, int]:
    """Alto, tenor and bass fill each leap of a third between two notes (the first a beat or longer,
    the second straight after it) with the scale's passing tone on the first note's last eighth. With
    ``neighbours``, a note struck again at the same pitch is approached from the scale step below it
    (a lower neighbour on the first note's last eighth), and a note of two beats or more moves to its
    lower neighbour on its first off-beat and back. With ``fourths``, a leap of a fourth is run through
    in two sixteenths on the first note's last eighth. ``slow`` (for calm voices): only a first note of
    two beats or more passes, on its last beat (a quarter between half notes, as slow chorales move).

    The scale is the phrase's key as written. A new note is kept only where it crosses no
    neighbouring voice and adds no parallel fifth or octave around it. Returns the line and how many
    figures were added.
    """
    key = phrase_key(line, steps_per_beat)
    if key is None:
        return line, 0
    scale = {(key[0] + d) % 12 for d in (MINOR_SCALE if key[1] == "minor" else MAJOR_SCALE)}
    half = steps_per_beat // 2
    shortest, last = (2 * steps_per_beat, steps_per_beat) if slow else (steps_per_beat, half)
    out = line.copy()
    added = 0
    def lower(p: int) -> int:  # the scale step below (a semitone or a tone)
        return p - 1 if (p - 1) % 12 in scale else p - 2

    for voice in (1, 2, 3):
        notes = runs(out[voice])
        figures: list[tuple[int, slice, int | np.ndarray]] = []  # (first note's start, the new notes' steps, pitch(es))
        for (s0, n0, p0), (s1, _n1, p1) in itertools.pairwise(notes):
            if n0 < shortest:
                continue
            between = [p for p in range(min(p0, p1) + 1, max(p0, p1)) if p % 12 in scale]
            if s1 == s0 + n0 and abs(p1 - p0) in (3, 4):
                if len(between) == 1:
                    figures.append((s0, slice(s1 - last, s1), between[0]))
            elif fourths and s1 == s0 + n0 and abs(p1 - p0) == 5 and len(between) == 2:
                run = np.repeat(between if p1 > p0 else between[::-1], half // 2)  # rising or falling
                figures.append((s0, slice(s1 - half, s1), run))
            elif neighbours and s1 == s0 + n0 + 1 and p1 == p0:  # struck again after a step's rest
                figures.append((s0, slice(s1 - half, s1), lower(p0)))
        if neighbours:  # a note of two beats or more turns to its lower neighbour on its first off-beat
            figures += [(s0, slice(s0 + half, s0 + steps_per_beat), lower(p0))
                        for s0, n0, p0 in notes if n0 >= 2 * steps_per_beat]
        for s0, span, m in sorted(figures, key=lambda f: f[0]):
            placed = _placed(out, voice, span, m, s0, steps_per_beat)
            if placed is not None:
                out, added = placed, added + 1
    return out, added


def _placed(line: np.ndarray, voice: int, span: slice, pitch: int | np.ndarray, start: int,
            steps_per_beat: int) -> np.ndarray | None:
    """``line`` with ``voice`` sounding ``pitch`` (or a pitch per step) over ``span``, or None where that
    would cross a neighbouring voice or add a parallel fifth or octave between ``start`` and two beats
    after ``span``."""
    near = slice(max(0, start - steps_per_beat), min(line.shape[1], span.stop + 2 * steps_per_beat))
    rows = line[:, near].tolist()  # a few steps: plain Python is quicker here than NumPy
    at = slice(span.start - near.start, span.stop - near.start)
    new = pitch.tolist() if isinstance(pitch, np.ndarray) else [int(pitch)] * (span.stop - span.start)
    if any(0 <= a <= p for a, p in zip(rows[voice - 1][at], new)):
        return None  # it would meet or cross the voice above ...
    if voice < 3 and any(b >= p for b, p in zip(rows[voice + 1][at], new) if b >= 0):
        return None  # ... or the one below
    before = voice_parallels(rows, voice)  # the other voices' parallels are the same with the new note and without
    rows[voice][at] = new
    if voice_parallels(rows, voice) > before:
        return None
    trial = line.copy()
    trial[voice, span] = pitch
    return trial


def suspensions(line: np.ndarray, steps_per_beat: int = 4) -> tuple[np.ndarray, int]:
    """Sighs for low arousal: a dissonance on the beat that resolves by step.

    Alto, tenor and bass delay each step down onto a beat (the note before, a beat or longer, is held
    over the beat: a suspension) by an eighth, or by the whole beat where the note it resolves to
    lasts two beats or more (the slow suspension of a chorale's half notes); a semitone up onto a beat
    is delayed an eighth too (a retardation: a leading note held into its tonic). Alto and tenor lean
    into a note of a beat or more that they reach by leap from the step above it (an appoggiatura).
    Kept only where the new note crosses no neighbouring voice and adds no parallel fifth or octave
    around it. Returns the line and how many were made.
    """
    key = phrase_key(line, steps_per_beat)
    scale = set() if key is None else {(key[0] + d) % 12 for d in (MINOR_SCALE if key[1] == "minor" else MAJOR_SCALE)}
    half = steps_per_beat // 2
    out = line.copy()
    made = 0
    for voice in (1, 2, 3):
        notes = runs(out[voice])
        figures = []  # (the new note's steps, its pitch, the window its parallels are counted over)
        for (s0, n0, p0), (s1, n1, p1) in itertools.pairwise(notes):
            if s1 % steps_per_beat or n1 < steps_per_beat:
                continue
            prepared = s1 == s0 + n0 and n0 >= steps_per_beat  # held from a note of a beat or more
            if prepared and p0 - p1 in (1, 2):
                held = steps_per_beat if n1 >= 2 * steps_per_beat else half
                figures.append((slice(s1, s1 + held), p0, s0))
            elif prepared and p1 - p0 == 1:
                figures.append((slice(s1, s1 + half), p0, s0))
            elif voice in (1, 2) and abs(p1 - p0) > 2 and scale:
                above = p1 + 1 if (p1 + 1) % 12 in scale else p1 + 2
                figures.append((slice(s1, s1 + half), above, s0))
        for span, m, start in figures:
            placed = _placed(out, voice, span, m, start, steps_per_beat)
            if placed is not None:
                out, made = placed, made + 1
    return out, made


def colour_judged(lines_: np.ndarray, valence: float, arousal: float) -> np.ndarray:
    """(K, 4, steps) candidate lines as the judge hears them: the mode and the held rests of
    :func:`colour`, each line on its own, all at once (the motion, between the beats, left out)."""
    out, _ = colour_modes(lines_, valence)
    return hold_through_rests(out) if arousal <= CALM_AROUSAL else out


def colour_motion(line: np.ndarray, arousal: float) -> np.ndarray:
    """The motion :func:`colour` adds to a line already coloured by :func:`colour_judged`: passing
    (and, when busy, neighbour tones and runs through fourths), or sighs and slow passing tones."""
    if arousal >= PASSING_AROUSAL:
        busy = arousal >= NEIGHBOUR_AROUSAL
        return passing_tones(line, neighbours=busy, fourths=busy)[0]
    return passing_tones(suspensions(line)[0], slow=True)[0]


def colour(line: np.ndarray, valence: float, arousal: float, *, motion: bool = True) -> np.ndarray:
    """The written voices under the emotion's levers (the melody row is never touched).

    ``motion=False`` leaves out the passing tones: they fall between beats, so
    candidates can be judged without them (the judge reads the beats' chords)
    and only the kept one pays for them.
    """
    out = colour_judged(line[None], valence, arousal)[0]
    return colour_motion(out, arousal) if motion else out
