"""Soak: ``affetto run`` for N minutes at 200 BPM through JACK, a DAW-side client driving it.

The DAW client (dummy-driver JACK server ``affetto-soak``, 48 kHz, 256 frames) sends MIDI clock
and Start, a four-note seed phrase every 8 bars, and sweeps the emotion knob (CC 20), temperature
(CC 23) and guidance (CC 24) while the daemon plays; at the end Stop, then SIGTERM. Reported (no
pass/fail): bars generated / missed (the daemon's closing line) and bars heard; lateness of
note-ons that land near a bar line against that line, counted from the DAW's own ticks (the loop
DAW -> affetto -> DAW adds one JACK period); stuck notes after Stop per channel; resident memory
of the daemon and its model process at the start and the end (from /proc); JACK xruns.

With ``--mode harmonise`` the DAW loops phrases instead (a 2-bar loop for 16 bars, then a 4-bar
loop, then a 1-bar one, round again), so the daemon learns each loop, plays voices under its
repeats and re-learns at every change (``--mode transfer`` and ``--mode variation`` follow the same
loops and play them back in the knob's emotion); with ``--mode ensemble`` the lead's bars come with voices.
The knob sweeps as before.

Usage: ``python bench/soak.py [--minutes 10] [--model path.onnx] [--mode harmonise] [--json-out soak.json]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from affetto.daemon.jackports import ParkedProcess

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_daemon  # its JACK server start, by the server name set in main()

BPM, BEATS = 200.0, 4
RATE, PERIOD = bench_daemon.RATE, bench_daemon.PERIOD
SERVER = "affetto-soak"
PORT = "soak"
EMOTION_CC, TEMPERATURE_CC, GUIDANCE_CC = 20, 23, 24


class Daw:
    """A JACK client that writes a script of ``(frame offset, bytes)`` from a start frame and records
    what it receives as ``(absolute frame, bytes)``; counts JACK's xruns."""

    def __init__(self, name: str) -> None:
        import jack

        self.client = jack.Client(name, no_start_server=True)
        self.out = self.client.midi_outports.register("out")
        self.inp = self.client.midi_inports.register("in")
        self.received: list[tuple[int, bytes]] = []
        self.script: list[tuple[int, bytes]] = []
        self.next = 0
        self.start: int | None = None
        self.frame = 0
        self.xruns = 0
        self.cond = threading.Condition()
        self.client.set_xrun_callback(self._xrun)
        self._parking = ParkedProcess(self._process, (self.out,))
        self.client.set_process_callback(self._parking)
        self.client.activate()

    def _xrun(self, delayed_usecs: float) -> None:
        self.xruns += 1

    def _process(self, frames: int) -> None:
        base = self.client.last_frame_time
        got = [(base + offset, bytes(data)) for offset, data in self.inp.incoming_midi_events()]
        self.out.clear_buffer()
        if self.start is not None:
            while self.next < len(self.script) and self.start + self.script[self.next][0] < base + frames:
                frame, data = self.script[self.next]
                self.out.write_midi_event(max(0, self.start + frame - base), data)
                self.next += 1
        with self.cond:
            self.received.extend(got)
            self.frame = base + frames
            self.cond.notify_all()

    def play(self, script: list[tuple[int, bytes]], lead_s: float = 0.3) -> int:
        self.script = sorted(script, key=lambda e: e[0])
        self.next = 0
        self.start = self.client.frame_time + int(lead_s * RATE)
        return self.start

    def wait_frame(self, frame: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.frame >= frame, timeout)

    def close(self) -> None:
        self._parking.deactivate(self.client)
        self.client.close()


# the loops of --mode harmonise: per loop, its bars of (beat, pitch, beats)
LOOPS = (
    [[(0.0, 72, 1.0), (1.0, 74, 1.0), (2.0, 76, 2.0)], [(0.0, 77, 2.0), (2.0, 76, 1.0), (3.0, 74, 1.0)]],
    [[(0.0, 67, 2.0), (2.0, 69, 2.0)], [(0.0, 71, 1.0), (1.0, 72, 3.0)], [(0.0, 74, 2.0), (2.0, 72, 2.0)],
     [(0.0, 71, 4.0)]],
    [[(0.0, 64, 0.5), (0.5, 65, 0.5), (1.0, 67, 1.0), (2.0, 72, 1.5), (3.5, 71, 0.5)]],
)
LOOP_SPAN = 16  # bars each loop is played
LOOP_MODES = ("harmonise", "transfer", "variation")  # the modes that follow a loop the DAW plays


def performance(minutes: float, mode: str = "continue") -> tuple[list[tuple[int, bytes]], float, int]:
    """The DAW's script: Start and clock, seed phrases (or loops, in harmonise mode), knob sweeps,
    Stop; (script, frames per tick, frame offset of Stop)."""
    per_tick = RATE * 60.0 / BPM / 24
    bar_ticks = 24 * BEATS
    bars = int(minutes * BPM / BEATS)
    script = [(0, b"\xfa")] + [(round(k * per_tick) + 1, b"\xf8") for k in range(bars * bar_ticks)]
    for bar in range(bars):
        line = round(bar * bar_ticks * per_tick) + 1
        # the emotion knob: a triangle over 16 bars, a step per beat (sad -> tense -> sad)
        for beat in range(BEATS):
            phase = ((bar % 16) * BEATS + beat) / (16 * BEATS)
            value = round(127 * (1 - abs(2 * phase - 1)))
            script.append((line + round(beat * 24 * per_tick), bytes([0xB0, EMOTION_CC, value])))
        # temperature and guidance: slower sweeps, once a bar
        script.append((line, bytes([0xB0, TEMPERATURE_CC, round(127 * (bar % 24) / 23)])))
        script.append((line, bytes([0xB0, GUIDANCE_CC, round(127 * (bar % 40) / 39)])))
        if mode in LOOP_MODES:  # the loop of this span of bars
            loop = LOOPS[(bar // LOOP_SPAN) % len(LOOPS)]
            for beat, pitch, length in loop[(bar % LOOP_SPAN) % len(loop)]:
                on = line + round(beat * 24 * per_tick)
                off = on + round(length * 24 * per_tick) - 64
                script += [(on, bytes([0x90, pitch, 90])), (off, bytes([0x80, pitch, 0]))]
        elif bar % 8 == 0:  # a seed phrase now and then
            for beat, pitch in enumerate((60 + bar % 5, 64, 67, 72)):
                on = line + round(beat * 24 * per_tick)
                script += [(on, bytes([0x90, pitch, 90])), (on + round(12 * per_tick), bytes([0x80, pitch, 0]))]
    stop = round(bars * bar_ticks * per_tick) + 1
    script.append((stop, b"\xfc"))
    return script, per_tick, stop


def stuck_per_channel(received: list[tuple[int, bytes]]) -> tuple[dict[int, int], dict[int, int]]:
    """Per channel (1..16): notes left on counting note-offs only, and those still on when CC 123
    (All Notes Off) also counts."""
    raw: set[tuple[int, int]] = set()
    heard: set[tuple[int, int]] = set()
    for _, m in received:
        if len(m) < 3:
            continue
        kind, ch = m[0] & 0xF0, m[0] & 0x0F
        if kind == 0x90 and m[2] > 0:
            raw.add((ch, m[1]))
            heard.add((ch, m[1]))
        elif kind == 0x80 or (kind == 0x90 and m[2] == 0):
            raw.discard((ch, m[1]))
            heard.discard((ch, m[1]))
        elif kind == 0xB0 and m[1] == 123:
            heard = {k for k in heard if k[0] != ch}

    def count(keys):
        out: dict[int, int] = {}
        for ch, _ in keys:
            out[ch + 1] = out.get(ch + 1, 0) + 1
        return out

    return count(raw), count(heard)


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def model_process(pid: int) -> int | None:
    """The daemon's child that runs the model (not Python's resource tracker), if any."""
    for child in children(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"resource_tracker" not in cmdline:
            return child
    return None


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def memory(pid: int) -> dict:
    child = model_process(pid)
    return {"daemon_mb": rss_mb(pid), "model_mb": rss_mb(child) if child else None}


def run(args) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [
        sys.executable,
        "-m",
        "affetto.daemon",
        "run",
        "--midi-api",
        "jack",
        "--clock",
        "midi",
        "--port-name",
        PORT,
        "--temperature-cc",
        str(TEMPERATURE_CC),
        "--guidance-cc",
        str(GUIDANCE_CC),
    ]
    if args.model:
        cmd += ["--model", args.model]
    cmd += ["--mode", args.mode]
    with tempfile.TemporaryDirectory() as tmp:
        if args.transfer_method != "auto":  # a setting of the config file only: written to one for the run
            config = os.path.join(tmp, "soak.toml")
            with open(config, "w", encoding="utf-8") as f:
                f.write(f'transfer_method = "{args.transfer_method}"\n')
            cmd[4:4] = ["--config", config]
        return _soak(args, cmd, env)


def _soak(args, cmd: list[str], env: dict[str, str]) -> dict:
    with playing(cmd, env, PORT, "soak-daw") as (proc, daw, lines):
        script, per_tick, stop = performance(args.minutes, args.mode)
        bar_frames = 24 * BEATS * per_tick
        start = daw.play(script)
        # memory at the start: once four bars have played (the model loaded and warm)
        daw.wait_frame(start + int(4 * bar_frames), 120)
        mem_start = memory(proc.pid)
        samples = [{"bar": 4, **mem_start}]  # every 10 bars, to tell warm-up from a leak
        for bar in range(10, int(stop / bar_frames), 10):
            daw.wait_frame(start + int(bar * bar_frames), 120)
            samples.append({"bar": bar, **memory(proc.pid)})
        daw.wait_frame(start + stop - PERIOD, args.minutes * 60 * 3 + 60)
        mem_end = memory(proc.pid)
        alive_at_stop = proc.poll() is None
        daw.wait_frame(start + stop + RATE, 30)  # a second after Stop: the release is out
        after_stop = [f for f, m in daw.received if f > start + stop + 2 * PERIOD and is_note_on(m)]
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        daw.wait_frame(daw.frame + 8 * PERIOD, 10)
        received, xruns = list(daw.received), daw.xruns
    r = summarise(
        args, lines, received, xruns, start, stop, per_tick, mem_start, mem_end, alive_at_stop, code, after_stop
    )
    r["memory_samples"] = samples
    return r


@contextlib.contextmanager
def playing(cmd: list[str], env: dict, port: str, daw_name: str) -> Iterator[tuple[subprocess.Popen, Daw, list[str]]]:
    """``affetto run`` started and ready, with a DAW client wired both ways to its ports ``port:port in/out``.

    Yields (process, DAW, log lines); on leaving, the DAW client closes and a daemon still running is killed.
    """
    proc, ready, lines = start_daemon(cmd, env)
    daw = None
    try:
        if not ready.wait(120):
            raise SystemExit("the daemon did not get ready:\n" + "".join(lines[-30:]))
        daw = Daw(daw_name)
        daw.client.connect(daw.out, f"{port}:{port} in")
        daw.client.connect(f"{port}:{port} out", daw.inp)
        yield proc, daw, lines
    finally:
        if daw is not None:
            daw.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def start_daemon(cmd: list[str], env: dict, **popen) -> tuple[subprocess.Popen, threading.Event, list[str]]:
    """``affetto run`` as a process; a thread collects its log lines and sets the event at its ready line."""
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env, **popen)
    ready, lines = threading.Event(), []

    def read():
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if " ready in " in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    return proc, ready, lines


def is_note_on(m: bytes) -> bool:
    return len(m) == 3 and m[0] & 0xF0 == 0x90 and m[2] > 0


def summarise(
    args, lines, received, xruns, start, stop, per_tick, mem_start, mem_end, alive_at_stop, code, after_stop
) -> dict:
    bar_frames = 24 * BEATS * per_tick
    line0 = start + 1
    bars = int(args.minutes * BPM / BEATS)
    ons = [f for f, m in received if is_note_on(m) and f < start + stop]
    heard = {int((f - line0) // bar_frames) for f in ons if f >= line0}
    # note-ons within a 32nd of a bar line, against that line (frames -> ms)
    near = []
    for f in ons:
        k = round((f - line0) / bar_frames)
        e = f - (line0 + k * bar_frames)
        if abs(e) < bar_frames / 32:
            near.append(e * 1000 / RATE)
    near_ms = np.array(near)
    closing = [x for x in lines if "stopping (" in x and "bars generated" in x]
    generated = missed = None
    if closing:
        words = closing[-1].split(":")[-1].split()
        generated, missed = int(words[0]), int(words[3])
    status = [x.strip() for x in lines if "bars " in x and "generated," in x and "lateness p99" in x]
    raw, sounding = stuck_per_channel(received)
    growth = {
        k: (mem_end[k] - mem_start[k]) if mem_start.get(k) is not None and mem_end.get(k) is not None else None
        for k in ("daemon_mb", "model_mb")
    }
    return {
        "minutes": args.minutes,
        "bpm": BPM,
        "model": args.model or "shipped",
        "transfer_method": args.transfer_method,
        "mode": args.mode,
        "bars_played": bars,
        "bars_generated": generated,
        "bars_missed": missed,
        "bars_heard": len(heard),
        "note_ons": len(ons),
        "bar_line_notes": len(near_ms),
        "bar_line_lateness_ms": {
            "p50": float(np.percentile(near_ms, 50)) if len(near_ms) else None,
            "p99": float(np.percentile(near_ms, 99)) if len(near_ms) else None,
            "max": float(near_ms.max()) if len(near_ms) else None,
        },
        "bars_not_heard": sorted(set(range(bars)) - heard),
        "last_status_line": status[-1] if status else None,
        "daemon_warnings": [x.strip() for x in lines if " WARNING " in x][:40],
        "note_ons_after_stop": len(after_stop),
        "stuck_after_stop_by_channel": raw,
        "sounding_after_stop_by_channel": sounding,
        "memory_start": mem_start,
        "memory_end": mem_end,
        "rss_growth_mb": growth,
        "jack_xruns": xruns,
        "alive_at_stop": alive_at_stop,
        "exit_code": code,
        "load_1min": os.getloadavg()[0],
    }


def report(r: dict) -> None:
    lat = r["bar_line_lateness_ms"]

    def mb(x):
        return "-" if x is None else f"{x:.1f} MB"

    print(
        f"soak: {r['minutes']:g} min at {r['bpm']:g} BPM through JACK, mode {r['mode']}, model {r['model']}, "
        + (f"transfer method {r['transfer_method']}, " if r["mode"] in ("transfer", "variation") else "") +
        f"{os.cpu_count()} CPUs, load {r['load_1min']:.2f}"
    )
    print(
        f"  bars: {r['bars_played']} played by the DAW, {r['bars_generated']} generated, "
        f"{r['bars_missed']} missed, {r['bars_heard']} heard (with a note-on)"
    )
    if lat["p99"] is not None:
        print(
            f"  bar-line note-ons: {r['bar_line_notes']} of {r['note_ons']}; against their bar line "
            f"p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, max {lat['max']:.2f} ms "
            f"(one JACK period is {PERIOD * 1000 / RATE:.2f} ms)"
        )
    print(f"  bars without a note-on (counted from 0): {r['bars_not_heard'] or 'none'}")
    if r["last_status_line"]:
        print(f"  daemon's last status: {r['last_status_line'].split(' | ', 1)[-1]}")
    print(
        f"  after Stop: {r['note_ons_after_stop']} note-ons; stuck (note-on without note-off) per channel "
        f"{r['stuck_after_stop_by_channel'] or 'none'}; sounding with CC 123 honoured "
        f"{r['sounding_after_stop_by_channel'] or 'none'}"
    )
    ms, me, g = r["memory_start"], r["memory_end"], r["rss_growth_mb"]
    print(
        f"  RSS daemon {mb(ms['daemon_mb'])} -> {mb(me['daemon_mb'])} ({mb(g['daemon_mb'])}); "
        f"model process {mb(ms['model_mb'])} -> {mb(me['model_mb'])} ({mb(g['model_mb'])})"
    )
    trail = ", ".join(f"{x['bar']}: {mb(x['model_mb'])}" for x in r["memory_samples"])
    print(f"  model process RSS by bar: {trail}")
    print(f"  daemon warnings: {len(r['daemon_warnings'])}")
    for line in r["daemon_warnings"][:10]:
        print(f"    {line.split(': ', 1)[-1][:150]}")
    print(
        f"  JACK xruns {r['jack_xruns']}; daemon alive at Stop: {r['alive_at_stop']}; "
        f"exit code after SIGTERM {r['exit_code']}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--model", default=None, help=".onnx model or builtin:fake (default: the shipped one)")
    ap.add_argument("--transfer-method", choices=("auto", "cvae", "rule"), default="auto",
                    help="transfer and variation modes: the config file's transfer_method (default auto: the rule)")
    ap.add_argument("--mode", choices=("continue", "harmonise", "ensemble", "transfer", "variation"),
                    default="continue")
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args()
    if args.minutes <= 0:
        ap.error("--minutes must be > 0")
    bench_daemon.SERVER = SERVER  # our own server name, beside any other JACK test or benchmark
    jackd = bench_daemon.start_jack()
    if jackd is None:
        raise SystemExit("jackd is missing or did not start")
    try:
        r = run(args)
    finally:
        jackd.send_signal(signal.SIGTERM)
        jackd.wait(timeout=10)
    report(r)
    if args.json_out:
        args.json_out.write_text(json.dumps(r, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
