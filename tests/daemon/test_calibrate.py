"""Latency calibration on fakes: a loopback port with a known delay, and the offset on send times."""

from __future__ import annotations

import itertools
import queue
import statistics
import threading
import time

import pytest
from click.testing import CliRunner
from daemon_fakes import RecordingPort, SteppableTime, make_rig

from affetto.daemon.calibrate import Calibration, measure, probe_pitch
from affetto.daemon.clocks import InternalClock
from affetto.daemon.config import DaemonConfig
from affetto.daemon.notes import OwnedOutput
from affetto.daemon.scheduler import Scheduler
from affetto.music.notes import Note

MS = 1_000_000


class LoopbackPort:
    """An output whose note-ons come back on the inbox ``delay_ms`` (+ a known jitter pattern) later.

    With ``now`` (a fake clock) the echo is put at once, stamped with its arrival time, as an input
    port stamps it: the measurement is then exact. Without, a timer thread brings it back in real time.
    ``lose`` drops those probe indices.
    """

    def __init__(self, inbox: queue.Queue, delay_ms: float, jitter_ms=(0.0,), lose=(), now=None) -> None:
        self.inbox, self.delay_ms, self.jitter_ms, self.lose, self.now = inbox, delay_ms, jitter_ms, set(lose), now
        self.sent: list[list[int]] = []
        self._ons = 0

    def send(self, message: list[int]) -> None:
        self.sent.append(list(message))
        if message[0] & 0xF0 != 0x90:
            return
        i, self._ons = self._ons, self._ons + 1
        if i in self.lose:
            return
        delay_ns = round((self.delay_ms + self.jitter_ms[i % len(self.jitter_ms)]) * MS)
        pitch, velocity = message[1], message[2]
        if self.now is not None:
            self.inbox.put((self.now() + delay_ns, 0x90 | 2, pitch, velocity))  # a DAW may rechannel
            return
        timer = threading.Timer(
            delay_ns / 1e9, lambda: self.inbox.put((time.monotonic_ns(), 0x90 | 2, pitch, velocity))
        )
        timer.daemon = True
        timer.start()


JITTER = (0.0, 2.0, -2.0, 1.0, -1.0)


def test_measured_round_trip_matches_the_loopback_delay():
    t = SteppableTime()
    inbox: queue.Queue = queue.Queue()
    port = LoopbackPort(inbox, 12.0, jitter_ms=JITTER, now=t)
    result = measure(port.send, inbox, count=15, now_ns=t, sleep=lambda s: t.step(round(s * 1e9)))
    assert result.lost == 0 and len(result.round_trips_ms) == 15
    assert result.mean_ms == pytest.approx(12.0, abs=0.01)
    assert result.std_ms == pytest.approx(statistics.stdev(JITTER * 3), abs=0.01)
    assert result.p95_ms == pytest.approx(14.0) and result.offset_ms == 12.0
    assert all(m[0] in (0x9F, 0x8F) for m in port.sent)  # probes on channel 16, each one released
    assert sum(m[0] == 0x8F for m in port.sent) == 15


def test_measuring_in_real_time_through_a_thread():
    inbox: queue.Queue = queue.Queue()
    port = LoopbackPort(inbox, 10.0)
    result = measure(port.send, inbox, count=5, interval_s=0.01, timeout_s=1.0)
    assert result.lost == 0
    # a timer on a busy machine only ever adds delay: the bound above is loose on purpose
    assert min(result.round_trips_ms) >= 10.0 and result.mean_ms < 100.0


def test_lost_probes_are_counted_and_do_not_stop_the_run():
    inbox: queue.Queue = queue.Queue()
    port = LoopbackPort(inbox, 5.0, lose=(1, 3))
    result = measure(port.send, inbox, count=5, interval_s=0.005, timeout_s=0.05)
    assert result.lost == 2 and len(result.round_trips_ms) == 3
    assert "2 lost" in result.describe()
    assert "no probe came back" in Calibration((), 4).describe()


def test_probe_pitches_never_repeat_back_to_back():
    pitches = [probe_pitch(i) for i in range(200)]
    assert all(a != b for a, b in itertools.pairwise(pitches))
    assert all(0 <= p <= 127 for p in pitches)


def test_output_offset_sends_every_event_that_much_earlier():
    sent = {}
    for offset_ms in (0.0, 12.5):
        t = SteppableTime()
        clock = InternalClock(120.0)
        scheduler = Scheduler(
            OwnedOutput(RecordingPort(t)),
            lambda clock=clock: clock.state,
            offset_ns=round(DaemonConfig(output_offset_ms=offset_ms).output_offset_ms * 1e6),
            now_ns=t,
            keep_sent=100,
        )
        clock.start(t())
        scheduler.add_notes([Note(60, 1.0, 0.5, 90), Note(64, 2.0, 0.5, 90)], 0.0, channel=0)
        while t() < 2_000 * MS + 1_000_000_000:
            t.step(MS // 2)
            scheduler.run_due(t())
        sent[offset_ms] = [(s.beat, s.deadline_ns, s.sent_ns) for s in scheduler.sent_log]
    for (beat0, deadline0, sent0), (beat1, deadline1, sent1) in zip(sent[0.0], sent[12.5], strict=True):
        assert beat0 == beat1
        assert deadline0 - deadline1 == 12_500_000  # the deadline moved, exactly
        assert sent0 - sent1 == pytest.approx(12_500_000, abs=MS // 2)  # and so did the send, to a step


def test_affetto_calibrate_reports_and_saves_the_offset(tmp_path, monkeypatch):
    from affetto.cli import cli
    from affetto.daemon import ports

    class Ports:
        def __init__(self, inbox):
            self.input = type("In", (), {"name": "loop in"})()
            self.output = LoopbackPort(inbox, 8.0, now=time.monotonic_ns)
            self.output.name = "loop out"

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

    monkeypatch.setattr(ports, "resolve_api", lambda name: "alsa")
    monkeypatch.setattr(ports, "open_ports", lambda api, inbox, **kw: Ports(inbox))
    path = tmp_path / "studio.toml"
    path.write_text("[daemon]\nbpm = 90.0\n", encoding="utf-8")
    args = ["calibrate", "--in", "loop", "--out", "loop", "--count", "5", "--save", str(path)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "round trip over 5 probes: mean" in result.output and "output_offset_ms = " in result.output
    config = DaemonConfig.load(path)
    assert config.bpm == 90.0 and config.output_offset_ms == pytest.approx(8.0, abs=0.1)


def test_a_bar_must_be_back_the_offset_earlier_too():
    missed = {}
    for offset_ms in (0.0, 30.0):
        rig = make_rig(output_offset_ms=offset_ms, margin_ms=20.0)
        rig.start()
        rig.advance(rig.ns_per_bar - 45 * MS, auto_deliver=False)  # bar 1's notes are not back yet
        missed[offset_ms] = rig.conductor.bars_missed
    assert missed == {0.0: 0, 30.0: 1}  # 45 ms before the bar line: in time at 20 ms, late at 20 + 30
