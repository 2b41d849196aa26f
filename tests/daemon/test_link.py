"""Ableton Link as a clock source: on a fake session, and against a real second Link peer.

The real-peer test runs its peers in a fresh network namespace that has only
loopback (``unshare -n``, or ``-rn`` for a user without root; loopback up, multicast routed to it), so Link's
discovery never leaves the process's own namespace. It skips with the reason
when the binding is missing or a namespace cannot be made.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from affetto.daemon.clocks import NS_PER_MINUTE, Transport
from affetto.daemon.clocks.link import LinkClock, load_binding
from affetto.errors import ConfigError

# -- a fake Link session -------------------------------------------------------------------------


class FakeState:
    """A snapshot of :class:`FakeLink`'s timeline, with the binding's methods."""

    def __init__(self, link: FakeLink) -> None:
        self._tempo, self._base_us, self._base_beat = link.tempo, link.base_us, link.base_beat
        self._playing, self._start_us = link.playing, link.start_us

    def tempo(self) -> float:
        return self._tempo

    def beatAtTime(self, us: int, quantum: float) -> float:
        return self._base_beat + (us - self._base_us) * self._tempo / 60e6

    def phaseAtTime(self, us: int, quantum: float) -> float:
        return self.beatAtTime(us, quantum) % quantum

    def isPlaying(self) -> bool:
        return self._playing

    def timeForIsPlaying(self) -> int:
        return self._start_us


class FakeLink:
    """A Link session whose clock is ``now_ns // 1000 + skew_us``; tempo, beat and transport set by hand."""

    def __init__(self, now: list[int], tempo: float = 120.0, skew_us: int = 987_654_321) -> None:
        self.now, self.skew_us = now, skew_us
        self.tempo, self.base_us, self.base_beat = tempo, self.micros(), 0.0
        self.playing, self.start_us = False, 0
        self.enabled = False
        self.startStopSyncEnabled = False

    def micros(self) -> int:
        return self.now[0] // 1000 + self.skew_us

    def clock(self) -> FakeLink:
        return self

    def numPeers(self) -> int:
        return 1

    def captureAppSessionState(self) -> FakeState:
        return FakeState(self)

    def beat(self) -> float:
        return FakeState(self).beatAtTime(self.micros(), 4)

    def set_tempo(self, bpm: float) -> None:
        self.base_beat, self.base_us, self.tempo = self.beat(), self.micros(), bpm

    def shift(self, beats: float) -> None:
        self.base_beat += beats

    def start(self) -> None:
        self.playing, self.start_us = True, self.micros()

    def stop(self) -> None:
        self.playing, self.start_us = False, self.micros()


def _rig(tempo: float = 120.0):
    now = [10_000_000_000]
    link = FakeLink(now, tempo)
    clock = LinkClock(4.0, session=link, now_ns=lambda: now[0])
    return now, link, clock


def _advance(now: list[int], clock: LinkClock, seconds: float, step_s: float = 0.05) -> list:
    events = []
    for _ in range(round(seconds / step_s)):
        now[0] += int(step_s * 1e9)
        events += clock.check(now[0])
    return events


def test_start_lands_song_bars_on_the_session_bar_lines():
    now, link, clock = _rig()
    assert link.enabled and link.startStopSyncEnabled
    _advance(now, clock, 5.05)  # the session's timeline runs while stopped: beat 10.1, phase 2.1
    assert not clock.state.running
    link.start()
    # mid-bar: the song waits for the session's next bar line (Link beat 12, 0.95 s on)
    assert _advance(now, clock, 0.9) == [] and not clock.state.running
    (event,) = _advance(now, clock, 0.1)
    assert event.kind is Transport.START and event.beat == 0.0
    bar_line_ns = (link.start_us + (12 - 10.1) * 0.5e6 - link.skew_us) * 1000
    assert event.t_ns == pytest.approx(bar_line_ns, abs=2_000)
    state = clock.state
    assert state.running and state.bpm == pytest.approx(120.0)
    assert state.beat_at(now[0]) == pytest.approx(0.1, abs=1e-3)
    assert state.time_at(4.0) == pytest.approx(bar_line_ns + 2e9, abs=2_000)  # the next one, Link beat 16


def test_a_start_on_a_bar_line_starts_at_once():
    now, link, clock = _rig()
    _advance(now, clock, 2.0)  # Link beat 4
    link.start()
    (event,) = clock.check(now[0])
    assert event.kind is Transport.START and event.beat == 0.0 and event.t_ns == pytest.approx(now[0], abs=2_000)


def test_tempo_change_is_followed_at_the_next_poll_and_keeps_phase():
    now, link, clock = _rig()
    link.start()  # on a bar line (Link beat 0)
    clock.check(now[0])
    _advance(now, clock, 1.0)
    link.set_tempo(150.0)
    assert _advance(now, clock, 0.05) == []  # a tempo change is no jump
    state = clock.state
    assert state.bpm == pytest.approx(150.0)
    beat = link.beat()
    assert state.beat_at(now[0]) == pytest.approx(beat, abs=1e-3)
    next_bar = (beat // 4 + 1) * 4
    link_us = link.micros() + (next_bar - beat) * NS_PER_MINUTE / 150 / 1000
    assert state.time_at(next_bar) == pytest.approx((link_us - link.skew_us) * 1000, abs=2_000)


def test_stop_and_restart_follow_the_session():
    now, link, clock = _rig()
    link.start()  # on a bar line (Link beat 0)
    clock.check(now[0])
    _advance(now, clock, 1.0)
    link.stop()
    (event,) = clock.check(now[0])
    assert event.kind is Transport.STOP and event.beat == pytest.approx(2.0, abs=1e-3)
    assert not clock.state.running
    _advance(now, clock, 0.5)  # stopped: the song position stays
    assert clock.state.beat_at(now[0]) == pytest.approx(2.0, abs=1e-3)
    link.start()  # at Link beat 7: the song starts again on the bar line at Link beat 8
    (event,) = _advance(now, clock, 0.55)
    assert event.kind is Transport.START and event.beat == 0.0
    assert clock.state.beat_at(now[0]) == pytest.approx(0.1, abs=1e-3)


def test_a_new_phase_is_a_jump_and_a_remapped_magnitude_is_not():
    now, link, clock = _rig()
    link.start()  # on a bar line (Link beat 0)
    clock.check(now[0])
    _advance(now, clock, 1.0)
    link.shift(8.0)  # same phase, new magnitude (joining a session): no event, no jump
    assert _advance(now, clock, 0.05) == []
    assert clock.state.beat_at(now[0]) == pytest.approx(2.1, abs=1e-3)
    link.shift(1.0)  # a new phase: locate and continue at the new beat
    events = _advance(now, clock, 0.05)
    assert [e.kind for e in events] == [Transport.LOCATE, Transport.CONTINUE]
    assert events[0].beat == pytest.approx(3.2, abs=1e-3) and clock.jumps == 1


def test_without_start_stop_sync_it_runs_from_the_next_poll():
    now = [10_000_000_000]
    link = FakeLink(now)
    clock = LinkClock(3.0, session=link, start_stop_sync=False, now_ns=lambda: now[0])
    _advance(now, clock, 1.5)  # Link beat 3: the first bar line at quantum 3
    assert clock.state.running and not link.startStopSyncEnabled
    assert clock.state.beat_at(now[0]) == pytest.approx(0.0, abs=1e-3)


def test_the_binding_is_a_core_dependency():
    """Every install has Link (LinkPython-extern ships wheels for Linux, macOS and Windows)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    assert "LinkPython-extern>=1.3,<2" in project["dependencies"]
    assert project["optional-dependencies"]["link"] == ["LinkPython-extern>=1.3,<2"]  # the old extra still works


def test_missing_binding_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "link", None)
    with pytest.raises(ConfigError, match=r"needs the Ableton Link binding: pip install LinkPython-extern"):
        load_binding()


def test_run_daemon_says_a_missing_binding_before_the_model_loads(monkeypatch):
    from affetto.daemon import service
    from affetto.daemon.config import DaemonConfig

    monkeypatch.setitem(sys.modules, "link", None)
    monkeypatch.setattr(service, "make_worker", lambda *a: pytest.fail("the model was loaded"))
    with pytest.raises(ConfigError, match=r"pip install LinkPython-extern"):
        service.run_daemon(DaemonConfig(clock="link", model="builtin:fake"), install_signals=False)


# -- a real second Link peer, in a loopback-only network namespace ------------------------------

# root enters a new network namespace keeping its capabilities (real-time priority for the daemon);
# anyone else gets one inside a new user namespace
UNSHARE = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-rn"]
NAMESPACE = "ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo && exec \"$@\""


def _in_namespace(*argv: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*UNSHARE, "sh", "-c", NAMESPACE, "sh", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _namespace_or_skip() -> None:
    try:
        load_binding()
    except ConfigError as err:
        pytest.skip(str(err))
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip (util-linux, iproute2) to make a loopback-only network namespace")
    probe = _in_namespace("ip", "route", "show", timeout=10)
    if probe.returncode != 0 or "224.0.0.0/4" not in probe.stdout:
        pytest.skip(f"cannot make a loopback-only network namespace here: {probe.stderr.strip()[:200]}")


@pytest.mark.slow
def test_a_real_peer_tempo_bar_phase_and_start_stop():
    _namespace_or_skip()
    done = _in_namespace(sys.executable, os.path.abspath(__file__), "--peer-scenario")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["peers"] >= 1, result
    # start/stop: both reach the daemon's clock, started on a bar line of the session
    assert result["start_seen"] and result["start_beat"] == pytest.approx(0.0, abs=0.05), result
    assert result["stop_seen"] and result["stop_delay_beats"] < 1.0, result
    # bar phase: the daemon's next bar lines fall on the session's bar lines (phase 0 at quantum 4)
    assert max(result["bar_phase_error_beats"]) < 0.01, result
    # tempo: a peer's change is followed within one beat at the new tempo, with the phase kept
    assert result["tempo_before"] == pytest.approx(137.0, abs=0.01), result
    assert result["tempo_after"] == pytest.approx(100.0, abs=0.01), result
    assert result["tempo_delay_beats"] < 1.0, result
    assert max(result["bar_phase_error_after_tempo_beats"]) < 0.01, result


def _peer_scenario() -> dict:
    """Runs inside the namespace: a DAW-like Link peer and the daemon's LinkClock, polled as the
    conductor polls it (every 50 ms at most)."""
    link = load_binding()
    daw = link.Link(137.0)
    daw.startStopSyncEnabled = True
    daw.enabled = True
    clock = LinkClock(4.0, bpm=120.0)
    poll_s = 0.05

    def poll(until, limit_s: float):
        t_end = time.monotonic() + limit_s
        while time.monotonic() < t_end:
            events = clock.check(time.monotonic_ns())
            found = until(events)
            if found:
                return found
            time.sleep(poll_s)
        return None

    def daw_offset_ns() -> int:  # monotonic_ns - Link micros * 1000, for the DAW's own clock
        m0 = time.monotonic_ns()
        us = daw.clock().micros()
        return (m0 + time.monotonic_ns()) // 2 - us * 1000

    def phase_errors() -> list[float]:
        state, s = clock.state, daw.captureAppSessionState()
        first = (state.beat_at(time.monotonic_ns()) // 4 + 1) * 4
        out = []
        for k in range(3):
            us = (state.time_at(first + 4 * k) - daw_offset_ns()) / 1000
            ph = s.phaseAtTime(int(us), 4.0)
            out.append(min(ph, 4.0 - ph))
        return out

    result: dict = {}
    result["peers"] = poll(lambda ev: clock.peers, 10.0) or 0
    s = daw.captureAppSessionState()
    s.setTempo(137.0, daw.clock().micros())
    daw.commitAppSessionState(s)
    poll(lambda ev: abs(clock.state.bpm - 137.0) < 0.01, 5.0)
    result["tempo_before"] = clock.state.bpm

    s = daw.captureAppSessionState()
    s.setIsPlayingAndRequestBeatAtTime(True, daw.clock().micros(), 0.0, 4.0)
    daw.commitAppSessionState(s)
    start = poll(lambda ev: [e for e in ev if e.kind is Transport.START], 5.0)
    result["start_seen"] = bool(start)
    result["start_beat"] = start[0].beat if start else None
    time.sleep(0.3)
    clock.check(time.monotonic_ns())
    result["bar_phase_error_beats"] = phase_errors()

    t0 = time.monotonic()
    s = daw.captureAppSessionState()
    s.setTempo(100.0, daw.clock().micros())
    daw.commitAppSessionState(s)
    poll(lambda ev: abs(clock.state.bpm - 100.0) < 0.01, 5.0)
    result["tempo_delay_beats"] = (time.monotonic() - t0) * 100 / 60
    result["tempo_after"] = clock.state.bpm
    time.sleep(0.2)
    clock.check(time.monotonic_ns())
    result["bar_phase_error_after_tempo_beats"] = phase_errors()

    t0 = time.monotonic()
    s = daw.captureAppSessionState()
    s.setIsPlaying(False, daw.clock().micros())
    daw.commitAppSessionState(s)
    stop = poll(lambda ev: [e for e in ev if e.kind is Transport.STOP], 5.0)
    result["stop_seen"] = bool(stop)
    result["stop_delay_beats"] = (time.monotonic() - t0) * 100 / 60
    clock.close()
    daw.enabled = False
    return result


if __name__ == "__main__" and sys.argv[1:] == ["--peer-scenario"]:
    print(json.dumps(_peer_scenario()))
