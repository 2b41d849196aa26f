"""Bounded fuzz: random bytes and messages through the MIDI parser and the conductor, on fakes.

Running status, truncated messages, SysEx floods, Song Position beyond any song, clock without
Start, random notes and CCs, transport at random: no exception escapes, nothing grows without bound,
and after Stop no note is left sounding (every note-on the output saw has its note-off).
"""

from __future__ import annotations

import queue

import numpy as np
import pytest
from daemon_fakes import MS, make_rig

from affetto.daemon.midiparse import MidiParser
from affetto.daemon.seed import MAX_NOTES

CHUNKS = 20_000


def random_chunk(rng: np.random.Generator, storm: bool) -> list[int]:
    """One chunk of bytes as a MIDI cable or a backend might hand it over."""
    r = rng.random()
    if not storm:  # a player: notes (held, released, chords with running status) and knobs
        r = 0.45 + 0.31 * r if rng.random() > 0.02 else r
    ch = int(rng.integers(0, 16)) if rng.random() < 0.2 else 0
    pitch = lambda: int(rng.integers(36, 96))  # noqa: E731
    if r < 0.15:  # garbage
        return rng.integers(0, 256, int(rng.integers(1, 9))).tolist()
    if r < 0.45:  # clock, with or without Start
        return [0xF8]
    if r < 0.52:  # a chord with running status; its notes are held
        return [0x90 | ch, pitch(), int(rng.integers(1, 128)), pitch(), int(rng.integers(1, 128))]
    if r < 0.58:  # note-offs, as note-on with velocity 0 or as note-off
        return [int(rng.choice([0x80, 0x90])) | ch, pitch(), 0]
    if r < 0.66:  # CCs, the knob among them
        cc = int(rng.choice([20, 21, 22, 23, 24, 64, 123, int(rng.integers(0, 128))]))
        return [0xB0 | ch, cc, int(rng.integers(0, 128))]
    if r < 0.70:  # truncated: a status and too few data bytes
        return [int(rng.choice([0x90, 0xB0, 0xF2, 0xE0])), int(rng.integers(0, 128))]
    if r < 0.72:  # a real-time byte in the middle of a message
        return [0x90 | ch, pitch(), 0xF8, int(rng.integers(1, 128))]
    if r < 0.76:  # a SysEx flood, terminated or not, with a real-time byte inside
        body = rng.integers(0, 128, int(rng.integers(1, 400))).tolist()
        body.insert(len(body) // 2, 0xF8)
        return [0xF0, *body] + ([0xF7] if rng.random() < 0.5 else [])
    if r < 0.80:  # Song Position Pointer, often far beyond any song
        value = int(rng.integers(0, 0x4000))
        return [0xF2, value & 0x7F, value >> 7]
    return [int(rng.choice([0xFA, 0xFB, 0xFC]))]  # transport


def unreleased(messages) -> set[tuple[int, int]]:
    """Keys whose last note-on has no note-off after it (CC 123 not counted: note-offs are owed)."""
    on: set[tuple[int, int]] = set()
    for _, m in messages:
        kind, key = m[0] & 0xF0, (m[0] & 0x0F, m[1])
        if kind == 0x90 and m[2] > 0:
            on.add(key)
        elif kind == 0x80 or kind == 0x90:
            on.discard(key)
    return on


@pytest.mark.parametrize("seed", [1, 2])
def test_fuzz_through_parser_and_conductor(seed):
    rng = np.random.default_rng(seed)
    rig = make_rig(clock="midi", queue_size=256)
    parser = MidiParser()
    conductor, scheduler = rig.conductor, rig.scheduler
    tick_ns = int(60e9 / 120 / 24)
    next_tick = rig.time()
    for k in range(CHUNKS):
        storm = (k // 2000) % 3 == 2  # a third of the time a storm, else a player on a steady clock
        rig.time.step(int(rng.integers(0, 4 * MS)))
        chunks = [random_chunk(rng, storm)] if storm or rng.random() < 0.3 else []
        if not storm and rig.time() >= next_tick:
            chunks.insert(0, [0xF8])
            next_tick += tick_ns
        for chunk in chunks:
            # stamps jitter by up to 3 ms (a backend stamps at frames and periods): a note may be
            # stamped before the clock tick handled just before it
            for event in parser.feed(chunk, rig.time() - int(rng.integers(0, 3 * MS))):
                try:
                    rig.inbox.put_nowait(event)
                except queue.Full:  # the input callback drops on overflow; the conductor catches up
                    rig.pump()
        rig.worker.deliver_all()
        rig.pump()  # raises if anything escapes
        # nothing grows without bound
        assert len(conductor.seed._done) <= MAX_NOTES and len(conductor.seed._open) <= 16 * 128
        assert len(scheduler._heap) <= 4096
        assert len(conductor._pending) <= 4 and len(conductor.gen_ms) <= 512
        assert len(parser._data) <= 2 and rig.inbox.qsize() <= 256
    played_before_stop = len(rig.port.note_ons())
    assert played_before_stop > 0  # the fuzz did make the daemon play
    assert conductor.faults == 0
    rig.inbox.put((rig.time(), 0xFC, 0, 0))
    rig.pump()
    rig.advance(2 * rig.ns_per_bar)  # after Stop nothing starts again
    assert len(rig.port.note_ons()) == played_before_stop
    assert unreleased(rig.port.messages) == set()
    assert rig.output.sounding() == [] and rig.port.sounding() == set()
