"""A transport storm (a faulty controller, a DAW gone mad) cannot flood the log."""

from __future__ import annotations

import numpy as np
from daemon_fakes import MS, make_rig

from affetto.daemon.midi import PPQN

START, CONTINUE, STOP, SPP, TICK = 0xFA, 0xFB, 0xFC, 0xF2, 0xF8


def test_a_storm_of_transport_messages_logs_a_bounded_number_of_lines(caplog):
    caplog.set_level("INFO", logger="affetto")
    rig = make_rig(clock="midi")
    rng = np.random.default_rng(12)
    tick_ns = int(60e9 / 120 / PPQN)

    def send(status, d1=0):
        rig.inbox.put((rig.time(), status, d1, 0))

    for _ in range(PPQN):  # a clock before the storm, so every Start has a tempo
        rig.time.step(tick_ns)
        send(TICK)
    rig.pump()
    for _ in range(10_000):
        kind = rng.choice([START, CONTINUE, STOP, SPP])
        send(int(kind), int(rng.integers(0, 0x4000)) if kind == SPP else 0)
        rig.time.step(MS)  # 10,000 messages in 10 s
        send(TICK)  # a tick now and then, so Start and Continue take effect
        rig.worker.deliver_all()
        rig.pump()
    messages = [r.getMessage() for r in caplog.records]
    for kind in ("start", "continue", "stop", "locate"):  # the first of each kind is still there
        assert any(m.startswith(f"transport {kind} ") for m in messages), kind
    assert any(" BPM | " in m for m in messages)  # the status line after a Start
    assert len(messages) <= 60, messages[:80]  # 10,000 messages would have been ~10,000 lines
    send(STOP)
    rig.pump()
    assert rig.port.sounding() == set()
