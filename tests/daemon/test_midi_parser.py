"""The input parser and callback: bad input never crashes and is counted by kind."""

from __future__ import annotations

import queue

import pytest

from affetto.daemon.midiparse import MidiParser
from affetto.daemon.portnames import find_port
from affetto.daemon.rtmidiports import InputHandler
from affetto.errors import PortError


def test_complete_messages():
    p = MidiParser()
    assert p.feed([0x91, 60, 100], 5) == [(5, 0x91, 60, 100)]
    assert p.feed([0xB0, 20, 127], 6) == [(6, 0xB0, 20, 127)]
    assert p.feed([0xF8], 7) == [(7, 0xF8, 0, 0)]
    assert p.feed([0xF2, 0x10, 0x01], 8) == [(8, 0xF2, 0x10 | (1 << 7), 0)]
    assert not p.trouble


def test_running_status_and_realtime_inside_a_message():
    p = MidiParser()
    events = p.feed([0x90, 60, 100, 62, 90, 0xF8, 64, 0xFA, 80], 1)
    assert events == [
        (1, 0x90, 60, 100),
        (1, 0x90, 62, 90),
        (1, 0xF8, 0, 0),
        (1, 0xFA, 0, 0),
        (1, 0x90, 64, 80),
    ]
    # running status survives chunk boundaries, as in a byte stream
    assert p.feed([65, 0], 2) == [(2, 0x90, 65, 0)]


def test_uninteresting_messages_are_parsed_and_dropped():
    p = MidiParser()
    assert p.feed([0xC0, 5, 0xE0, 0, 64, 0xD0, 3, 0xFE, 0xF1, 3, 0xF6], 1) == []
    assert p.feed([0x90, 60, 1], 2) == [(2, 0x90, 60, 1)]
    assert not p.trouble


def test_truncated_and_stray_bytes_are_counted():
    p = MidiParser()
    assert p.feed([0x90, 60], 1) == []
    assert p.feed([0xB0, 20, 5], 2) == [(2, 0xB0, 20, 5)]
    assert p.trouble["truncated message"] == 1
    p2 = MidiParser()
    assert p2.feed([60, 100], 1) == []
    assert p2.trouble["data byte without status"] == 2
    assert p2.feed([0xF7, 300, -1, "x"], 1) == []
    assert p2.trouble["stray end of SysEx"] == 1
    assert p2.trouble["not a byte"] == 3


def test_sysex_is_skipped_even_when_huge_or_unterminated():
    p = MidiParser()
    flood = [0xF0] + [0x11] * 100_000 + [0xF7]
    assert p.feed([*flood, 144, 60, 100], 1) == [(1, 0x90, 60, 100)]
    assert p.feed([0xF0, 1, 2, 3, 0x80, 60, 0], 2) == [(2, 0x80, 60, 0)]
    assert p.trouble["unterminated SysEx"] == 1
    # clock ticks inside SysEx still count (real-time bytes may interleave)
    assert p.feed([0xF0, 1, 0xF8, 2, 0xF7], 3) == [(3, 0xF8, 0, 0)]


def test_callback_never_blocks_and_counts_overflow():
    inbox: queue.Queue = queue.Queue(maxsize=16)
    handler = InputHandler(inbox)
    for _ in range(1000):
        handler(([0x90, 60, 100], 0.001))
    assert inbox.qsize() == 16
    assert handler.parser.trouble["input queue full (messages dropped)"] == 1000 - 16


def test_callback_timestamps_follow_backend_deltas():
    inbox: queue.Queue = queue.Queue()
    handler = InputHandler(inbox)
    handler(([0xF8], 0.0))
    handler(([0xF8], 0.02))
    handler(([0xF8], 0.02))
    stamps = [inbox.get_nowait()[0] for _ in range(3)]
    # spaced by the deltas, not by when the callbacks happened to run
    assert stamps[1] - stamps[0] <= 20_000_000 + 1_000 and stamps[2] - stamps[1] <= 20_000_000 + 1_000


def test_find_port_by_name_or_unique_substring():
    names = ["Midi Through:0", "DAW:affetto seed", "DAW:synth 1", "DAW:synth 2"]
    assert find_port(names, "DAW:synth 1", "input") == 2
    assert find_port(names, "seed", "input") == 1
    with pytest.raises(PortError, match="matches several"):
        find_port(names, "synth", "output")
    with pytest.raises(PortError, match="no MIDI input port matches"):
        find_port(names, "nothing", "input")
