"""SIGKILL check: kill ``affetto run`` with SIGKILL N times and count the processes it leaves.

Each run starts the daemon in its own session (dummy-driver JACK server ``affetto-sigkill``), waits
until it is ready (odd runs: on its internal clock at 200 BPM until a DAW-side client has heard
notes; even runs: idle, waiting for MIDI clock), notes every process in its process group or below
it (its model process, Python's resource tracker), SIGKILLs it and polls, up to a deadline, until
none of them is left. What is still running at the deadline is an orphan (counted, then killed by
its PID so that the next run starts clean). Zombies count as gone: they hold nothing but a PID.

Usage: ``python bench/sigkill.py [--runs 10] [--model path.onnx] [--deadline 10]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_daemon  # its JACK server start, by the server name set in main()
from soak import Daw, is_note_on, start_daemon

SERVER = "affetto-sigkill"


def stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, parent, process group, start time) from /proc/PID/stat, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return fields[0], int(fields[1]), int(fields[2]), int(fields[19])


def processes() -> dict[int, tuple[str, int, int, int]]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            s = stat(int(entry))
            if s is not None:
                out[int(entry)] = s
    return out


def family(root: int) -> dict[int, int]:
    """PID -> start time of ``root``, its descendants and its process group's members."""
    table = processes()
    found = {pid: s[3] for pid, s in table.items() if s[2] == root or pid == root}
    grew = True
    while grew:
        grew = False
        for pid, s in table.items():
            if s[1] in found and pid not in found:
                found[pid] = s[3]
                grew = True
    return found


def alive(tracked: dict[int, int], root: int) -> dict[int, str]:
    """The tracked processes still running (same PID and start time, not a zombie), plus anything
    now in ``root``'s process group; PID -> command line."""
    left = {}
    table = processes()
    for pid, s in table.items():
        same = pid in tracked and tracked[pid] == s[3]
        if (same or s[2] == root) and s[0] != "Z":
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            left[pid] = cmd.strip()
    return left


def describe(pid: int, root: int) -> str:
    if pid == root:
        return "daemon"
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "gone"
    if b"resource_tracker" in cmd:
        return "resource tracker"
    if b"multiprocessing" in cmd:
        return "model process"
    return cmd.split(b"\0")[0].decode(errors="replace")


def one_run(k: int, args) -> dict:
    name = f"kill{k}"
    playing = k % 2 == 1
    cmd = [sys.executable, "-m", "affetto.daemon", "run", "--midi-api", "jack", "--port-name", name]
    cmd += ["--clock", "internal", "--bpm", "200"] if playing else ["--clock", "midi"]
    if args.model:
        cmd += ["--model", args.model]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc, ready, lines = start_daemon(cmd, env, start_new_session=True)
    daw = None
    try:
        if not ready.wait(120):
            raise SystemExit(f"run {k}: the daemon did not get ready:\n" + "".join(lines[-30:]))
        if playing:
            daw = Daw(f"sigkill-daw{k}")
            daw.client.connect(f"{name}:{name} out", daw.inp)
            with daw.cond:
                heard = daw.cond.wait_for(lambda: sum(is_note_on(m) for _, m in daw.received) >= 3, 60)
            if not heard:
                raise SystemExit(f"run {k}: no notes heard:\n" + "".join(lines[-30:]))
        tracked = family(proc.pid)
        kinds = sorted(describe(pid, proc.pid) for pid in tracked)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        t0 = time.monotonic()
        deadline = t0 + args.deadline
        left = alive(tracked, proc.pid)
        while left and time.monotonic() < deadline:
            time.sleep(0.05)  # polling /proc; the deadline bounds it
            left = alive(tracked, proc.pid)
        gone_s = time.monotonic() - t0
    finally:
        if daw is not None:
            daw.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for pid in left:  # clean up for the next run: only processes this run started
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return {"playing": playing, "tracked": kinds, "orphans": left, "gone_s": None if left else gone_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--model", default=None, help=".onnx model or builtin:fake (default: the shipped one)")
    ap.add_argument("--deadline", type=float, default=10.0, help="seconds to wait for the processes to go")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    bench_daemon.SERVER = SERVER  # our own server name, beside any other JACK test or benchmark
    jackd = bench_daemon.start_jack()
    if jackd is None:
        raise SystemExit("jackd is missing or did not start")
    orphans = 0
    try:
        for k in range(args.runs):
            r = one_run(k, args)
            orphans += len(r["orphans"])
            state = "playing" if r["playing"] else "idle"
            took = f"all gone {r['gone_s']:.2f} s after the kill" if r["gone_s"] is not None else "left:"
            print(f"run {k + 1} ({state}): {', '.join(r['tracked'])}; {took}", flush=True)
            for pid, cmd in r["orphans"].items():
                print(f"   orphan {pid}: {cmd[:120]}")
    finally:
        jackd.send_signal(signal.SIGTERM)
        jackd.wait(timeout=10)
    print(f"orphans after {args.runs} kills: {orphans}")


if __name__ == "__main__":
    main()
