"""The daemon through a real JACK server, with a client playing the DAW.

Timing checks allow one JACK period plus 5 ms (see TOLERANCE); counts tolerate
JACK's rare dropped or duplicated messages (at least N bars, sets of sounding notes).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time

import pytest
from conftest import PERIOD, RATE, Daw, clock_script, running_affetto, sounding, start_jack, stop_jack

from affetto.analysis.emotion import Quadrant, knob_value

pytestmark = pytest.mark.jack

BPM = 240.0
BARS = 8
# What is measured: the frame at which the DAW's client receives a bar's first note-on, minus the
# frame of that bar line counted from the DAW's own clock ticks. affetto stamps the ticks at their
# frames and places notes on their frames (tests/jack/test_jack_ports.py checks each direction
# alone, to a frame), so what remains is the loop: DAW out -> affetto in -> affetto out -> DAW in.
# JACK breaks a loop by delivering the connection that closed it (here affetto out -> DAW in) one
# period late, so every bar arrives one period after its line; a real DAW wired the same way sees
# the same. The 5 ms cover the clock follower's phase error. Measured: 253 to 259 frames (one
# period, 256, within 3 frames) over repeated runs with a training job on both cores.
TOLERANCE = PERIOD + int(0.005 * RATE)


def affetto_ports(daw: Daw, name: str) -> tuple[str, str]:
    """Full JACK names of affetto's input and output ports."""
    ins = [p.name for p in daw.client.get_ports(f"{name} in", is_midi=True, is_input=True)]
    outs = [p.name for p in daw.client.get_ports(f"{name} out", is_midi=True, is_output=True)]
    assert len(ins) == 1 and len(outs) == 1, (ins, outs)
    return ins[0], outs[0]


def note_ons(received):
    return [(f, m) for f, m in received if len(m) == 3 and m[0] & 0xF0 == 0x90 and m[2] > 0]


@pytest.fixture(scope="module")
def performance(jack_server, tmp_path_factory):
    """One performance: 8 bars at 240 BPM, a seed phrase, the knob moved at bar 5, Stop mid-bar 8.

    affetto runs as its own process, as beside a real DAW: the test's JACK client (a Python
    callback) then never waits for the daemon's GIL.
    """
    name = "afftest"
    config = tmp_path_factory.mktemp("perf") / "studio.toml"
    config.write_text(
        f'[daemon]\nemotion = {knob_value(Quadrant.Q1)}\nemotion_smoothing = 0.0\nrng_seed = 3\n', encoding="utf-8"
    )
    daw = None
    with running_affetto(name, "--clock", "midi", "--config", str(config), server=jack_server) as (proc, ready, lines):
        try:
            assert ready.wait(30), "the daemon did not get ready: " + "".join(lines)
            daw = Daw("daw")
            daw.connect(*affetto_ports(daw, name))
            script, per_tick = clock_script(BPM, BARS)
            bar_frames = 96 * per_tick
            script.append((0, bytes([0xB0, 20, knob_value(Quadrant.Q1)])))
            for beat, pitch in enumerate((50, 53, 57, 60)):  # the seed phrase, in bar 1
                on = int(1 + beat * 24 * per_tick)
                script += [(on, bytes([0x90, pitch, 96])), (on + int(12 * per_tick), bytes([0x80, pitch, 0]))]
            script.append((int(4 * bar_frames), bytes([0xB0, 20, knob_value(Quadrant.Q3)])))
            stop_at = int(7.5 * bar_frames)
            script.append((stop_at, bytes([0xFC])))
            start, code = daw.perform(script, proc)
            received = list(daw.received)
            xruns = daw.xruns
        finally:
            if daw is not None:
                daw.close()
    return {
        "received": received,
        "start": start,
        "bar_frames": bar_frames,
        "first_tick": start + 1,
        "stop": start + stop_at,
        "code": code,
        "log": "".join(lines),
        "xruns": xruns,
    }


def test_bars_start_on_bar_lines(performance):
    ons = note_ons(performance["received"])
    line0, bar = performance["first_tick"], performance["bar_frames"]
    errors = {}
    for k in range(1, 7):
        line = line0 + k * bar
        # the fake generator always starts a bar with a note; other notes are >= a sixteenth away
        near = [f - line for f, _ in ons if abs(f - line) < bar / 32]
        if near:
            errors[k] = min(near, key=abs)
    assert len(errors) >= 4, f"too few generated bars heard: {errors}"
    # On a busy machine a note is now and then handed to JACK after its period began and goes out a
    # period late (the daemon counts it), once in CI two (761 frames, with a JACK xrun): one bar may
    # be that late; a bar line mapped wrongly moves every bar, which the median sees.
    late = {k: e for k, e in errors.items() if abs(e) > TOLERANCE + PERIOD}
    median = sorted(errors.values())[len(errors) // 2]
    assert abs(median) <= TOLERANCE and len(late) <= 1 and all(abs(e) <= TOLERANCE + 2 * PERIOD
                                                               for e in late.values()), (
        f"bars off their bar lines by (frames): {errors}; tolerance {TOLERANCE} (median), "
        f"{TOLERANCE + PERIOD} (each but one, {TOLERANCE + 2 * PERIOD}); JACK xruns {performance['xruns']}\n"
        f"{performance['log'][-3000:]}")
    assert performance["code"] == 0


def test_knob_changes_the_output(performance):
    ons = note_ons(performance["received"])
    line0, bar = performance["first_tick"], performance["bar_frames"]

    def velocities(first, last):
        return [m[2] for f, m in ons if line0 + first * bar - TOLERANCE <= f < line0 + last * bar - TOLERANCE]

    happy, sad = velocities(1, 4), velocities(6, 7.5)
    assert happy and sad
    assert sum(sad) / len(sad) < sum(happy) / len(happy)  # Q3 (sad) plays softer than Q1 (happy)


def test_stop_leaves_no_note_sounding(performance):
    received, stop = performance["received"], performance["stop"]
    assert not sounding(received)
    after = [f for f, _ in note_ons(received) if f > stop + 2 * TOLERANCE]
    assert not after, "notes were played after Stop"
    assert any(m[0] & 0xF0 == 0xB0 and m[1] == 123 for f, m in received if f >= stop)


@contextlib.contextmanager
def daw_playing(daw_name: str, name: str, ready, lines, server: str, notes: int):
    """Once affetto is ready: a DAW client wired to it, playing clock, until ``notes`` note-ons were
    heard and some are sounding; yields the DAW and closes it on the way out."""
    assert ready.wait(30), "".join(lines)
    daw = Daw(daw_name, server=server)
    try:
        daw.connect(*affetto_ports(daw, name))
        script, _ = clock_script(BPM, 16)
        daw.play(script)
        assert daw.wait_for(lambda rec: len(note_ons(rec)) >= notes and sounding(rec), timeout=30)
        yield daw
    finally:
        daw.close()


def test_sigterm_of_a_running_daemon_leaves_no_note_sounding(jack_server):
    name = "afftest-sig"
    with running_affetto(name, "--clock", "midi", server=jack_server) as (proc, ready, lines), \
            daw_playing("daw-sig", name, ready, lines, jack_server, notes=12) as daw:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, "".join(lines)
        assert daw.wait_frames(8 * PERIOD)
        assert not sounding(daw.received), "a note was left sounding after SIGTERM"


def test_sigterm_while_jack_stalls_waits_for_the_periods_that_carry_the_last_note_offs(jack_server, tmp_path):
    """The cause of the SIGTERM test's rare failures (about 1 full run in 7): under load, JACK's
    periods run late or overrun while its frame clock (wall time) moves on. The port was closed
    after a few periods *of that clock*, possibly before any period had written the last note-offs,
    and a period that overruns can lose what was written in it. A stopped server makes both
    happen every time: the daemon must wait for periods that really ran, and write its releases
    again after the xruns that follow the stall."""
    server = "affetto-test-stall"
    jackd = start_jack(server, tmp_path / "jackd-stall.log")
    try:
        with running_affetto("afftest-stall", "--clock", "midi", server=server) as (proc, ready, lines), \
                daw_playing("daw-stall", "afftest-stall", ready, lines, server, notes=6) as daw:
            jackd.send_signal(signal.SIGSTOP)
            try:
                proc.send_signal(signal.SIGTERM)
                with pytest.raises(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.5)  # no period runs, so nothing is out yet: it must not close
            finally:
                jackd.send_signal(signal.SIGCONT)
            assert proc.wait(timeout=15) == 0, "".join(lines)
            assert daw.wait_frames(8 * PERIOD)
            assert not sounding(daw.received), "a note was left sounding after SIGTERM"
    finally:
        stop_jack(jackd)


def wait_until(predicate, timeout: float) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes (bounded, never a bare sleep)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def wired(daw: Daw, name: str) -> bool:
    """Whether affetto's ports exist and are connected both ways to the DAW's."""
    ins = daw.client.get_ports(f"{name}:{name} in", is_midi=True)
    outs = daw.client.get_ports(f"{name}:{name} out", is_midi=True)
    if len(ins) != 1 or len(outs) != 1:
        return False
    to_affetto = {p.name for p in daw.client.get_all_connections(daw.out)}
    from_affetto = {p.name for p in daw.client.get_all_connections(daw.inp)}
    return ins[0].name in to_affetto and outs[0].name in from_affetto


def test_jack_server_loss_keeps_the_model_and_reconnects_when_the_server_returns(jack_server, tmp_path):
    from affetto.daemon.jackports import _leak

    server, name = "affetto-test-loss", "afftest-loss"
    jackd = start_jack(server, tmp_path / "jackd-loss.log")
    try:
        with running_affetto(name, "--clock", "midi", server=server) as (proc, ready, lines):
            assert ready.wait(30), "".join(lines)
            daw = Daw("daw-loss", server=server)
            daw.connect(*affetto_ports(daw, name))
            daw.play(clock_script(BPM, 16)[0])
            assert daw.wait_for(lambda rec: len(note_ons(rec)) >= 4, timeout=30), "".join(lines)
            stop_jack(jackd, signal.SIGKILL)
            _leak(daw)  # a client whose server died is never closed (it can crash)
            assert wait_until(lambda: any("JACK server went away" in line for line in lines), 20), "".join(lines)
            assert proc.poll() is None, "".join(lines)  # it waits for the server instead of exiting
            jackd = start_jack(server, tmp_path / "jackd-loss-2.log")
            again = Daw("daw-loss", server=server)  # the DAW comes back with the server, same ports
            try:
                # affetto's ports reappear with the same names and it makes the same connections itself
                assert wait_until(lambda: wired(again, name), 20), "".join(lines)
                again.play(clock_script(BPM, 16)[0])
                assert again.wait_for(lambda rec: len(note_ons(rec)) >= 4 and sounding(rec), timeout=30), (
                    "".join(lines)
                )
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=15) == 0, "".join(lines)
                assert again.wait_frames(8 * PERIOD)
                assert not sounding(again.received), "a note was left sounding"
                assert any("JACK server is back" in line for line in lines), "".join(lines)
            finally:
                again.close()
    finally:
        stop_jack(jackd)
