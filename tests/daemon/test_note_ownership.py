"""Note ownership: every note-on is owned until released; panic leaves nothing sounding."""

from __future__ import annotations

from daemon_fakes import RecordingPort

from affetto.daemon.notes import OwnedOutput


def test_note_on_off_round_trip():
    port = RecordingPort()
    out = OwnedOutput(port)
    token = out.note_on(0, 60, 100)
    assert out.sounding() == [(0, 60)]
    assert out.note_off(0, 60, token)
    assert out.sounding() == [] and port.sounding() == set()


def test_retrigger_sends_note_off_first_and_stale_off_is_skipped():
    port = RecordingPort()
    out = OwnedOutput(port)
    first = out.note_on(1, 60, 100)
    second = out.note_on(1, 60, 90)
    assert [m for _, m in port.messages] == [[0x91, 60, 100], [0x81, 60, 0], [0x91, 60, 90]]
    assert not out.note_off(1, 60, first)  # would cut the new note short
    assert port.sounding() == {(1, 60)}
    assert out.note_off(1, 60, second)
    assert port.sounding() == set()


def test_panic_releases_owned_notes_and_sends_cc123_per_used_channel():
    port = RecordingPort()
    out = OwnedOutput(port)
    out.note_on(0, 60, 100)
    out.note_on(3, 64, 100)
    assert out.panic() == 2
    tail = [m for _, m in port.messages[-4:]]
    assert [0x80, 60, 0] in tail and [0x83, 64, 0] in tail
    assert [0xB0, 123, 0] in tail and [0xB3, 123, 0] in tail
    assert out.sounding() == [] and port.sounding() == set()
    assert out.panic() == 0  # idempotent


def test_a_port_that_disappears_does_not_raise():
    port = RecordingPort()
    out = OwnedOutput(port)
    out.note_on(0, 60, 100)
    port.fail = True
    assert out.note_on(0, 62, 100) == 0
    out.panic()  # no exception
    assert out.failed
