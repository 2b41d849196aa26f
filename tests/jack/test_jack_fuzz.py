"""A fuzz through real JACK ports: a DAW client throws ~2,000 random messages at a running daemon.

Running status (events that are only data bytes: affetto parses JACK's events as one byte stream),
truncated messages, SysEx (short, long, unterminated), Song Position beyond any song, clock before
Start, stray system bytes, random notes and CCs on all channels, now and then a transport message,
all over a steady 200 BPM clock; then Stop and SIGTERM. The daemon must still be running at
SIGTERM, exit 0, and leave no note sounding. Its own JACK server (``SERVER``), so this runs beside
other JACK tests.
"""

from __future__ import annotations

import importlib.util
import os
import random
import signal
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.jack

HERE = Path(__file__).resolve().parent
SERVER = os.environ.get("AFFETTO_TEST_JACK_PREFIX", "affetto") + "-fuzz-test"  # a prefix keeps parallel runs apart
NAME = "afffuzz"
BPM = 200.0
MESSAGES = 2000


def _jack_conftest():
    """tests/jack/conftest.py loaded by its path (a plain ``import conftest`` can get another
    folder's conftest in a whole-suite run); shared with test_jack_stage.py."""
    module = sys.modules.get("affetto_jack_conftest")
    if module is None:
        spec = importlib.util.spec_from_file_location("affetto_jack_conftest", HERE / "conftest.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["affetto_jack_conftest"] = module
        spec.loader.exec_module(module)
    return module


_jc = _jack_conftest()
Daw, PERIOD, RATE, sounding, start_jack, stop_jack = (
    _jc.Daw,
    _jc.PERIOD,
    _jc.RATE,
    _jc.sounding,
    _jc.start_jack,
    _jc.stop_jack,
)


@pytest.fixture
def own_server(tmp_path, monkeypatch):
    try:
        import jack  # noqa: F401
    except (ImportError, OSError) as err:
        _jc._missing(f"the JACK-Client module cannot load libjack: {err}")
    proc = start_jack(SERVER, tmp_path / "jackd.log")  # skips (or fails, if required) without jackd
    monkeypatch.setenv("JACK_DEFAULT_SERVER", SERVER)
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    try:
        yield SERVER
    finally:
        stop_jack(proc)


def random_message(rng: random.Random, transport: bool) -> list[bytes]:
    """One fuzz item: one or more JACK events (Start, Continue, Stop and whole Song Position
    Pointers only with ``transport``: each one re-plans the bars, so a steady stream of them would
    leave nothing to play)."""
    ch = rng.randrange(16)
    kind = rng.random()
    if kind < 0.25:  # a note on or off, any channel
        return [bytes([rng.choice((0x80, 0x90)) | ch, rng.randrange(128), rng.randrange(128)])]
    if kind < 0.45:  # a control change, often on the knobs affetto reads
        cc = rng.choice((20, 20, 23, 24, 123, 121, 64, 7, rng.randrange(128)))
        return [bytes([0xB0 | ch, cc, rng.randrange(128)])]
    if kind < 0.60:  # running status: a message, then events of data bytes only
        first = bytes([rng.choice((0x90, 0xB0, 0x80)) | ch, rng.randrange(128), rng.randrange(128)])
        return [first] + [bytes([rng.randrange(128), rng.randrange(128)]) for _ in range(rng.randint(1, 4))]
    if kind < 0.70:  # truncated: a status with fewer data bytes than it needs
        if rng.random() < 0.2:
            return [bytes([0xF2, rng.randrange(128)])]  # a Song Position Pointer short of a byte
        status = rng.choice((0x80, 0x90, 0xA0, 0xB0, 0xE0)) | ch
        return [bytes([status] + [rng.randrange(128)] * rng.randint(0, 1))]
    if kind < 0.78:  # SysEx: short, long, or never terminated
        body = bytes(rng.randrange(128) for _ in range(rng.choice((3, 40, 200))))
        end = b"\xf7" if rng.random() < 0.7 else b""
        return [b"\xf0" + body + end]
    if kind < 0.83:  # Song Position Pointer far beyond any song (a jump: the daemon re-plans)
        if transport:
            return [bytes([0xF2, rng.randrange(64, 128), 0x7F])]
        return [bytes([0xF2, rng.randrange(128)])]  # short of a byte: ignored
    if kind < 0.95:  # stray system bytes: EOX, undefined, MTC, tune request, active sensing, reset
        return [
            bytes([rng.choice((0xF7, 0xF4, 0xF5, 0xF9, 0xFD, 0xF6, 0xFE, 0xFF))]),
            bytes([0xF1, rng.randrange(128)]),
        ][: rng.randint(1, 2)]
    if kind < 0.97:  # pitch bend, aftertouch, program change
        return [bytes([rng.choice((0xE0, 0xA0, 0xD0, 0xC0)) | ch, rng.randrange(128), rng.randrange(128)])]
    if transport:  # now and then a transport message
        return [bytes([rng.choice((0xFA, 0xFB, 0xFC))])]
    return [bytes([0xB0 | ch, 20, rng.randrange(128)])]


def fuzz_script(seed: int) -> tuple[list[tuple[int, bytes]], int, int]:
    """Clock without Start for two beats, Start, 10 bars of clock with the fuzz spread over them, Stop.

    Random transport messages and Song Position Pointers come in the first 6 bars only; then a
    clean Start, so that the last bars play (under the same fuzz) and Stop has notes to release.
    """
    rng = random.Random(seed)
    per_tick = RATE * 60.0 / BPM / 24
    pre = 48  # ticks before Start
    ticks = pre + 10 * 96
    script = [(round(k * per_tick), b"\xf8") for k in range(ticks)]
    script.append((round(pre * per_tick) - 1, b"\xfa"))
    restart = round((pre + 6 * 96) * per_tick) - 1
    script.append((restart, b"\xfa"))
    span = round(ticks * per_tick)
    for _ in range(MESSAGES):
        at = rng.randrange(span)
        script += [(at, event) for event in random_message(rng, transport=at < restart - PERIOD)]
    stop = span + 1
    script.append((stop, b"\xfc"))
    return script, restart, stop


def is_note_on(m: bytes) -> bool:
    return len(m) == 3 and m[0] & 0xF0 == 0x90 and m[2] > 0


def test_random_messages_through_jack_leave_the_daemon_running_and_silent(own_server):
    with _jc.running_affetto(NAME, "--clock", "midi", "--temperature-cc", "23", "--guidance-cc", "24",
                             server=own_server) as (proc, ready, lines):
        assert ready.wait(30), "the daemon did not get ready: " + "".join(lines)
        daw = Daw("daw-fuzz", server=own_server)
        try:
            daw.connect(f"{NAME}:{NAME} in", f"{NAME}:{NAME} out")
            script, restart, stop = fuzz_script(seed=12)
            start = daw.play(script)
            assert daw.finished.wait(30), "the DAW script did not finish"
            assert daw.wait_frames(20 * PERIOD)  # the release after Stop is out
            assert proc.poll() is None, "the daemon exited before SIGTERM:\n" + "".join(lines[-40:])
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=20)
            assert daw.wait_frames(8 * PERIOD)
            received = list(daw.received)
        finally:
            daw.close()
    log = "".join(lines)
    assert code == 0, log[-4000:]
    assert not sounding(received), f"notes left sounding: {sounding(received)}"
    late = [f - start - stop for f, m in received if is_note_on(m) and f > start + stop + 2 * PERIOD + RATE // 100]
    assert not late, f"note-ons after Stop (frames after it): {late}"
    # the last bars played, so Stop had notes to release
    tail = [f for f, m in received if is_note_on(m) and start + restart < f < start + stop]
    assert tail, "nothing was played after the clean Start:\n" + log[-3000:]
    assert "MIDI ports:" in log, "the parser reported no trouble: did the fuzz reach it?\n" + log[-2000:]
