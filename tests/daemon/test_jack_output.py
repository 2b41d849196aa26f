"""The JACK output's period logic on fakes: frame placement, order, overflow, xrun re-sends."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from affetto.daemon.jackoutput import JackOutput
from affetto.errors import PortError

FRAMES = 256
NS_PER_FRAME = 1e9 / 48000
PERIOD_NS = int(FRAMES * NS_PER_FRAME)


class Owner:
    """What the output reads from its JackMidiPorts."""

    def __init__(self) -> None:
        self.lost = False
        self.reason = ""
        self.cycles = 0
        self.xruns = 0
        self.trouble: Counter[str] = Counter()


class Full(Exception):
    pass


class Port:
    """A JACK MIDI output buffer that records ``(offset, bytes)`` and holds ``room`` events."""

    def __init__(self, room: int = 1000) -> None:
        self.events: list[tuple[int, bytes]] = []
        self.room = room

    def write_midi_event(self, offset: int, data: bytes) -> None:
        if len(self.events) >= self.room:
            raise Full
        if self.events and offset < self.events[-1][0]:
            raise AssertionError("JACK refuses events out of order")
        self.events.append((offset, bytes(data)))


class Periods:
    """The output, its owner and port, and periods that start ahead of now (as a JACK callback runs
    at its period's start, a message sent without a time is already due)."""

    def __init__(self) -> None:
        self.owner = Owner()
        self.out = JackOutput(self.owner, "test out", PERIOD_NS)  # type: ignore[arg-type]
        self.port = Port()
        self.start = time.monotonic_ns() + 1_000_000_000

    def at(self, frame: float, k: int = 0) -> int:
        """Monotonic ns of ``frame`` in period ``k``."""
        return int(self.start + k * PERIOD_NS + frame * NS_PER_FRAME)

    def run(self, k: int = 0) -> list[tuple[int, bytes]]:
        """Period ``k`` as the process callback runs it; returns what it wrote."""
        self.port.events.clear()
        self.out.write_cycle(self.port, self.start + k * PERIOD_NS, NS_PER_FRAME, FRAMES, Full)
        self.owner.cycles += 1
        return list(self.port.events)


def test_messages_land_on_their_frames_in_order_and_later_ones_wait():
    p = Periods()
    out = p.out
    out.send([0x90, 64, 100], at_ns=p.at(200))
    out.send([0x90, 60, 100], at_ns=p.at(10))
    out.send([0x80, 60, 0], at_ns=p.at(FRAMES + 5))  # next period
    out.send([0xB0, 7, 100])  # no time: the earliest frame
    assert p.run() == [(0, b"\xb0\x07\x64"), (10, b"\x90\x3c\x64"), (200, b"\x90\x40\x64")]
    assert p.run(1) == [(5, b"\x80\x3c\x00")]
    assert not p.owner.trouble


def test_a_timed_message_past_its_frame_goes_first_and_is_counted():
    p = Periods()
    out = p.out
    out.send([0x90, 60, 100], at_ns=p.at(-300))
    assert p.run() == [(0, b"\x90\x3c\x64")]
    assert sum(p.owner.trouble.values()) == 1


def test_a_full_buffer_holds_the_rest_for_the_next_period_in_order():
    p = Periods()
    out = p.out
    p.port.room = 2
    for frame in (1, 2, 3, 4):
        out.send([0x90, 60 + frame, 100], at_ns=p.at(frame))
    assert [d[1] for _, d in p.run()] == [61, 62]
    assert [(o, d[1]) for o, d in p.run(1)] == [(0, 63), (0, 64)]


def test_discard_returns_what_was_queued_and_nothing_of_it_is_written():
    p = Periods()
    out = p.out
    out.send([0x90, 60, 100], at_ns=p.at(3 * FRAMES))
    out.send([0x80, 60, 0], at_ns=p.at(4 * FRAMES))
    assert out.discard_pending() == [[0x90, 60, 100], [0x80, 60, 0]]
    assert [p.run(k) for k in range(6)] == [[]] * 6


def test_after_an_xrun_recent_releases_are_written_again_unless_a_later_note_on_superseded_them():
    p = Periods()
    out = p.out
    out.send([0x80, 62, 0], at_ns=p.at(1))  # released, then nothing: written again
    out.send([0x80, 60, 0], at_ns=p.at(2))  # released, then 60 starts again: not written again
    out.send([0x90, 60, 100], at_ns=p.at(2))
    out.send([0xB0, 123, 0], at_ns=p.at(3))  # channel 1's all-notes-off, then a note on it: not again
    out.send([0x90, 64, 100], at_ns=p.at(4))
    out.send([0xB1, 123, 0], at_ns=p.at(5))  # channel 2's: again
    p.run()
    p.owner.xruns += 1
    out.send([0x90, 67, 100], at_ns=p.at(7, 1))
    written = p.run(1)
    assert written == [(0, b"\x80\x3e\x00"), (0, b"\xb1\x7b\x00"), (7, b"\x90\x43\x64")]
    assert p.run(2) == []  # once per xrun


def test_sends_after_the_server_is_gone_raise():
    p = Periods()
    out = p.out
    p.owner.lost, p.owner.reason = True, "the JACK server shut down"
    with pytest.raises(PortError, match="gone away"):
        out.send([0x90, 60, 100])
