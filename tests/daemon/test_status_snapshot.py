"""The conductor's snapshot for the status page: published, immutable, and true to the music."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest
from daemon_fakes import MS, make_rig
from test_harmonise import A, B, play_loop

from affetto.analysis.emotion import Capsule, Quadrant, knob_value
from affetto.daemon.barbook import BarBook
from affetto.daemon.clocks import ClockState
from affetto.daemon.config import DaemonConfig
from affetto.daemon.status_snapshot import PUBLISH_NS, TRAIL_POINTS, Snapshot, StatusBoard, document
from affetto.ratelimit import RateLimitedLog

REQUIRED = {"bpm", "bar", "running", "emotion", "mode", "generated", "missed"}


def test_the_snapshot_follows_the_transport_and_the_bars():
    rig = make_rig(bpm=150.0)
    first = rig.conductor.board.current
    assert not first.running and first.bar == 1
    rig.start()
    rig.advance(int(2.5 * rig.ns_per_bar))
    snap = rig.conductor.board.current
    assert snap is not first and snap.seq > first.seq
    assert snap.running and snap.bpm == pytest.approx(150.0)
    assert snap.bar == 3 and 2.5 <= snap.beat_in_bar <= 3.0  # published within PUBLISH_NS of now
    assert (snap.generated, snap.missed, snap.played) == (
        rig.conductor.bars_generated, rig.conductor.bars_missed, rig.conductor.bars_played)
    assert snap.generated == 3 and snap.gen.count == 3  # bars 1..3 (bar 3 asked at line 2, back already)
    assert snap.clock == "internal" and snap.mode == "continue" and snap.meter == "4/4"


def test_a_snapshot_is_never_changed_only_replaced():
    rig = make_rig()
    rig.start()
    rig.advance(rig.ns_per_bar)
    held = rig.conductor.board.current
    fields = dataclasses.astuple(held)
    with pytest.raises(dataclasses.FrozenInstanceError):
        held.bar_beats = 3.0  # type: ignore[misc]
    rig.advance(rig.ns_per_bar)
    assert rig.conductor.board.current is not held
    assert dataclasses.astuple(held) == fields  # a reader holding the old one sees it whole


def test_snapshots_come_at_most_every_publish_period():
    config = DaemonConfig(model="builtin:fake")
    target = Capsule.of(Quadrant.Q1)
    board = StatusBoard(config, target, now_ns=0)
    book = BarBook("repeat", RateLimitedLog(logging.getLogger("test")))
    state = ClockState(True, 0, 0.0, 500_000_000.0)
    args = (state, target, target, object(), book, 0)
    assert board.publish(0, *args)
    assert not board.publish(PUBLISH_NS - 1, *args)
    assert board.publish(PUBLISH_NS, *args)
    assert board.current.seq == 2


def test_the_knob_moves_the_dot_and_leaves_a_trail():
    rig = make_rig(emotion=knob_value(Quadrant.Q1))
    rig.start()
    rig.advance(rig.ns_per_bar)
    before = rig.conductor.board.current
    assert (before.target.quadrant, len(before.trail)) == (Quadrant.Q1, 1)
    for value in range(knob_value(Quadrant.Q1), -1, -5):  # turned down to sad, through calm
        rig.inbox.put((rig.time(), 0xB0, 20, value))
        rig.advance(2 * PUBLISH_NS)
    snap = rig.conductor.board.current
    doc = document(snap)
    assert doc["emotion"] == {"valence": -1.0, "arousal": -1.0, "quadrant": "Q3", "mood": "sad"}
    assert snap.trail[0] == (1.0, 1.0) and snap.trail[-1] == (-1.0, -1.0)
    assert 3 <= len(snap.trail) <= TRAIL_POINTS
    assert any(v > 0.5 and a < -0.5 for v, a in snap.trail)  # it went by calm
    assert doc["playing"]["quadrant"] != "Q1"  # the bars asked since follow the knob, smoothed


def test_the_trail_keeps_only_recent_positions():
    rig = make_rig()
    rig.start()
    for k in range(3 * TRAIL_POINTS):
        rig.inbox.put((rig.time(), 0xB0, 20, (k * 37) % 128))
        rig.advance(2 * PUBLISH_NS, step_ns=20 * MS)
    assert len(rig.conductor.board.current.trail) == TRAIL_POINTS


def test_the_loop_learned_in_harmonise_mode_is_shown_and_forgotten_with_it():
    rig = make_rig(mode="harmonise")
    rig.start()
    rig.advance(rig.ns_per_bar // 2)
    assert rig.conductor.board.current.loop is None
    play_loop(rig, [A, B], passes=2, first_bar=1)  # bars 1..4 (0-based): learned at bar line 4
    loop = rig.conductor.board.current.loop
    assert loop is not None and (loop.bars, loop.start) == (2, 1)
    assert sorted(loop.notes) == sorted([(p, o, d) for o, p, d in A] + [(p, o + 4, d) for o, p, d in B])
    assert document(rig.conductor.board.current)["loop"]["from_bar"] == 2
    rig.advance(rig.ns_per_bar // 2)  # the player stopped in bar 5: the voices stop, the loop is forgotten
    assert rig.conductor.board.current.loop is None


def test_the_document_has_what_scripts_need_and_is_json():
    rig = make_rig(mode="call-response")
    rig.start()
    rig.advance(int(3.5 * rig.ns_per_bar))
    doc = document(rig.conductor.board.current)
    assert set(doc) >= REQUIRED
    assert set(doc["emotion"]) >= {"valence", "arousal", "quadrant"}
    assert doc["mode"] == "call-response" and doc["running"] is True and doc["bar"] == 4
    assert json.loads(json.dumps(doc)) == doc


@pytest.mark.parametrize(("beat", "bar", "in_bar"), [(0.0, 1, 1.0), (9.5, 3, 2.5), (11.5, 3, 4.5)])
def test_bar_and_beat_are_counted_from_one(beat, bar, in_bar):
    capsule = Capsule.of(Quadrant.Q4)
    snap = Snapshot(1, 0, True, 120.0, beat, 4.0, "4/4", "midi", "continue", capsule, capsule)
    assert snap.bar == bar and snap.beat_in_bar == pytest.approx(in_bar, abs=1e-5)


def test_generation_times_are_summarised_once_per_new_time():
    book = BarBook("rest", RateLimitedLog(logging.getLogger("test")))
    assert book.times().p50 is None
    for ms in range(101, 0, -1):  # 101 times, newest last
        book.timed(ms * 1_000_000)
    times = book.times()
    assert (times.count, times.p50, times.p99) == (101, 51.0, 100.0)
    assert times.recent_mean == pytest.approx(sum(range(1, 17)) / 16)
    assert book.times() is times  # nothing new: the same summary
    book.timed(1_000_000)
    assert book.times() is not times


def test_a_failing_snapshot_never_stops_the_music(caplog):
    rig = make_rig()

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    rig.conductor.board.publish = broken
    rig.start()
    rig.advance(3 * rig.ns_per_bar)
    assert rig.conductor.bars_generated == 3 and rig.conductor.faults == 0
    assert sum("no status snapshot" in r.getMessage() for r in caplog.records) == 1
