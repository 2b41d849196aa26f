"""A real JACK server for the integration tests, and a client that plays the DAW.

The server: ``jackd -n affetto-test --no-realtime -d dummy -r 48000 -p 256``
with ``JACK_NO_START_SERVER=1``, awaited with ``jack_wait -w`` and stopped by
PID. Nothing is installed here: without ``jackd`` the tests skip, unless
``AFFETTO_REQUIRE_JACK=1`` makes that a failure.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import signal
import subprocess
import sys
import threading

import pytest
from midi_helpers import sounding  # noqa: F401  (the tests import it from here)

from affetto.daemon.jackports import ParkedProcess

SERVER = os.environ.get("AFFETTO_TEST_JACK_PREFIX", "affetto") + "-test"  # a prefix keeps parallel runs apart
RATE = 48000
PERIOD = 256


def _missing(reason: str) -> None:
    if os.environ.get("AFFETTO_REQUIRE_JACK") == "1":
        pytest.fail(f"AFFETTO_REQUIRE_JACK=1 but {reason}")
    pytest.skip(reason)


def start_jack(name: str, log_path) -> subprocess.Popen:
    """Start a dummy-driver JACK server called ``name`` and wait until it answers."""
    for tool in ("jackd", "jack_wait"):
        if shutil.which(tool) is None:
            _missing(f"{tool} is not installed (Debian: apt-get install jackd2)")
    env = dict(os.environ, JACK_NO_START_SERVER="1")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            ["jackd", "-n", name, "--no-realtime", "-d", "dummy", "-r", str(RATE), "-p", str(PERIOD)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    ready = subprocess.run(
        ["jack_wait", "-w", "-t", "10", "-s", name], env=env, capture_output=True, text=True
    )
    if ready.returncode != 0 or proc.poll() is not None:
        stop_jack(proc)
        with open(log_path) as fh:
            pytest.fail(f"JACK server {name} did not start: {ready.stdout}{ready.stderr}\n{fh.read()}")
    return proc


def stop_jack(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def jack_server(tmp_path_factory):
    """The session's JACK server; sets JACK_DEFAULT_SERVER/JACK_NO_START_SERVER for everything here."""
    try:
        import jack  # noqa: F401
    except (ImportError, OSError) as err:
        _missing(f"the JACK-Client module cannot load libjack: {err}")
    env = dict(os.environ, JACK_NO_START_SERVER="1")
    if (
        shutil.which("jack_wait")
        and subprocess.run(
            ["jack_wait", "-w", "-t", "1", "-s", SERVER], env=env, capture_output=True
        ).returncode
        == 0
    ):
        proc = None  # a server of that name is already up (e.g. started by tests/run.sh): use it, leave it
    else:
        proc = start_jack(SERVER, tmp_path_factory.mktemp("jack") / "jackd.log")
    saved = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
    os.environ["JACK_DEFAULT_SERVER"] = SERVER
    os.environ["JACK_NO_START_SERVER"] = "1"
    try:
        yield SERVER
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if proc is not None:
            stop_jack(proc)


_daws_open = 0  # Daw clients open in this process: the cyclic garbage collector waits while any is
_gc_was_enabled = True


def _hold_gc() -> None:
    """No cyclic garbage collection while a Daw plays. In the whole suite's process (some 700 MB by
    the time the JACK tests run) a full collection holds the GIL, and with it the Daw's process
    callback, for 200 to 650 ms (measured); one such pause, 477 ms in the middle of a performance,
    sent the ticks and the knob's CC out half a second late in one burst, which a real DAW never
    does. Reference counting still frees what the tests let go."""
    global _daws_open, _gc_was_enabled
    if _daws_open == 0:
        _gc_was_enabled = gc.isenabled()
        gc.disable()
    _daws_open += 1


def _release_gc() -> None:
    global _daws_open
    _daws_open -= 1
    if _daws_open == 0 and _gc_was_enabled:
        gc.enable()


class Daw:
    """A JACK client that plays a DAW: clock, transport, notes and CCs at exact frames, and records.

    ``script`` entries are ``(frame offset from start, bytes)``; the process
    callback writes each one in the period that holds its frame. Everything
    received on the input port is recorded as ``(absolute frame, bytes)``.
    With ``stamp_written`` the callback also records, for each event it writes,
    ``(absolute frame, monotonic ns of that frame)`` by JACK's clock as the
    DAW's cycle sees it (a reference for affetto's input stamps). ``periods`` holds, for each
    script entry written, ``(absolute frame, first frame of the period that carried it)``.
    """

    def __init__(self, name: str, server: str = SERVER, *, stamp_written: bool = False) -> None:
        import jack

        from affetto.daemon.jacktime import JackTime

        self.client = jack.Client(name, no_start_server=True, servername=server)
        self.time = JackTime(self.client) if stamp_written else None
        self.written: list[tuple[int, int]] = []
        self.periods: list[tuple[int, int]] = []
        self.out = self.client.midi_outports.register("out")
        self.inp = self.client.midi_inports.register("in")
        self.received: list[tuple[int, bytes]] = []
        self._script: list[tuple[int, bytes]] = []
        self._next = 0
        self.start_frame: int | None = None
        self.finished = threading.Event()
        self.cond = threading.Condition()
        self.frame = 0
        self.xruns = 0  # overruns JACK reported while this client was active
        self.client.set_xrun_callback(self._xrun)
        self._parking = ParkedProcess(self._process, (self.out,))  # parked before deactivation
        self.client.set_process_callback(self._parking)
        self.client.activate()
        _hold_gc()
        self.blocksize = self.client.blocksize
        self.rate = self.client.samplerate

    def _xrun(self, delayed_usecs: float) -> None:
        self.xruns += 1

    def _process(self, frames: int) -> None:
        base = self.client.last_frame_time
        got = [(base + offset, bytes(data)) for offset, data in self.inp.incoming_midi_events()]
        self.out.clear_buffer()
        if self.start_frame is not None:
            script = self._script
            while self._next < len(script) and self.start_frame + script[self._next][0] < base + frames:
                frame, data = script[self._next]
                offset = max(0, self.start_frame + frame - base)
                self.out.write_midi_event(offset, data)
                self.periods.append((base + offset, base))
                if self.time is not None:
                    start_ns, ns_per_frame = self.time.cycle(base, frames)
                    self.written.append((base + offset, start_ns + int(offset * ns_per_frame)))
                self._next += 1
            if self._next >= len(script):
                self.finished.set()
        with self.cond:
            self.received.extend(got)
            self.frame = base + frames
            self.cond.notify_all()

    def connect(self, affetto_in: str, affetto_out: str) -> None:
        self.client.connect(self.out, affetto_in)
        self.client.connect(affetto_out, self.inp)

    def play(self, script: list[tuple[int, bytes]], lead_s: float = 0.3, *, aligned: bool = False) -> int:
        """Start ``script`` ``lead_s`` from now; returns the absolute start frame. With ``aligned`` the
        start is the first frame of a period, so a script frame ``f`` falls at offset ``f % blocksize``
        of its period (two entries can be put in one period on purpose)."""
        self._script = sorted(script, key=lambda e: e[0])
        self._next = 0
        start = self.client.frame_time + int(lead_s * self.rate)
        if aligned:
            with self.cond:  # the frame of a period's start, as the process callback last saw it
                base = self.frame
            start += (base - start) % self.blocksize
        self.start_frame = start
        return self.start_frame

    def wait_frames(self, frames: int, timeout: float = 10.0) -> bool:
        """Wait until JACK has processed ``frames`` more frames."""
        with self.cond:
            target = self.frame + frames
            return self.cond.wait_for(lambda: self.frame >= target, timeout)

    def wait_for(self, predicate, timeout: float = 20.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self.received), timeout)

    def perform(self, script: list[tuple[int, bytes]], proc, *, aligned: bool = False) -> tuple[int, int]:
        """Play ``script`` to its end, let 20 periods pass, then SIGTERM affetto's process ``proc``;
        returns (start frame, exit code). What came back is in ``received``."""
        start = self.play(script, aligned=aligned)
        assert self.finished.wait(60), "the DAW script did not finish"
        assert self.wait_frames(20 * PERIOD)
        proc.send_signal(signal.SIGTERM)
        return start, proc.wait(timeout=20)

    def close(self) -> None:
        try:
            self._parking.deactivate(self.client)
            self.client.close()
        finally:
            _release_gc()


def clock_script(bpm: float, bars: int, rate: int = RATE, beats_per_bar: int = 4) -> tuple[list, float]:
    """Start, then ``bars`` bars of 0xF8 at ``bpm``; returns (script, frames per tick)."""
    per_tick = rate * 60.0 / bpm / 24
    script = [(0, bytes([0xFA]))]
    for k in range(bars * beats_per_bar * 24):
        script.append((round(k * per_tick) + 1, bytes([0xF8])))
    return script, per_tick


@contextlib.contextmanager
def running_affetto(name: str, *extra: str, server: str):
    """``affetto run`` as its own process (as beside a real DAW); yields (process, ready event, stderr lines).

    The process is killed on the way out if a test left it running.
    """
    env = dict(os.environ, JACK_DEFAULT_SERVER=server, JACK_NO_START_SERVER="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-X", "faulthandler", "-m", "affetto.daemon", "run", "--midi-api", "jack",
           "--port-name", name, "--model", "builtin:fake", *extra]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    ready, lines = threading.Event(), []

    def read():
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if " ready in " in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        yield proc, ready, lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        keep = os.environ.get("AFFETTO_TEST_LOG_DIR")  # the daemon's whole log, for reading a failure
        if keep:
            os.makedirs(keep, exist_ok=True)
            with open(os.path.join(keep, f"{name}.{os.getpid()}.{proc.pid}.log"), "w", encoding="utf-8") as fh:
                fh.writelines(lines)
