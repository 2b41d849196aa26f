"""The rule baseline: parallel mode by scale degree, arousal by dynamics and touch, strength, content kept."""

from __future__ import annotations

import numpy as np
import pytest

from affetto.analysis.emotion import Capsule, Quadrant, parse_emotion
from affetto.errors import ConfigError
from affetto.models.outside_seeds import outside_seeds
from affetto.music.notes import Note, TimeSignature
from affetto.transfer.api import Transfer
from affetto.transfer.rule import RuleConfig, RuleTransfer, mode_margin
from affetto.transfer.variation import vary

FOUR = TimeSignature(4, 4)
HAPPY, TENSE, SAD, CALM = (Capsule.of(q) for q in Quadrant)


def c_major_phrase() -> list[Note]:
    """Two bars in C major: a melody over a I - IV - V - I bass, its B leading up to C at the end."""
    melody = [(64, 0, 1), (65, 1, 0.5), (67, 1.5, 0.5), (69, 2, 1), (67, 3, 1),
              (65, 4, 0.5), (64, 4.5, 0.5), (62, 5, 1), (71, 6, 1), (72, 7, 1)]
    bass = [(48, 0, 2), (53, 2, 2), (43, 4, 2), (48, 6, 2)]
    return [Note(p, o, d, 80, 0) for p, o, d in melody] + [Note(p, o, d, 70, 1) for p, o, d in bass]


def a_minor_phrase() -> list[Note]:
    melody = [(69, 0, 1), (72, 1, 1), (71, 2, 0.5), (69, 2.5, 0.5), (67, 3, 1),
              (65, 4, 1), (64, 5, 1), (72, 6, 1), (69, 7, 1)]
    bass = [(45, 0, 2), (50, 2, 2), (52, 4, 2), (45, 6, 2)]
    return [Note(p, o, d, 80, 0) for p, o, d in melody] + [Note(p, o, d, 70, 1) for p, o, d in bass]


def pitches(notes):
    return [n.pitch for n in sorted(notes, key=lambda n: (n.onset, n.channel, n.pitch))]


def margin(notes):
    return mode_margin(np.array([n.pitch for n in notes]), np.array([n.duration for n in notes]))


def test_it_meets_the_transfer_protocol():
    assert isinstance(RuleTransfer(), Transfer) and RuleTransfer().name == "rule"


def test_strength_zero_and_no_emotion_return_the_source_unchanged():
    src = c_major_phrase()
    rule = RuleTransfer()
    assert rule.transfer(src, FOUR, SAD, strength=0.0) == sorted(src, key=lambda n: (n.onset, n.pitch, n.channel))
    assert rule.transfer(src, FOUR, Capsule.unconditioned()) == sorted(
        src, key=lambda n: (n.onset, n.pitch, n.channel))


def test_major_to_minor_by_scale_degree_keeps_the_leading_tone_that_resolves():
    src = c_major_phrase()
    out = RuleTransfer(RuleConfig(density=False)).transfer(src, FOUR, SAD)
    moved = dict(zip(pitches(src), pitches(out)))
    assert moved[64] == 63 and moved[69] == 68  # E -> Eb, A -> Ab
    assert moved[71] == 71  # B leads up to C: kept (harmonic minor)
    assert moved[67] == 67 and moved[65] == 65 and moved[62] == 62 and moved[48] == 48  # shared degrees
    assert margin(src) > 0 > margin(out)


def test_a_seventh_that_does_not_resolve_is_lowered():
    src = [Note(60, 0, 1), Note(64, 1, 1), Note(67, 2, 1), Note(71, 3, 1), Note(67, 4, 1), Note(60, 5, 2)]
    out = RuleTransfer(RuleConfig(density=False)).transfer(src, FOUR, SAD)
    assert pitches(out) == [60, 63, 67, 70, 67, 60]


def test_minor_to_major_raises_the_third_sixth_and_seventh():
    src = a_minor_phrase()
    out = RuleTransfer(RuleConfig(density=False)).transfer(src, FOUR, HAPPY)
    moved = dict(zip(pitches(src), pitches(out)))
    assert moved[72] == 73 and moved[65] == 66 and moved[67] == 68  # C -> C#, F -> F#, G -> G#
    assert moved[69] == 69 and moved[71] == 71 and moved[64] == 64 and moved[50] == 50
    assert margin(src) < 0 < margin(out)


def test_a_phrase_already_in_the_target_mode_keeps_its_pitches():
    rule = RuleTransfer(RuleConfig(density=False))
    for src, capsule in ((c_major_phrase(), HAPPY), (c_major_phrase(), CALM), (a_minor_phrase(), SAD),
                         (a_minor_phrase(), TENSE)):
        assert pitches(rule.transfer(src, FOUR, capsule)) == pitches(src)


def test_chromatic_notes_keep_their_pitch():
    src = [*c_major_phrase(), Note(66, 3.5, 0.5, 80, 0), Note(70, 5.5, 0.5, 80, 0)]  # F#, Bb: outside C major
    out = RuleTransfer(RuleConfig(density=False)).transfer(src, FOUR, SAD)
    assert {66, 70} <= {n.pitch for n in out if n.onset in (3.5, 5.5)}


def test_strength_changes_the_degrees_in_order():
    src = [Note(60, 0, 1), Note(64, 1, 1), Note(69, 2, 1), Note(71, 3, 1), Note(67, 4, 1), Note(60, 5, 2)]
    rule = RuleTransfer(RuleConfig(density=False))
    assert pitches(rule.transfer(src, FOUR, SAD, strength=0.2)) == [60, 63, 69, 71, 67, 60]
    assert pitches(rule.transfer(src, FOUR, SAD, strength=0.5)) == [60, 63, 68, 71, 67, 60]
    assert pitches(rule.transfer(src, FOUR, SAD, strength=1.0)) == [60, 63, 68, 70, 67, 60]


def test_every_outside_seed_lands_in_the_asked_mode_by_the_projects_estimator():
    rule = RuleTransfer()
    for seed in outside_seeds():
        for capsule in (HAPPY, SAD, TENSE, CALM):
            out = rule.transfer(list(seed.notes), seed.meter, capsule)
            assert margin(out) * capsule.valence > 0, (seed.name, capsule)


def test_arousal_moves_velocity_and_articulation_against_the_source():
    src = c_major_phrase()
    rule = RuleTransfer(RuleConfig(density=False))
    happy, sad = rule.transfer(src, FOUR, HAPPY), rule.transfer(src, FOUR, SAD)
    mean = lambda notes, key: float(np.mean([key(n) for n in notes]))  # noqa: E731
    assert mean(happy, lambda n: n.velocity) > mean(src, lambda n: n.velocity) > mean(sad, lambda n: n.velocity)
    assert mean(happy, lambda n: n.duration) < mean(src, lambda n: n.duration) <= mean(sad, lambda n: n.duration)
    half = rule.transfer(src, FOUR, HAPPY, strength=0.5)
    assert mean(src, lambda n: n.velocity) < mean(half, lambda n: n.velocity) < mean(happy, lambda n: n.velocity)


def test_length_bar_lines_and_parts_are_kept():
    rule = RuleTransfer()
    for seed in outside_seeds():
        src = [Note(n.pitch, n.onset, n.duration, n.velocity, i % 3) for i, n in enumerate(seed.notes)]
        end = max(n.end for n in src)
        for capsule in (HAPPY, SAD):
            out = rule.transfer(src, seed.meter, capsule)
            assert max(n.end for n in out) <= end + 1e-9
            assert min(n.onset for n in out) == min(n.onset for n in src)
            assert {n.channel for n in out} == {n.channel for n in src}
            bar = seed.meter.beats_per_bar
            # a re-struck or tied note never crosses into another bar than its source note did
            assert {int(n.onset // bar) for n in out} <= {int(n.onset // bar) for n in src}


def test_density_adds_onsets_when_excited_and_removes_some_when_sad():
    rule = RuleTransfer()
    for seed in outside_seeds():
        src_onsets = {round(n.onset, 6) for n in seed.notes}
        up = {round(n.onset, 6) for n in rule.transfer(list(seed.notes), seed.meter, HAPPY)}
        down = {round(n.onset, 6) for n in rule.transfer(list(seed.notes), seed.meter, SAD)}
        assert src_onsets <= up and down <= src_onsets, seed.name
    lines = [Note(72, 0, 2), Note(74, 2, 0.25), Note(76, 2.25, 0.25), Note(77, 2.5, 0.25), Note(79, 2.75, 1.25)]
    assert [n.onset for n in rule.transfer(lines, FOUR, HAPPY)] == [0, 1, 2, 2.25, 2.5, 2.75]  # 2.75: too short
    assert [n.onset for n in rule.transfer(lines, FOUR, SAD)] == [0, 2, 2.5, 2.75]  # the long 2.75 stays


def test_the_rule_is_deterministic_whatever_the_rng():
    src = list(outside_seeds()[0].notes)
    a = RuleTransfer().transfer(src, TimeSignature(3, 4), parse_emotion("tense"), rng=np.random.default_rng(1))
    b = RuleTransfer().transfer(src, TimeSignature(3, 4), parse_emotion("tense"), rng=np.random.default_rng(2))
    assert a == b


def test_bad_arguments_are_refused_with_their_name():
    with pytest.raises(ConfigError, match="strength"):
        RuleTransfer().transfer(c_major_phrase(), FOUR, SAD, strength=1.5)
    with pytest.raises(ConfigError, match="meter"):
        RuleTransfer().transfer(c_major_phrase(), "4/4", SAD)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="staccato"):
        RuleConfig(staccato=1.0)


def test_a_variation_stays_near_its_source_and_is_seeded():
    seed = outside_seeds()[1]
    src = list(seed.notes)
    a = vary(src, seed.meter, np.random.default_rng(5))
    assert a == vary(src, seed.meter, np.random.default_rng(5))
    assert a != vary(src, seed.meter, np.random.default_rng(6))
    assert a != src
    on_beat = {(n.onset, n.channel) for n in src if n.onset == int(n.onset)}
    assert on_beat <= {(n.onset, n.channel) for n in a}  # onsets on the beat are all kept
    assert max(n.end for n in a) <= max(n.end for n in src) + 1e-9
