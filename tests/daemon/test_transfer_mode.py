"""Transfer and variation modes: the player's loop learned as in harmonise, played back in the knob's emotion."""

from __future__ import annotations

import numpy as np
from daemon_fakes import make_rig
from test_harmonise import BAR, A, B, D, follow, loop_notes, play_loop, voice_ons

from affetto.analysis.emotion import Capsule, Quadrant, knob_value
from affetto.daemon.config import DaemonConfig
from affetto.daemon.generator import BarRequest, run_request
from affetto.daemon.generators import default_factory
from affetto.daemon.modes import Ask, Cancel
from affetto.daemon.modes.transfer import TransferGenerator, TransferMode, VariationMode
from affetto.music.notes import TimeSignature
from affetto.transfer.rule import RuleTransfer

FOUR = TimeSignature()
HAPPY, SAD = Capsule.of(Quadrant.Q1), Capsule.of(Quadrant.Q3)
# C major, two bars: C, E, G | A, F, B, C  (in minor E and A go down; B, leading up to C, stays)
LOOP = [[(0.0, 60, 1.0), (1.0, 64, 1.0), (2.0, 67, 2.0)],
        [(0.0, 69, 1.0), (1.0, 65, 1.0), (2.0, 71, 1.0), (3.0, 72, 1.0)]]
LOOP2 = [[(0.0, 67, 2.0), (2.0, 65, 1.0), (3.0, 64, 1.0)], [(0.0, 62, 2.0), (2.0, 60, 2.0)]]


def test_the_modes_learn_the_loop_as_harmonise_does_and_ask_their_own_task():
    for mode in (TransferMode(), VariationMode()):
        _, actions = follow([[], A, B, A, B, A], mode)
        assert sorted(actions) == [4, 5, 6]
        first = actions[4]
        assert isinstance(first, Ask) and first.task == mode.task and first.join_current
        assert first.loop_bars == 2 and first.seed == loop_notes([A, B])
        assert [actions[k].position for k in (4, 5, 6)] == [4, 5, 6]  # type: ignore[union-attr]  # bar 5 is 4 bars in
    _, actions = follow([[], A, B, A, B, D, D], TransferMode())
    assert isinstance(actions[6], Cancel)  # the phrase changed: what was asked is given up


def request(task, position, capsule=SAD, loop=LOOP, from_beat=0.0):
    return BarRequest(bar=10 + position, capsule=capsule, seed=loop_notes(loop), task=task, loop_bars=len(loop),
                      position=position, from_beat=from_beat, rng_seed=3)


def test_each_bar_is_cut_from_one_transfer_of_the_whole_loop():
    gen = TransferGenerator(RuleTransfer(), FOUR, rng_seed=3)
    whole = RuleTransfer().transfer(list(loop_notes(LOOP)), FOUR, SAD)
    for position in range(4):
        bar = position % 2
        expected = [(n.pitch, n.onset - bar * BAR, n.velocity) for n in whole if bar * BAR <= n.onset < (bar + 1) * BAR]
        got = run_request(gen, request("transfer", position))
        assert got.error is None and [(n.pitch, n.onset, n.velocity) for n in got.notes] == expected
        assert {n.channel for n in got.notes} == {0}
    pitches = [n.pitch for n in run_request(gen, request("transfer", 0)).notes]
    assert pitches == [60, 63, 67]  # E -> Eb: C minor
    assert [n.pitch for n in run_request(gen, request("transfer", 1)).notes] == [68, 65, 71, 72]  # A -> Ab
    assert [n.pitch for n in run_request(gen, request("transfer", 0, HAPPY)).notes] == [60, 64, 67, 67]  # G twice
    late = run_request(gen, request("transfer", 0, from_beat=1.0)).notes
    assert [n.onset for n in late] == [1.0, 2.0]  # a knob turn redoes the bar from its beat


def test_a_variation_is_new_each_pass_and_the_same_for_the_same_pass_and_seed():
    gen = TransferGenerator(RuleTransfer(), FOUR, rng_seed=3)
    loop = [*LOOP, *LOOP2]  # four bars, so that each pass has several notes to vary

    def pass_notes(k):
        return [(n.pitch, n.onset, n.velocity) for p in range(4) for n in run_request(
            gen, request("variation", 4 * k + p, loop=loop)).notes]

    passes = [pass_notes(k) for k in range(4)]
    assert len({tuple(p) for p in passes}) == 4
    assert pass_notes(2) == passes[2]
    again = TransferGenerator(RuleTransfer(), FOUR, rng_seed=3)
    assert [(n.pitch, n.onset, n.velocity) for n in run_request(again, request("variation", 8, loop=loop)).notes] \
        == passes[2][: len(run_request(gen, request("variation", 8, loop=loop)).notes)]
    # near the source: every onset on the beat is kept, in the target's mode
    for k, notes in enumerate(passes):
        assert {o for _, o, _ in notes if o == int(o)} >= {0.0, 1.0, 2.0}, k


def test_the_config_builds_the_transfer_generator():
    for mode in ("transfer", "variation"):
        config = DaemonConfig(mode=mode, transfer_method="rule", rng_seed=1)
        gen = default_factory(config)()
        assert isinstance(gen, TransferGenerator) and gen.method.name == "rule"
        assert "transfer method: rule" in gen.model_path


def transfer_rig(mode="transfer", knob=Quadrant.Q3):
    rig = make_rig(mode=mode, emotion=knob_value(knob), emotion_smoothing=0.0, transfer_method="rule")
    rig.worker.generator = TransferGenerator(RuleTransfer(), rig.config.meter, rng_seed=1)
    rig.start()
    rig.advance(rig.ns_per_bar // 2)
    return rig


def test_the_loop_is_played_back_in_the_knobs_emotion_on_the_output_channel():
    rig = transfer_rig()
    play_loop(rig, LOOP, passes=4, first_bar=1)  # bars 1..8; heard at bar line 4
    rig.advance(rig.ns_per_bar // 2)
    ons = voice_ons(rig)
    assert {s.channel for s in ons} == {0}
    by_bar: dict[int, list[int]] = {}
    for s in ons:
        by_bar.setdefault(int(s.beat // BAR), []).append(s.pitch)
    assert sorted(by_bar)[:4] == [4, 5, 6, 7]
    assert by_bar[5] == [60, 63, 67] and by_bar[6] == [68, 65, 71, 72]  # the loop in C minor, bar by bar
    assert rig.conductor.bars_missed == 0


def test_a_knob_turn_is_heard_within_two_bars_and_nothing_is_left_sounding():
    rig = transfer_rig()
    play_loop(rig, LOOP, passes=3, first_bar=1)  # bars 1..6
    turned_at = rig.clock.state.beat_at(rig.time())
    rig.inbox.put((rig.time(), 0xB0, 20, knob_value(Quadrant.Q1)))
    play_loop(rig, LOOP, passes=2, first_bar=7)  # bars 7..10
    happy_ons = [s for s in voice_ons(rig) if s.beat >= turned_at and s.pitch in (64, 69)]  # E, A
    assert happy_ons and happy_ons[0].beat < turned_at + 2 * BAR  # E and A major again within two bars
    for event in rig.clock.stop(rig.time()):
        rig.conductor.process(event)
    assert rig.port.sounding() == set()


def test_a_player_who_stops_stops_the_transfer_without_stuck_notes():
    rig = transfer_rig("variation")
    play_loop(rig, [D], passes=4, first_bar=1)
    rig.advance(rig.ns_per_bar)  # silence in bar 5
    assert rig.port.sounding() == set() and rig.conductor.mode.stopped == 1
    rig.advance(2 * rig.ns_per_bar)
    assert not [s for s in voice_ons(rig) if s.beat >= 6 * BAR]


def test_variation_mode_plays_a_new_pass_each_time():
    rig = transfer_rig("variation", Quadrant.Q1)
    loop = [*LOOP, *LOOP2]
    play_loop(rig, loop, passes=4, first_bar=1)  # bars 1..16, a 4-bar loop: variations from bar 7 on
    ons = voice_ons(rig)
    passes = [tuple((s.pitch, round(s.beat - (first + 4 * k) * BAR, 3))
                    for s in ons if (first + 4 * k) * BAR <= s.beat < (first + 4 * k + 4) * BAR)
              for first in (9,) for k in range(2)]
    assert all(passes) and passes[0] != passes[1]
    assert np.isclose(rig.conductor.bars_missed, 0)
