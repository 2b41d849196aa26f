"""Timed outputs (native JACK): events handed over ``lead_ns`` early with their exact deadlines,
and a panic that drops what is queued before its note-offs, so nothing sounds after it."""

from __future__ import annotations

from daemon_fakes import MS, RecordingPort, SteppableTime, TimedPort
from midi_helpers import sounding

from affetto.daemon.clocks import ClockState
from affetto.daemon.notes import OwnedOutput
from affetto.daemon.scheduler import Scheduler
from affetto.music.notes import Note

BEAT = 500 * MS  # at 120 BPM
LEAD = 10 * MS


def make(lead_ns: int = LEAD):
    t = SteppableTime(0)
    port = TimedPort(t)
    clock = ClockState(True, 0, 0.0, BEAT, 1)
    sched = Scheduler(OwnedOutput(port), lambda: clock, now_ns=t, lead_ns=lead_ns, keep_sent=100)
    return t, port, sched


def test_events_are_handed_over_lead_early_with_their_exact_deadlines():
    t, port, sched = make()
    sched.add_notes([Note(60, 0.0, 1.0)], 4.0)
    t.t = 4 * BEAT - LEAD - 1
    assert sched.run_due(t()) == 0
    t.t = 4 * BEAT - LEAD
    assert sched.run_due(t()) == 1
    t.t = 5 * BEAT - LEAD
    assert sched.run_due(t()) == 1
    assert port.handed == [
        (4 * BEAT - LEAD, [0x90, 60, 80], 4 * BEAT),
        (5 * BEAT - LEAD, [0x80, 60, 0], 5 * BEAT),
    ]
    assert list(sched.lateness_ns) == [0, 0]
    sent = [(s.deadline_ns, s.sent_ns) for s in sched.sent_log]
    assert sent == [(4 * BEAT, 4 * BEAT - LEAD), (5 * BEAT, 5 * BEAT - LEAD)]


def test_lateness_is_measured_against_the_handover_and_the_drop_policy_is_unchanged():
    t, port, sched = make()
    sched.add_notes([Note(60, 0.0, 2.0), Note(62, 1.0, 1.0)], 0.0)
    t.t = 0 * BEAT - LEAD + 3 * MS  # 3 ms after the note was due for handover
    sched.run_due(t())
    assert list(sched.lateness_ns) == [3 * MS]
    assert port.handed[0][2] == 0  # still placed on its deadline
    t.t = 1 * BEAT - LEAD + int(0.3 * BEAT)  # beyond max_late_beats (0.25) after its handover: dropped
    sched.run_due(t())
    assert sched.dropped_late == 1
    assert [m[1] for _, m, _ in port.handed] == [60]


def test_release_drops_queued_note_ons_before_the_note_offs_so_nothing_sounds_after_it():
    t, port, sched = make()
    sched.add_notes([Note(60, 0.0, 1.0), Note(64, 0.5, 1.0)], 4.0)
    t.t = 4 * BEAT - LEAD
    sched.run_due(t())  # 60 handed over, not yet sounding
    t.t = 4 * BEAT - 5 * MS
    assert sched.release_all() == 1  # the panic: 60 is owned
    assert port.calls == ["send", "discard", "send", "send"]  # note-on; then the panic: discard, note-off, CC 123
    heard = port.heard()
    assert [m for _, m in heard if m[0] & 0xF0 == 0x90] == []  # the note-on never sounds
    assert sounding(heard) == set()
    t.t = 10 * BEAT
    assert sched.run_due(t()) == 0  # and nothing is left to send


def test_a_note_whose_note_off_was_handed_over_but_not_played_is_released_by_the_panic():
    t, port, sched = make()
    sched.add_notes([Note(60, 0.0, 1.0)], 4.0)
    t.t = 4 * BEAT - LEAD
    sched.run_due(t())
    t.t = 5 * BEAT - LEAD
    sched.run_due(t())  # the note-off is queued for 5 * BEAT; the note is sounding
    t.t = 5 * BEAT - 5 * MS
    sched.release_all()  # drops the queued note-off: the panic must send one itself
    heard = port.heard()
    note_on_at = next(at for at, m in heard if m == [0x90, 60, 80])
    assert any(at >= note_on_at and m == [0x80, 60, 0] for at, m in heard), heard
    assert all(at <= t.t for at, _ in heard)  # nothing is left queued for later


def test_untimed_sinks_keep_plain_sends():
    t = SteppableTime(0)
    port = RecordingPort(t)  # send(message) only: an at_ns would be a TypeError
    out = OwnedOutput(port)
    assert not out.timed
    token = out.note_on(0, 60, 100, at_ns=123)
    out.note_off(0, 60, token, at_ns=456)
    out.control_change(0, 7, 100, at_ns=789)
    assert [m for _, m in port.messages] == [[0x90, 60, 100], [0x80, 60, 0], [0xB0, 7, 100]]
    clock = ClockState(True, 0, 0.0, BEAT, 1)
    sched = Scheduler(out, lambda: clock, now_ns=t)  # lead 0: due at the deadline, as before
    sched.add_notes([Note(62, 0.0, 1.0)], 1.0)
    t.t = BEAT - 1
    assert sched.run_due(t()) == 0
    t.t = BEAT
    assert sched.run_due(t()) == 1
    assert port.messages[-1] == (BEAT, [0x90, 62, 80])
