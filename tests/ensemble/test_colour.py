"""The emotion's levers on written voices: modal colour for valence, held notes for calm."""

import numpy as np

from affetto.analysis.voicing import chord_shares, consonance
from affetto.ensemble.colour import colour, colour_mode, hold_through_rests


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
    assert (colour(detached, 1.0, 1.0) == detached).all()
    assert (colour(detached, 1.0, -1.0) == held).all()
