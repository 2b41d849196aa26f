"""The scheduler: order, tempo at send time, late policy, release; one test on a real thread."""

from __future__ import annotations

import logging
import os
import threading
import time

from daemon_fakes import MS, RecordingPort, SteppableTime

from affetto.daemon import scheduler as scheduler_module
from affetto.daemon.clocks import ClockState, InternalClock
from affetto.daemon.notes import OwnedOutput
from affetto.daemon.scheduler import Scheduler, percentile, set_fifo_priority
from affetto.music.notes import Note


class SettableClock:
    def __init__(self, state: ClockState) -> None:
        self.state = state


def make(bpm=120.0):
    t = SteppableTime(0)
    port = RecordingPort(t)
    clock = SettableClock(ClockState(True, 0, 0.0, 60e9 / bpm, 1))
    sched = Scheduler(OwnedOutput(port), lambda: clock.state, now_ns=t, keep_sent=1000)
    return t, port, clock, sched


def test_events_go_out_at_their_beats_note_offs_first():
    t, port, _clock, sched = make()
    sched.add_notes([Note(60, 0.0, 1.0), Note(60, 1.0, 1.0), Note(64, 0.5, 0.25)], 4.0, channel=2)
    while t.t < 6 * 500 * MS:
        sched.run_due(t())
        t.step(MS)
    beat = 500 * MS
    assert (
        port.messages
        == [
            (4 * beat, [0x92, 60, 80]),
            (int(4.5 * beat), [0x92, 64, 80]),
            (int(4.75 * beat), [0x82, 64, 0]),
            (5 * beat, [0x82, 60, 0]),  # at beat 5 one 60 ends and the next starts: the note-off goes first
            (5 * beat, [0x92, 60, 80]),
            (6 * beat, [0x82, 60, 0]),
        ][:5]
    )
    assert [s.beat for s in sched.sent_log] == [4.0, 4.5, 4.75, 5.0, 5.0]


def test_deadlines_use_the_tempo_at_send_time():
    t, _port, clock, sched = make(120)
    sched.add_notes([Note(60, 0.0, 1.0)], 2.0)
    clock.state = ClockState(True, 0, 0.0, 60e9 / 60, 2)  # tempo halves before the note is due
    t.t = 1500 * MS  # beat 3 at 120, beat 1.5 at 60
    assert sched.run_due(t()) == 0
    t.t = 2000 * MS
    assert sched.run_due(t()) == 1


def test_very_late_note_on_is_dropped_and_its_off_is_silent():
    t, port, _clock, sched = make()
    sched.add_notes([Note(60, 0.0, 4.0)], 0.0)
    t.t = 200 * MS  # 0.4 beat late, beyond max_late_beats
    sched.run_due(t())
    t.t = 3000 * MS
    sched.run_due(t())
    assert port.messages == [] and sched.dropped_late == 1


def test_nothing_is_sent_while_stopped():
    t, _port, clock, sched = make()
    sched.add_notes([Note(60, 0.0, 1.0)], 0.0)
    clock.state = ClockState(False, 0, 0.0, 5e8, 2)
    t.t = 10**9
    assert sched.run_due(t()) == 0


def test_release_all_and_cancel():
    t, port, _clock, sched = make()
    sched.add_notes([Note(60, 0.0, 8.0), Note(62, 2.0, 1.0), Note(64, 4.0, 1.0)], 0.0)
    sched.run_due(0)
    assert sched.cancel_from(4.0) == 1  # the 64
    assert sched.pending() == 1
    assert sched.release_all() == 1  # the held 60
    assert port.sounding() == set()
    t.t = 10**10
    assert sched.run_due(t()) == 0


def test_cancel_with_cut_ends_the_sounding_notes_that_started_at_or_after_the_beat():
    t, port, _clock, sched = make()
    sched.add_notes([Note(60, 0.0, 8.0), Note(62, 4.0, 4.0), Note(64, 5.0, 1.0)], 0.0)
    sched.run_due(t())
    t.t = int(4.1 * 5e8)  # the 60 and the 62 sound; the 64 is still queued
    sched.run_due(t())
    assert port.sounding() == {(0, 60), (0, 62)}
    assert sched.cancel_from(4.0, cut=True) == 1  # the 64 never starts
    assert port.sounding() == {(0, 60)}  # the 62 started at beat 4: cut now; the 60 started before: kept
    t.t = 10**10
    sched.run_due(t())
    assert port.sounding() == set() and [m[1] for _, m in port.messages].count(62) == 2  # one note-off only


def test_real_thread_plays_everything_and_releases():
    port = RecordingPort(time.monotonic_ns)
    clock = InternalClock(300)
    clock.start(time.monotonic_ns() + 20 * MS)
    done = threading.Event()

    class Sink(RecordingPort):
        def send(self, message):
            super().send(message)
            if message == [0x80, 67, 0]:
                done.set()

    port = Sink(time.monotonic_ns)
    with Scheduler(OwnedOutput(port), lambda: clock.state, keep_sent=100) as sched:
        sched.add_notes([Note(p, i * 0.25, 0.2) for i, p in enumerate((60, 62, 64, 65, 67))], 0.0)
        assert done.wait(5.0)
        lateness = list(sched.lateness_ns)
    assert [m[1] for _, m in port.note_ons()] == [60, 62, 64, 65, 67]
    assert port.sounding() == set()
    assert len(lateness) == 10  # measured for every event (values are the benchmark's business)


def test_release_from_another_thread_while_running_leaves_nothing_on():
    clock = InternalClock(240)
    clock.start(time.monotonic_ns())
    first_on = threading.Event()

    class Sink(RecordingPort):
        def send(self, message):
            super().send(message)
            if message[0] & 0xF0 == 0x90:
                first_on.set()

    port = Sink(time.monotonic_ns)
    with Scheduler(OwnedOutput(port), lambda: clock.state) as sched:
        sched.add_notes([Note(60 + i % 12, i * 0.125, 2.0) for i in range(64)], 0.0)
        assert first_on.wait(5.0)
        sched.release_all()
        clock.stop(time.monotonic_ns())
    assert port.sounding() == set()


def test_fifo_refused_falls_back_with_a_warning(monkeypatch, caplog):
    def refuse(*args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse, raising=False)
    with caplog.at_level(logging.WARNING, logger=scheduler_module.__name__):
        assert set_fifo_priority(70) is False
    assert "normal priority" in caplog.text


def test_percentile():
    assert percentile([], 50) != percentile([], 50)  # nan
    assert percentile(list(range(101)), 99) == 99
    assert percentile([5], 50) == 5
