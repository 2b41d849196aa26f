"""affetto's native JACK ports in this process, against a client playing the DAW.

Each test connects one direction only: with both directions connected the ports
form a loop, and JACK delivers the connection that closed it a period late (the
daemon tests measure that case).
"""

from __future__ import annotations

import queue

import pytest
from conftest import PERIOD, RATE, Daw

from affetto.daemon.jackports import JackMidiPorts
from affetto.errors import PortError

pytestmark = pytest.mark.jack

STEP = PERIOD + 37  # frames between test events: each lands at another offset inside its period
FRAME_US = 1e6 / RATE
# JACK maps time to frames with a filter (a DLL) on the driver's wake-ups, re-estimated every period.
# An output message's frame is computed from its time when a period writes it, some periods after
# the handover that chose the time; under CPU load the estimate moved by up to 3 frames between
# the two, and by 20 frames (0.4 ms) once with a 2-thread training job on both cores. 1 ms allows
# for that and is still a fifth of a period (rtmidi: anywhere in it).
PLACED_FRAMES = int(0.001 * RATE)


def own_port(ports: JackMidiPorts, direction: str) -> str:
    return f"{ports.client.name}:{ports.port_name} {direction}"


def test_input_is_stamped_at_the_frame_of_each_event(jack_server):
    inbox: queue.Queue = queue.Queue()
    frames = [k * STEP for k in range(16)]
    with JackMidiPorts("afftest-stamp", inbox=inbox) as ports:
        daw = Daw("daw-stamp", stamp_written=True)
        try:
            daw.client.connect(daw.out, own_port(ports, "in"))
            daw.play([(f, bytes([0xF8])) for f in frames], lead_s=0.1)
            assert daw.finished.wait(10)
            stamps = [inbox.get(timeout=5)[0] for _ in frames]
        finally:
            daw.close()
    # rtmidi's JACK backend stamps at its callback: up to a period off, varying with the offset.
    # Here both sides read JACK's mapping in the same period; only the two clients' estimates of
    # JACK's clock against time.monotonic_ns differ (by µs).
    error_us = [(got - want) / 1000 for got, (_, want) in zip(stamps, daw.written)]
    assert max(abs(e) for e in error_us) < 2 * FRAME_US, error_us


def test_output_lands_on_the_frame_of_its_time(jack_server):
    with JackMidiPorts("afftest-place") as ports:
        daw = Daw("daw-place")
        try:
            daw.client.connect(own_port(ports, "out"), daw.inp)
            lead = ports.output.lead_ns * RATE // 1_000_000_000
            first = ports.client.frame_time + RATE // 10
            frames = [first + k * STEP for k in range(16)]
            for k, frame in enumerate(frames):  # each handed over about its lead ahead, as the scheduler does
                while frame - ports.client.frame_time > lead:
                    assert daw.wait_frames(1)
                ports.output.send([0x90, 40 + k, 100], at_ns=ports.time.frame_ns(frame))
            arrived = daw.wait_for(lambda rec: len(rec) >= len(frames), timeout=10)
            assert arrived, (  # what a failure needs to be read (seen once in a full suite run)
                f"{len(daw.received)} of {len(frames)} notes arrived {daw.received}; sent for frames {frames}; "
                f"trouble {dict(ports.trouble)}; xruns: ports {ports.xruns}, DAW {daw.xruns}; "
                f"still queued {len(getattr(ports.output, '_pending', ()))}; frame now {ports.client.frame_time}")
        finally:
            daw.close()
    assert [m[1] for _, m in daw.received] == [40 + k for k in range(16)]
    off = [got - want for (got, _), want in zip(daw.received, frames)]
    assert max(abs(d) for d in off) <= PLACED_FRAMES, off


def test_discarded_messages_never_sound_and_untimed_ones_go_at_once(jack_server):
    with JackMidiPorts("afftest-discard") as ports:
        daw = Daw("daw-discard")
        try:
            daw.client.connect(own_port(ports, "out"), daw.inp)
            assert daw.wait_frames(4 * PERIOD)  # a new connection carries data from a period or two on
            later = ports.client.frame_time + RATE // 5
            ports.output.send([0x90, 60, 100], at_ns=ports.time.frame_ns(later))
            ports.output.send([0x80, 60, 0], at_ns=ports.time.frame_ns(later + PERIOD))
            dropped = ports.output.discard_pending()
            sent_at = ports.client.frame_time
            ports.output.send([0xB0, 123, 0])
            assert daw.wait_for(lambda rec: len(rec) >= 1, timeout=5)
            assert daw.wait_frames(later + 4 * PERIOD - sent_at)  # past the dropped messages' frames
        finally:
            daw.close()
    assert dropped == [[0x90, 60, 100], [0x80, 60, 0]]
    # a set: after an xrun the output writes its recent releases again (harmless duplicates)
    assert {bytes(m) for _, m in daw.received} == {bytes([0xB0, 123, 0])}
    # the next period JACK processes after the send (a period's slack for a late callback)
    assert daw.received[0][0] - sent_at <= 2 * PERIOD


def test_drain_waits_for_the_periods_that_write_the_queue_not_for_the_clock(jack_server):
    """A stalled process callback (load, no realtime) must not let a close drop the last note-offs."""
    with JackMidiPorts("afftest-drain") as ports:
        daw = Daw("daw-drain")
        try:
            daw.client.connect(own_port(ports, "out"), daw.inp)
            write, resume_at = ports.output.write_cycle, ports.cycles + 20  # stall 20 periods, > 4 drained

            def stalled(*args):
                if ports.cycles >= resume_at:
                    write(*args)

            ports.output.write_cycle = stalled  # type: ignore[method-assign]
            ports.output.send([0x80, 60, 0])
            assert ports.output.drain(4)
            assert ports.cycles >= resume_at + 4
            received = list(daw.received)  # the DAW's client runs after ours in each period
        finally:
            daw.close()
    assert {bytes(m) for _, m in received} == {bytes([0x80, 60, 0])}  # a set: see above


def test_attach_connects_its_own_ports_to_the_named_ones(jack_server):
    daw = Daw("daw-attach")
    try:
        with JackMidiPorts("afftest-attach", in_port="daw-attach:out", out_port="attach:in") as ports:
            sources = [p.name for p in ports.client.get_all_connections(own_port(ports, "in"))]
            sinks = [p.name for p in ports.client.get_all_connections(own_port(ports, "out"))]
            assert ports.input.name.startswith("daw-attach:out -> ")
        assert sources == ["daw-attach:out"] and sinks == ["daw-attach:in"]
        with pytest.raises(PortError, match="no MIDI input port matches 'no such port'"):
            JackMidiPorts("afftest-attach", in_port="no such port").open()
    finally:
        daw.close()
