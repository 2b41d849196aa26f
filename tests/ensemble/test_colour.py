"""The emotion's levers on written voices: a tonal centre and modal colour for valence; motion, held notes and
sighs for arousal."""

import numpy as np

from affetto.analysis.voicing import chord_shares, consonance, parallels
from affetto.ensemble.colour import (
    CENTRE_BIAS,
    centre,
    centre_weights,
    colour,
    colour_mode,
    hold_through_rests,
    passing_tones,
    suspensions,
    toward_centre,
)
from affetto.ensemble.engine import binarise


def phrase(*rows):
    """A (4, steps) line from rows of (pitch, steps) pairs, -1 for a rest."""
    out = [np.concatenate([np.full(n, p) for p, n in row]) for row in rows]
    return np.stack(out)


# C major: I (bar 1) - IV (bar 2) - I (bar 3), the melody on the fifth or the root, never on a third
MELODY = [(67, 16), (72, 16), (67, 16)]
C_MAJOR = phrase(MELODY, [(64, 16), (65, 16), (64, 16)], [(60, 16), (69, 16), (60, 16)], [(48, 16), (53, 16), (48, 16)])


def test_sad_turns_the_major_triads_minor_where_the_melody_lets_it():
    sad, moved = colour_mode(C_MAJOR, -1.0)
    assert moved == 3  # E -> Eb twice (C minor), A -> Ab once (F minor: iv)
    assert sad[1, 0] == 63 and sad[2, 16] == 68 and sad[2, 0] == 60
    minor, major, _ = chord_shares(sad)
    assert minor == 1.0 and major == 0.0
    assert (sad[0] == C_MAJOR[0]).all()  # the melody is never touched
    assert consonance(sad)[0] >= consonance(C_MAJOR)[0]


def test_a_melody_on_the_third_keeps_it():
    on_third = C_MAJOR.copy()
    on_third[0, :16] = 76  # the melody sings E over the first chord
    sad, _ = colour_mode(on_third, -1.0)
    assert sad[1, 0] == 64  # no E flat under the melody's E


def test_no_false_relation_between_voices():
    # alto holds E through the bar, under a melody that sings E in its second half: the alto keeps E;
    # the tenor's E in the first half has no melody E above it, but E flat there would sound against the
    # alto's E, so it keeps E too
    line = phrase([(67, 8), (76, 8)], [(64, 16)], [(52, 8), (55, 8)], [(48, 16)])
    sad, moved = colour_mode(line, -1.0)
    assert moved == 0 and (sad == line).all()
    line[1, 8:] = 60  # the alto leaves E when the melody takes it: now both E's of the first half may move
    sad, moved = colour_mode(line, -1.0)
    assert moved == 2 and sad[1, 0] == 63 and sad[2, 0] == 51


def test_happy_and_neutral_leave_a_major_phrase_and_minor_turns_major_for_happy():
    assert (colour_mode(C_MAJOR, 1.0)[0] == C_MAJOR).all()
    assert (colour_mode(C_MAJOR, 0.1)[0] == C_MAJOR).all()
    sad, _ = colour_mode(C_MAJOR, -1.0)
    happy, moved = colour_mode(sad, 1.0)
    assert moved > 0 and chord_shares(happy)[1] > chord_shares(sad)[1]


def test_calm_voices_hold_through_short_rests_and_busy_ones_do_not():
    detached = phrase([(72, 8)], [(64, 3), (-1, 1), (64, 3), (-1, 1)], [(60, 2), (-1, 2), (62, 4)], [(48, 8)])
    held = hold_through_rests(detached)
    assert (held[1] == 64).all() and (held[2, :4] == 60).all()
    assert (colour(detached, 1.0, 1.0, motion=False) == detached).all()
    assert (colour(detached, 1.0, -1.0, motion=False) == held).all()


C_TUNE = np.array([60, 60, 62, 62, 64, 64, 65, 65, 67, 67, 67, 67, 64, 64, 60, 60] * 2)  # C major, on the grid
A_TUNE = np.array([69, 69, 71, 71, 72, 72, 76, 76, 74, 74, 72, 72, 71, 71, 69, 69] * 2)  # A (natural) minor


def test_the_centre_is_the_tune_key_or_its_relative_as_valence_asks():
    assert centre(C_TUNE, 1.0) == (0, False)  # happy under C major: C major
    assert centre(C_TUNE, -1.0) == (9, True)  # sad: A minor, whose scale holds every note of the tune
    assert centre(A_TUNE, -1.0) == (9, True)
    assert centre(A_TUNE, 1.0) == (0, False)  # happy under A minor: C major
    assert centre(C_TUNE, 0.1) is None  # near neutral: the model's own choice
    assert centre(np.array([60, -1, -1]), -1.0) is None  # one note is no key


def test_centre_weights_favour_the_tonic_triad_and_the_bass_its_root():
    low = 36
    w = centre_weights(9, True, low, 24, 2.0)  # A minor over C2..B3
    at = {pc: w[:, (pc - low) % 12] for pc in range(12)}
    assert (at[9] == [3, 3, 9]).all()  # A: triad in the upper voices, the root twice over in the bass
    assert (at[0] == 3).all() and (at[4] == 3).all()  # C and E: the rest of the triad
    assert (at[2] == 1).all()  # D: in the scale, left alone
    assert (at[1] == 0.05).all() and (at[8] < 1).all()  # C sharp, G sharp: outside A natural minor
    assert (w[:, :12] == w[:, 12:]).all()  # every octave alike


def test_the_centre_moves_which_pitch_sounds_never_whether_a_voice_sounds():
    rng = np.random.default_rng(0)
    probs = rng.random((2, 4, 1, 16, 24)) * (rng.random((2, 4, 1, 16, 1)) > 0.3) / 12
    prefer = toward_centre(C_TUNE, -1.0, 36, 24)
    plain, drawn = binarise(probs, 0.5), binarise(probs, 0.5, prefer[None, :, None, None, :])
    assert (plain.any(-1) == drawn.any(-1)).all()
    pcs = lambda roll: (36 + np.nonzero(roll[:, 1:])[-1]) % 12  # noqa: E731
    triad = lambda p: np.isin(p, [9, 0, 4]).mean()  # noqa: E731
    assert triad(pcs(drawn)) > triad(pcs(plain))
    assert (drawn[:, 0] == plain[:, 0]).all()  # the melody's row is never weighted
    assert toward_centre(C_TUNE, 0.0, 36, 24) is None and CENTRE_BIAS > 0


def test_passing_tones_fill_thirds_without_crossing_or_parallels():
    # alto C (a beat) then E: D on the last eighth of the C; the tenor's G to B (a third) would cross
    # nothing either, the bass leaps a fourth and is left alone
    line = phrase([(72, 8)], [(60, 4), (64, 4)], [(55, 4), (59, 4)], [(48, 4), (43, 4)])
    out, added = passing_tones(line)
    assert out[1, 2:4].tolist() == [62, 62] and out[1, :2].tolist() == [60, 60] and out[1, 4] == 64
    assert out[2, 2:4].tolist() == [57, 57]
    assert added == 2 and (out[3] == line[3]).all() and (out[0] == line[0]).all()
    assert parallels(out) <= parallels(line)
    # a tenor passing tone that would meet the alto's note is refused: G -> B passes A, the alto's A
    close = phrase([(72, 8)], [(69, 4), (71, 4)], [(55, 4), (59, 4)], [(48, 8)])
    close[1, :4] = 57
    out, _ = passing_tones(close)
    assert (out[2] == close[2]).all()


def test_a_passing_tone_that_makes_parallel_fifths_is_refused():
    # bass C->E under a tenor G->B: passing D (bass) against A (tenor) would be a fifth after the fifth C-G
    line = phrase([(76, 8)], [(67, 8)], [(55, 4), (59, 4)], [(48, 4), (52, 4)])
    out, _ = passing_tones(line)
    assert parallels(out) <= parallels(line)
    assert not (out[2, 2] == 57 and out[3, 2] == 50)


def test_high_arousal_moves_long_notes_to_their_neighbour_and_back():
    line = phrase([(72, 16)], [(64, 16)], [(55, 16)], [(48, 16)])
    out, added = passing_tones(line, neighbours=True)
    assert added >= 1 and out[1, 2:4].tolist() == [62, 62] and out[1, 4] == 64
    assert (passing_tones(line)[0] == line).all()  # without neighbours nothing to fill


def test_low_arousal_sighs_a_step_down_onto_the_beat_is_suspended():
    line = phrase([(72, 8)], [(65, 4), (64, 4)], [(57, 4), (55, 4)], [(41, 4), (48, 4)])
    out, made = suspensions(line)
    assert out[1, 4:6].tolist() == [65, 65] and out[1, 6] == 64  # F held over the beat, then E
    assert made >= 1 and (out[0] == line[0]).all()
    sad = colour(line, -1.0, -1.0)
    assert (sad[1, 4:6] == 65).all()  # colour applies it at low arousal ...
    assert (colour(line, 1.0, 1.0)[1, 4:6] != 65).all()  # ... and not at high


def test_a_suspension_onto_a_half_note_is_held_the_whole_beat():
    # alto F (a beat) falls to E of two beats: F held over the beat for a quarter, then E
    line = phrase([(72, 12)], [(65, 4), (64, 8)], [(57, 4), (55, 8)], [(41, 4), (48, 8)])
    out, made = suspensions(line)
    assert out[1, 4:8].tolist() == [65] * 4 and out[1, 8:].tolist() == [64] * 4
    assert made >= 1 and parallels(out) <= parallels(line)


def test_a_leading_note_rising_onto_the_beat_is_retarded():
    # alto B (a beat) rises a semitone to C: B held an eighth over the beat, then C
    line = phrase([(76, 8)], [(71, 4), (72, 4)], [(55, 8)], [(43, 4), (48, 4)])
    out, _ = suspensions(line)
    assert out[1, 4:6].tolist() == [71, 71] and out[1, 6:].tolist() == [72, 72]
    # a whole tone up is a plain step, left alone (neither suspended nor leaned into)
    step = phrase([(76, 8)], [(69, 4), (71, 4)], [(55, 8)], [(41, 4), (43, 4)])
    assert (suspensions(step)[0][1] == step[1]).all()


def test_busy_voices_run_through_a_fourth_in_sixteenths():
    # alto C (a beat) up to F: D and E as two sixteenths on the C's last eighth; only with ``fourths``
    line = phrase([(77, 8)], [(60, 4), (65, 4)], [(53, 8)], [(41, 8)])
    out, added = passing_tones(line, fourths=True)
    assert out[1].tolist() == [60, 60, 62, 64, 65, 65, 65, 65] and added == 1
    assert (passing_tones(line)[0] == line).all()
    falling = phrase([(77, 8)], [(65, 4), (60, 4)], [(53, 8)], [(41, 8)])
    assert passing_tones(falling, fourths=True)[0][1, 2:4].tolist() == [64, 62]


def test_calm_voices_pass_slowly_between_half_notes():
    # bass C (two beats) to E: D on the C's last beat, a quarter; a C of one beat is left alone
    line = phrase([(76, 16)], [(67, 16)], [(55, 16)], [(48, 8), (52, 8)])
    out, added = passing_tones(line, slow=True)
    assert out[3].tolist() == [48] * 4 + [50] * 4 + [52] * 8 and added == 1
    short = phrase([(76, 8)], [(67, 8)], [(55, 8)], [(48, 4), (52, 4)])
    assert (passing_tones(short, slow=True)[0] == short).all()
    assert (colour(line, 0.0, -1.0)[3, 4:8] == 50).all()  # colour applies it at low arousal ...
    assert (colour(line, 0.0, 1.0)[3, 4:6] == 48).all()  # ... while busy voices pass in eighths
