"""Metrics against hand-computed cases, edge cases and bad input."""

from __future__ import annotations

import math
import random

import pytest

from affetto.analysis.metrics import (
    METRICS,
    empty_beat_rate,
    gap_percent,
    groove_consistency,
    metric_table,
    notes_per_bar,
    phrase_bars,
    phrase_metrics,
    pitch_class_entropy,
    pitch_range,
    polyphony,
    scale_consistency,
)
from affetto.music.notes import Grid, Note, TimeSignature

FOUR = TimeSignature(4, 4)
C_MAJOR = (60, 62, 64, 65, 67, 69, 71)


def notes_at(pitches, onsets=None, duration=1.0):
    pitches = list(pitches)
    onsets = list(onsets) if onsets is not None else range(len(pitches))
    return [Note(p, float(o), duration) for p, o in zip(pitches, onsets, strict=True)]


def chord(pitches, onset=0.0, duration=1.0):
    return [Note(p, onset, duration) for p in pitches]


# ---- pitch-class entropy -----------------------------------------------------------
def test_entropy_hand_computed():
    # C E G C': classes C, E, G, C -> p = 1/2, 1/4, 1/4
    # H = 1/2*log2(2) + 2 * 1/4*log2(4) = 0.5 + 1.0 = 1.5 bits
    assert pitch_class_entropy(notes_at([60, 64, 67, 72])) == pytest.approx(1.5)


def test_entropy_extremes():
    # one class (octaves fold): p = 1 -> 0 bits; twelve equal classes -> log2(12)
    assert pitch_class_entropy(notes_at([48, 60, 72])) == 0.0
    assert pitch_class_entropy(notes_at(range(60, 72))) == pytest.approx(math.log2(12))
    assert pitch_class_entropy(notes_at([61])) == 0.0


def test_entropy_counts_notes_not_durations():
    # C for 8 beats and E for a sixteenth still weigh one note each: p = 1/2, 1/2 -> 1 bit
    notes = [Note(60, 0.0, 8.0), Note(64, 0.0, 0.25)]
    assert pitch_class_entropy(notes) == pytest.approx(1.0)


def test_entropy_no_notes_is_nan():
    assert math.isnan(pitch_class_entropy([]))


# ---- scale consistency --------------------------------------------------------------
def test_scale_consistency_hand_computed():
    # The C major scale fits C major (and A minor) fully.
    assert scale_consistency(notes_at(C_MAJOR)) == 1.0
    # C major + F# + C#: 9 notes. C major holds 7 (not F#, C#); G major holds
    # C D E G A B F# = 7; D major holds D E G A B F# C# = 7; none holds 8 -> 7/9.
    assert scale_consistency(notes_at([*C_MAJOR, 66, 61])) == pytest.approx(7 / 9)
    # Twelve classes once each: every scale holds 7 -> 7/12.
    assert scale_consistency(notes_at(range(60, 72))) == pytest.approx(7 / 12)


def test_scale_consistency_counts_notes():
    # C major scale + three C#s (10 notes). C major: 7/10. D major (D E F# G A B C#)
    # holds D E G A B + 3 C# = 8/10. A major (A B C# D E F# G#): A B D E + 3 = 7.
    # By pitch-class set C major would win; by note count D major does -> 0.8.
    notes = notes_at([*C_MAJOR, 61, 61, 61])
    assert scale_consistency(notes) == pytest.approx(0.8)


def test_scale_consistency_matches_muspy_loop():
    # muspy's definition written as loops over the 12 major and 12 natural minor scales.
    major, minor = [0, 2, 4, 5, 7, 9, 11], [0, 2, 3, 5, 7, 8, 10]
    rng = random.Random(7)
    for _ in range(20):
        pitches = [rng.randrange(40, 90) for _ in range(rng.randrange(1, 15))]
        best = max(
            sum((p - root) % 12 in steps for p in pitches) / len(pitches)
            for steps in (major, minor)
            for root in range(12)
        )
        assert scale_consistency(notes_at(pitches)) == pytest.approx(best)


def test_scale_consistency_edges():
    assert scale_consistency(notes_at([61])) == 1.0
    assert math.isnan(scale_consistency([]))


# ---- pitch range ------------------------------------------------------------------
def test_pitch_range():
    # 72 - 55 = 17 semitones
    assert pitch_range(notes_at([60, 72, 55])) == 17.0
    assert pitch_range(chord([60])) == 0.0
    assert math.isnan(pitch_range([]))


# ---- groove consistency ----------------------------------------------------------------
def test_groove_hand_computed():
    # resolution 4 = one slot per beat in 4/4.
    # bar 0 onsets at beats 0, 1    -> [1 1 0 0]
    # bar 1 onsets at beats 4, 6    -> [1 0 1 0]   distance 2
    # 1 - 2 / (4 * 1) = 0.5
    notes = notes_at([60, 62, 64, 65], [0, 1, 4, 6])
    assert groove_consistency(notes, FOUR, resolution=4) == pytest.approx(0.5)
    # bar 2 repeats bar 1 (beats 8, 10) -> distances 2, 0 -> 1 - 2 / (4 * 2) = 0.75
    notes += notes_at([60, 62], [8, 10])
    assert groove_consistency(notes, FOUR, resolution=4) == pytest.approx(0.75)


def test_groove_default_resolution_is_grid_steps_per_bar():
    # 16 slots per 4/4 bar: onset 0 -> slot 0 in bar 0; onset 4.25 -> slot 1 in bar 1.
    # Vectors differ in 2 slots -> 1 - 2/16 = 0.875.
    notes = notes_at([60, 60], [0, 4.25])
    assert groove_consistency(notes, FOUR) == pytest.approx(0.875)
    # On a 12-step grid the bar has 48 slots -> 1 - 2/48.
    assert groove_consistency(notes, FOUR, grid=Grid(12)) == pytest.approx(1 - 2 / 48)


def test_groove_identical_bars_chords_and_empty_last_bar():
    # A chord marks one slot; the same rhythm every bar -> 1.0.
    notes = chord([60, 64, 67], 0.0) + chord([60, 64, 67], 4.0) + chord([62, 65], 8.0)
    assert groove_consistency(notes, FOUR, resolution=4) == 1.0
    # bars=3 with a silent third bar: [1000] [1000] [0000] -> distances 0, 1 -> 1 - 1/8
    notes = notes_at([60, 60], [0, 4])
    assert groove_consistency(notes, FOUR, resolution=4, bars=3) == pytest.approx(0.875)


def test_groove_slot_is_the_one_the_onset_falls_in():
    # resolution 4: onset 0.9 falls in slot 0 (floor, not nearest), like bar 1's onset 4.0.
    notes = notes_at([60, 60], [0.9, 4.0])
    assert groove_consistency(notes, FOUR, resolution=4) == 1.0
    # A triplet onset 1/3 on a 12-step grid sits exactly on slot 1 despite float error.
    notes = notes_at([60, 60], [1 / 3, 4 + 1 / 3])
    assert groove_consistency(notes, FOUR, grid=Grid(12)) == 1.0


def test_groove_needs_two_bars():
    assert math.isnan(groove_consistency(notes_at([60, 62], [0, 1]), FOUR))
    assert math.isnan(groove_consistency([], FOUR))


# ---- empty-beat rate ----------------------------------------------------------------
def test_empty_beat_rate_hand_computed():
    # One bar of 4/4, one note on beat 0 lasting one beat: beats 1, 2, 3 empty -> 3/4.
    assert empty_beat_rate([Note(60, 0.0, 1.0)], FOUR) == 0.75
    # A note ending exactly on beat 2 fills beats 0 and 1 only -> 2/4.
    assert empty_beat_rate([Note(60, 0.0, 2.0)], FOUR) == 0.5
    # Notes [0, 1) and [1.5, 2.5): beats 0, 1, 2 overlapped, beat 3 empty -> 1/4.
    assert empty_beat_rate([Note(60, 0.0, 1.0), Note(62, 1.5, 1.0)], FOUR) == 0.25


def test_empty_beat_rate_length_and_ringing():
    # bars=2: 8 beats, only beat 0 sounds -> 7/8.
    assert empty_beat_rate([Note(60, 0.0, 1.0)], FOUR, bars=2) == 0.875
    # A note from beat 3 ringing 4 beats past a one-bar phrase fills only beat 3 -> 3/4.
    assert empty_beat_rate([Note(60, 3.0, 4.0)], FOUR) == 0.75
    # 7/8: 3.5 beats -> 4 beats, the last a half beat; a note at 3.0 fills it -> 3/4.
    assert empty_beat_rate([Note(60, 3.0, 0.5)], TimeSignature(7, 8)) == 0.75
    # 6/8 = 3 quarter beats; a dotted-half chord fills all of them -> 0.
    assert empty_beat_rate(chord([60, 64], 0.0, 3.0), TimeSignature(6, 8)) == 0.0


def test_empty_beat_rate_no_notes():
    assert math.isnan(empty_beat_rate([], FOUR))
    assert empty_beat_rate([], FOUR, bars=2) == 1.0


# ---- polyphony ---------------------------------------------------------------------
def test_polyphony_hand_computed():
    # A triad for one beat: 3 pitches at each of 4 steps -> 3.0.
    assert polyphony(chord([60, 64, 67])) == 3.0
    # C for beats 0-2 (steps 0..7), E for beats 1-2 (steps 4..7):
    # 8 + 4 = 12 pitch-steps over 8 sounding steps -> 1.5.
    assert polyphony([Note(60, 0.0, 2.0), Note(64, 1.0, 1.0)]) == 1.5


def test_polyphony_ignores_silence_and_doubling():
    # Notes at beats 0 and 3 with silence between: silent steps do not count -> 1.0.
    assert polyphony(notes_at([60, 62], [0, 3])) == 1.0
    # The same pitch on two channels sounds once -> 1.0.
    assert polyphony([Note(60, 0.0, 1.0, channel=0), Note(60, 0.0, 1.0, channel=1)]) == 1.0
    # A 1/32 note snaps to one step; with a quarter note on another pitch at the
    # same onset: steps 0..3 hold 2, 1, 1, 1 -> 5/4.
    assert polyphony([Note(60, 0.0, 0.125), Note(64, 0.0, 1.0)]) == 1.25


def test_polyphony_no_notes():
    assert math.isnan(polyphony([]))


# ---- notes per bar -------------------------------------------------------------------
def test_notes_per_bar():
    # 6 notes with onsets in bars 0 and 1 -> 3 per bar; with bars=4 -> 1.5.
    notes = notes_at([60, 62, 64, 65, 67, 69], [0, 1, 2, 4, 5, 6])
    assert notes_per_bar(notes, FOUR) == 3.0
    assert notes_per_bar(notes, FOUR, bars=4) == 1.5
    # A triad counts three notes.
    assert notes_per_bar(chord([60, 64, 67]), FOUR) == 3.0
    assert math.isnan(notes_per_bar([], FOUR))
    assert notes_per_bar([], FOUR, bars=2) == 0.0


def test_phrase_bars():
    assert phrase_bars([], FOUR) == 0
    assert phrase_bars(notes_at([60, 60], [0, 4.0]), FOUR) == 2  # onset on the bar line
    assert phrase_bars(notes_at([60], [3.75]), FOUR) == 1
    assert phrase_bars(notes_at([60], [5.0]), TimeSignature(6, 8)) == 2  # 3 beats a bar
    assert phrase_bars(notes_at([60], [0]), FOUR, bars=3) == 3


# ---- tables --------------------------------------------------------------------------
def test_metric_table_averages_and_skips_nan():
    one_bar = chord([60, 64, 67])  # groove undefined (one bar)
    two_bars = notes_at([60, 62], [0, 4])
    table = metric_table([one_bar, two_bars], FOUR)
    assert list(table) == list(METRICS)
    # pitch range: (7 + 2) / 2; notes per bar: (3 + 1) / 2; groove only from two_bars: 1.0
    assert table["pitch_range"] == 4.5
    assert table["notes_per_bar"] == 2.0
    assert table["groove_consistency"] == 1.0
    # polyphony: (3 + 1) / 2
    assert table["polyphony"] == 2.0
    single = phrase_metrics(two_bars, FOUR)
    assert metric_table([two_bars, two_bars], FOUR) == single


def test_metric_table_with_fixed_bars_and_all_nan():
    table = metric_table([[], []], FOUR, bars=2)
    assert table["notes_per_bar"] == 0.0 and table["empty_beat_rate"] == 1.0
    assert math.isnan(table["pitch_class_entropy"]) and math.isnan(table["polyphony"])


def test_gap_percent():
    assert gap_percent(110, 100) == pytest.approx(10.0)  # 100 * 10 / 100
    assert gap_percent(90.0, 100.0) == pytest.approx(10.0)
    assert gap_percent(-1.0, -2.0) == pytest.approx(50.0)  # 100 * 1 / 2
    assert gap_percent(0, 0) == 0.0
    assert gap_percent(1.0, 0.0) == math.inf
    assert math.isnan(gap_percent(math.nan, 1.0))


# ---- bad input ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: pitch_class_entropy(Note(60, 0, 1)), "notes must be a sequence of Note, got Note"),
        (lambda: scale_consistency([Note(60, 0, 1), 62]), "notes[1] must be a Note, got int"),
        (lambda: pitch_range("C4"), "notes must be a sequence of Note, got str"),
        (lambda: notes_per_bar([], "4/4"), "meter must be a TimeSignature, got '4/4'"),
        (lambda: groove_consistency([], FOUR, resolution=0), "resolution must be an int >= 1, got 0"),
        (lambda: empty_beat_rate([], FOUR, bars=0), "bars must be an int >= 1, got 0"),
        (lambda: notes_per_bar([], FOUR, bars=1.5), "bars must be an int >= 1, got 1.5"),
        (lambda: polyphony([], grid=4), "grid must be a Grid, got 4"),
        (
            lambda: notes_per_bar(notes_at([60], [8.0]), FOUR, bars=2),
            "a note starts at beat 8, beyond 2 bars of 4/4 (8 beats)",
        ),
        (lambda: metric_table([], FOUR), "notes_per_phrase is empty: need at least one phrase"),
        (lambda: metric_table(None, FOUR), "notes_per_phrase must be a sequence of phrases, got NoneType"),
        (lambda: gap_percent("1", 2), "a must be a real number, got '1'"),
        (lambda: gap_percent(1, True), "b must be a real number, got True"),
        (
            lambda: groove_consistency(notes_at([60], [0]), TimeSignature(3, 32)),
            "meter 3/32 does not fit a grid of 4 steps per beat",
        ),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value) == message


# ---- filled bars ----------------------------------------------------------------------
def test_fill_stats_hand_computed():
    from affetto.analysis.metrics import fill_stats

    meter = TimeSignature(4, 4)
    # Bar 0: beats 0 and 1 only (the complaint: nothing in the second half). Bar 1: a note on beat 3.
    notes = [Note(60, 0, 1), Note(62, 1, 1), Note(64, 4 + 3, 1)]
    stats = fill_stats(notes, meter, bars=2)
    assert stats["second_half_silent"] == 0.5
    assert stats["silence"] == pytest.approx(1 - 12 / 32)  # 3 beats of 8 sound
    assert stats["second_half_onsets"] == pytest.approx(1 / 3)


def test_fill_stats_meters_and_ringing():
    from affetto.analysis.metrics import fill_stats

    # 6/8 (12 steps): a note from the bar line ringing over the half fills the second half.
    assert fill_stats([Note(57, 0, 2.0)], TimeSignature(6, 8), bars=1)["second_half_silent"] == 0.0
    # 3/4: onset on beat 2 (step 8 of 12) is in the second half; a note ringing past the phrase is cut.
    stats = fill_stats([Note(60, 2, 8)], TimeSignature(3, 4), bars=1)
    assert stats == {"second_half_silent": 0.0, "silence": pytest.approx(8 / 12), "second_half_onsets": 1.0}
    empty = fill_stats([], TimeSignature(3, 4), bars=2)
    assert empty["second_half_silent"] == 1.0 and empty["silence"] == 1.0 and math.isnan(empty["second_half_onsets"])
    with pytest.raises(ValueError, match="bars must be an int >= 1"):
        fill_stats([], TimeSignature(3, 4), bars=0)
