"""Daemon benchmark: prints numbers measured in this run (no pass/fail).

1. Scheduler timing while a generator loads the CPU, with the generator in a
   thread or a child process, with and without SCHED_FIFO, and with Python's
   default 5 ms switch interval vs the daemon's 1 ms: the wake-up lateness
   (handover time minus when the event was due) and, through JACK, the
   delivered error (frame at which a DAW-side client received each message
   minus the frame of its deadline). Through JACK the scheduler hands events
   over the output's lead early and the output places them on their frames.
2. MIDI clock follower through JACK: steady phase error and re-lock time
   after 120 -> 90 BPM.
3. Bars generated vs missed over a run at 200 BPM (JACK ports, real threads).
4. Daemon start-to-ready time and resident memory.

Needs ``jackd`` for the JACK figures (started here as ``affetto-bench`` and
stopped by PID); without it section 1 measures wake-up lateness only.
Usage: ``python bench/bench_daemon.py [--model path.onnx] [--seconds 5]``.
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.daemon.clocks import InternalClock, MidiClockFollower
from affetto.daemon.generator import BarRequest
from affetto.daemon.generators import fake_generator
from affetto.daemon.jackports import ParkedProcess
from affetto.daemon.notes import OwnedOutput
from affetto.daemon.scheduler import Scheduler
from affetto.daemon.workers import make_worker
from affetto.music.notes import Note, TimeSignature

SERVER = "affetto-bench"
RATE, PERIOD = 48000, 256


class NullPort:
    def send(self, message):
        pass


class DawRecorder:
    """A JACK client on affetto's output that records ``(frame, bytes)`` of what it receives."""

    def __init__(self, name: str) -> None:
        import jack

        from affetto.daemon.jackports import JackTime

        self.client = jack.Client(name, no_start_server=True)
        self.inp = self.client.midi_inports.register("in")
        self.received: list[tuple[int, bytes]] = []
        self._parking = ParkedProcess(self._process)
        self.client.set_process_callback(self._parking)
        self.client.activate()
        self.time = JackTime(self.client)

    def _process(self, frames: int) -> None:
        base = self.client.last_frame_time
        for offset, data in self.inp.incoming_midi_events():
            self.received.append((base + offset, bytes(data)))

    def close(self) -> None:
        self._parking.deactivate(self.client)
        self.client.close()


class IntendedFrames:
    """A timed sink in front of affetto's JACK output: notes the frame of each message's deadline."""

    timed = True

    def __init__(self, output, daw: DawRecorder) -> None:
        self.output = output
        self.daw = daw
        self.sent: list[tuple[bytes, int]] = []
        self.released_frame = 2**33  # the frame at which a release dropped what was queued

    def send(self, message, at_ns=None):
        if at_ns is not None:  # the deadline's frame by JACK's clock, read as a DAW-side client would
            self.sent.append((bytes(message), self.daw.time.frame_at(at_ns)))
        self.output.send(message, at_ns=at_ns)

    def discard_pending(self):
        self.released_frame = min(self.released_frame, self.daw.client.frame_time)
        return self.output.discard_pending()


def delivered_error_ms(sent: list[tuple[bytes, int]], received: list[tuple[int, bytes]]) -> tuple[np.ndarray, int]:
    """(received frame minus intended frame in ms for each message received, messages not received).

    Matched in order, by bytes, within 0.1 s: pitches repeat every 0.9 s in this benchmark, so a
    message lost by JACK (an overrun period) is counted as lost instead of matching a later one.
    """
    window = RATE // 10
    errors, lost, j = [], 0, 0
    for data, frame in sent:
        k = j
        while k < len(received) and not (
            received[k][1] == data and abs((received[k][0] - frame + 2**31) % 2**32 - 2**31) <= window
        ):
            k += 1
        if k == len(received):
            lost += 1
            continue
        errors.append(((received[k][0] - frame + 2**31) % 2**32 - 2**31) * 1000 / RATE)
        j = k + 1
    return np.array(errors), lost


def fake_factory(cost_ms: float):
    return fake_generator(TimeSignature(), cost_ms=cost_ms)


def scheduler_error(host: str, fifo: bool, switch_ms: float, seconds: float, cost_ms: float, ports=None) -> dict:
    """Wake-up lateness (ms) of every send while the generator works back to back; with JACK ``ports``
    also the delivered error (ms) of every message a DAW-side client received."""
    import functools

    old_switch = sys.getswitchinterval()
    sys.setswitchinterval(switch_ms / 1000)
    busy = threading.Event()
    pending = [0]

    def deliver(result):
        pending[0] -= 1
        busy.set()

    daw = sink = None
    if ports is not None:
        daw = DawRecorder("bench-daw")
        daw.client.connect(f"{ports.client.name}:{ports.port_name} out", daw.inp)
        sink, lead_ns = IntendedFrames(ports.output, daw), ports.output.lead_ns
    else:
        sink, lead_ns = NullPort(), 0
    worker = make_worker(host, functools.partial(fake_factory, cost_ms), deliver).start()
    clock = InternalClock(200)
    clock.start(time.monotonic_ns() + 50_000_000)
    sched = Scheduler(OwnedOutput(sink), lambda: clock.state, lead_ns=lead_ns, fifo_priority=70 if fifo else None)
    beats = seconds * 200 / 60
    sched.add_notes([Note(60 + i % 12, i * 0.25, 0.2) for i in range(int(beats * 4))], 0.0)
    end = time.monotonic() + seconds
    with sched:
        bar = 0
        while time.monotonic() < end:
            if pending[0] < 1:
                pending[0] += 1
                worker.submit(BarRequest(bar=bar, capsule=Capsule.of(Quadrant.Q1)))
                bar += 1
            busy.wait(0.05)
            busy.clear()
        lateness = np.array(sched.lateness_ns) / 1e6
    worker.close()
    sys.setswitchinterval(old_switch)
    delivered, lost = np.array([]), 0
    if daw is not None:
        ports.output.drain(4)
        daw.close()
        # the release at the end drops what was handed over but not yet played: not lost
        played = [(data, frame) for data, frame in sink.sent if frame < sink.released_frame]
        delivered, lost = delivered_error_ms(played, daw.received)
    return {"lateness": lateness, "delivered": delivered, "lost": lost, "fifo": sched.fifo}


def start_jack():
    if shutil.which("jackd") is None:
        return None
    env = dict(os.environ, JACK_NO_START_SERVER="1")
    proc = subprocess.Popen(
        ["jackd", "-n", SERVER, "--no-realtime", "-d", "dummy", "-r", str(RATE), "-p", str(PERIOD)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    ok = subprocess.run(["jack_wait", "-w", "-t", "10", "-s", SERVER], env=env, capture_output=True)
    if ok.returncode != 0:
        proc.kill()
        return None
    os.environ["JACK_DEFAULT_SERVER"] = SERVER
    os.environ["JACK_NO_START_SERVER"] = "1"
    return proc


def clock_follower_through_jack() -> dict:
    """A JACK client sends 120 BPM then 90 BPM; the follower reads it through affetto's JACK input."""
    import jack

    from affetto.daemon.jackports import JackMidiPorts, JackTime

    inbox: queue.Queue = queue.Queue()
    ports = JackMidiPorts("bench-follow", inbox=inbox).open()
    client = jack.Client("bench-daw", no_start_server=True)
    out = client.midi_outports.register("out")
    jt = JackTime(client)
    true_ns: dict[int, int] = {}  # tick index -> monotonic ns of its frame, by JACK's clock
    script: list[int] = []
    t_change = 8.0
    f0 = [None]
    state = {"next": 0}

    def process(frames):
        base = client.last_frame_time
        out.clear_buffer()
        if f0[0] is None:
            return
        start_ns, ns_per_frame = jt.cycle(base, frames)
        while state["next"] < len(script) and f0[0] + script[state["next"]] < base + frames:
            offset = max(0, f0[0] + script[state["next"]] - base)
            out.write_midi_event(offset, b"\xf8")
            true_ns[state["next"]] = start_ns + int(offset * ns_per_frame)
            state["next"] += 1

    parking = ParkedProcess(process, (out,))
    client.set_process_callback(parking)
    client.activate()
    client.connect(out, f"{ports.client.name}:bench-follow in")
    frame, k = 0.0, 0
    while frame < (t_change + 4.0) * RATE:
        script.append(round(frame))
        bpm = 120.0 if frame < t_change * RATE else 90.0
        frame += RATE * 60 / bpm / 24
        k += 1
    change_index = next(i for i, f in enumerate(script) if f >= t_change * RATE)
    f0[0] = client.frame_time + RATE // 5
    follower = MidiClockFollower()
    follower.handle(0xFA, 0, time.monotonic_ns())
    est: list[tuple[int, float, int]] = []  # (tick index, bpm, predicted ns of that tick)
    n = 0
    deadline = time.monotonic() + t_change + 8
    while n < len(script) and time.monotonic() < deadline:
        try:
            t_ns, status, _, _ = inbox.get(timeout=1.0)
        except queue.Empty:
            break
        if status != 0xF8:
            continue
        follower.handle(status, 0, t_ns)
        s = follower.state
        est.append((follower.song_tick - 1, s.bpm, s.time_at((follower.song_tick - 1) / 24)))
        n += 1
    parking.deactivate(client)
    client.close()
    ports.close()
    true = true_ns
    err = np.array([(p - true[i]) / 1e6 for i, _, p in est if i in true])
    idx = np.array([i for i, _, _ in est if i in true])
    bpms = np.array([bp for i, bp, _ in est if i in true])
    steady = err[(idx > 96) & (idx < change_index)]
    offset = float(np.median(steady)) if len(steady) else float("nan")
    relock = float("nan")
    after = np.where(idx >= change_index)[0]
    good = (np.abs(err - offset) < 2.0) & (np.abs(bpms - 90) < 0.9)
    for j in after:
        if good[j:].all():
            relock = (true[int(idx[j])] - true[change_index]) / 1e9
            break
    return {
        "ticks": len(est),
        "missing": follower.missing_ticks,
        "offset_ms": offset,
        "steady_p50": float(np.percentile(np.abs(steady - offset), 50)) if len(steady) else float("nan"),
        "steady_p99": float(np.percentile(np.abs(steady - offset), 99)) if len(steady) else float("nan"),
        "relock_s": relock,
        "restarts": follower.restarts,
    }


def bars_at_200(model: str, bars: int, host: str) -> dict:
    from affetto.daemon.config import DaemonConfig
    from affetto.daemon.service import run_daemon

    config = DaemonConfig(
        midi_api="jack",
        port_name="bench200",
        model=model,
        clock="internal",
        bpm=200.0,
        generator_host=host,
        log_level="WARNING",
    )
    done = {}

    def on_ready(conductor):
        done["c"] = conductor
        bar_s = 4 * 60 / 200

        def stop():
            conductor.request_stop("bench over")

        threading.Timer(bar_s * (bars + 1.1) + 0.1, stop).start()

    code = run_daemon(config, on_ready=on_ready, install_signals=False)
    c = done["c"]
    lat = np.array(c.scheduler.lateness_ns) / 1e6
    return {
        "code": code,
        "generated": c.bars_generated,
        "missed": c.bars_missed,
        "gen_ms": float(np.mean(c.gen_ms)) if c.gen_ms else float("nan"),
        "lat_p99": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
    }


def start_to_ready(model: str) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "affetto.daemon",
            "run",
            "--midi-api",
            "jack",
            "--port-name",
            "benchready",
            "--model",
            model,
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    ready_s, mem = float("nan"), {}
    for line in proc.stderr:  # type: ignore[union-attr]
        if " ready in " in line:
            ready_s = time.monotonic() - t0
            with open(f"/proc/{proc.pid}/status") as fh:
                for x in fh:
                    if x.startswith(("VmRSS", "RssAnon", "RssFile", "RssShmem")):
                        mem[x.split(":")[0]] = int(x.split()[1]) / 1024
            break
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=15)
    return {"ready_s": ready_s, "mem": mem}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help=".onnx model (default: builtin:fake with --cost-ms of CPU)")
    ap.add_argument("--cost-ms", type=float, default=80.0, help="CPU per bar of the fake generator")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each scheduler run")
    ap.add_argument("--bars", type=int, default=24)
    args = ap.parse_args()
    model = args.model or f"builtin:fake:{args.cost_ms:g}"
    print(
        f"affetto daemon benchmark | {os.cpu_count()} CPUs | model {model} | load: "
        f"{os.getloadavg()[0]:.2f} (1 min avg)"
    )

    jackd = start_jack()
    try:
        scheduler_section(args, jackd is not None)
        if jackd is None:
            print("\n(jackd missing or not starting: skipping the JACK measurements)")
            return
        jack_sections(args, model)
    finally:
        if jackd is not None:
            jackd.send_signal(signal.SIGTERM)
            jackd.wait(timeout=10)


def scheduler_section(args, with_jack: bool) -> None:
    print("\n1. scheduler timing (ms), generator busy back to back, 16th notes at 200 BPM")
    if not with_jack:
        print("   (no JACK: wake-up lateness only, into a null port)")
    else:
        print(
            "   through JACK (48 kHz, 256 frames): wake = handover time - when due (deadline - lead);\n"
            "   delivered = |frame a DAW-side client received - frame of the deadline|"
        )
    print(
        f"   {'host':8s} {'FIFO':5s} {'switch':>7s} {'n':>5s} {'wake p50':>9s} {'p99':>7s} {'max':>7s}"
        f" | {'n':>5s} {'lost':>4s} {'delivered p50':>13s} {'p99':>7s} {'max':>7s}"
    )
    ports = None
    if with_jack:
        from affetto.daemon.jackports import JackMidiPorts

        ports = JackMidiPorts("bench-sched").open()
    try:
        for host, fifo, switch in [
            ("thread", True, 1.0),
            ("thread", False, 1.0),
            ("thread", False, 5.0),
            ("process", True, 1.0),
            ("process", False, 1.0),
            ("process", False, 5.0),
        ]:
            r = scheduler_error(host, fifo, switch, args.seconds, args.cost_ms, ports)
            lat, dev = r["lateness"], np.abs(r["delivered"])
            fifo_text = ("yes" if r["fifo"] else "no*") if fifo else "no"
            line = (
                f"   {host:8s} {fifo_text:5s} {switch:5.1f}ms {len(lat):5d} "
                f"{np.percentile(lat, 50):9.3f} {np.percentile(lat, 99):7.3f} {lat.max():7.3f}"
            )
            if len(dev):
                line += (
                    f" | {len(dev):5d} {r['lost']:4d} {np.percentile(dev, 50):13.3f} "
                    f"{np.percentile(dev, 99):7.3f} {dev.max():7.3f}"
                )
            print(line)
        if ports is not None:
            print(f"   (lead {ports.output.lead_ns / 1e6:.1f} ms; no* = SCHED_FIFO asked for and refused)")
    finally:
        if ports is not None:
            ports.close()


def jack_sections(args, model: str) -> None:
    r = clock_follower_through_jack()
    print("\n2. clock follower through JACK (48 kHz, 256 frames), 120 -> 90 BPM")
    print(f"   ticks {r['ticks']}, missing counted {r['missing']}, restarts {r['restarts']}")
    print(
        f"   constant offset {r['offset_ms']:.2f} ms; steady phase error p50 "
        f"{r['steady_p50']:.2f} ms, p99 {r['steady_p99']:.2f} ms; re-lock {r['relock_s']:.2f} s"
    )
    for host in ("thread", "process"):
        b = bars_at_200(model, args.bars, host)
        print(
            f"\n3. {args.bars} bars at 200 BPM, generator in a {host}: {b['generated']} generated, "
            f"{b['missed']} missed; mean generation {b['gen_ms']:.0f} ms; send lateness p99 "
            f"{b['lat_p99']:.2f} ms; exit code {b['code']}"
        )
    s = start_to_ready(model)
    print(
        f"\n4. start to ready: {s['ready_s']:.2f} s (process spawn to the 'ready' line); "
        "memory at ready: "
        + ", ".join(f"{k} {v:.0f} MB" for k, v in s["mem"].items())
        + " (RssShmem is JACK's shared memory, mapped by every client)"
    )

if __name__ == "__main__":
    main()
