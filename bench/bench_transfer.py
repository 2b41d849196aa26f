"""Transfer's speed: a 4-bar phrase re-played in another emotion, per method, on one CPU thread.

Usage: ``affetto bench transfer [--repeat N] [--json-out F]`` (or ``python -m affetto.bench.bench_transfer``).

Prints, for every available method (the rule baseline, with and without its
density lever; the CVAE when ``affetto/assets/affetto-transfer.onnx`` is
shipped), the time of one ``transfer`` call on a dense 4-bar phrase (the
outside seed "pop-pattern": chords, a bass in eighths and a melody, 4/4) and
on a sparse one ("lullaby", 3/4), alternating target quadrants: p50, p99 and
the largest, and each method's p99 against the 20 ms goal as a ratio. Also the
live generator's cost per bar (a bar cut from a cached transfer) and for a
new emotion (the whole loop transferred). Numbers are measured in this run;
nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.music.notes import Note, TimeSignature

GOAL_MS = 20.0


def phrase(name: str) -> tuple[list[Note], TimeSignature]:
    from affetto.models.outside_seeds import outside_seeds

    seed = next(s for s in outside_seeds() if s.name == name)
    span = 4 * seed.meter.beats_per_bar
    return [n for n in seed.notes if n.onset < span], seed.meter


def percentiles(times_ms: list[float]) -> dict:
    a = np.asarray(times_ms)
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "max": float(a.max()),
            "n": len(a)}


def time_method(method, notes, meter, repeat: int) -> dict:
    capsules = [Capsule.of(q) for q in Quadrant]
    for c in capsules:  # warm up
        method.transfer(notes, meter, c, rng=np.random.default_rng(0))
    times = []
    for k in range(repeat):
        rng = np.random.default_rng(k)
        t0 = time.perf_counter_ns()
        method.transfer(notes, meter, capsules[k % 4], rng=rng)
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return percentiles(times)


def time_generator(method, notes, meter, repeat: int) -> dict:
    """The live generator: a bar from the cached loop, and a bar in a new emotion (the loop transferred)."""
    from affetto.daemon.generator import BarRequest
    from affetto.daemon.modes.transfer import TransferGenerator

    gen = TransferGenerator(method, meter)
    seed = tuple(notes)

    def ask(position: int, capsule: Capsule) -> BarRequest:
        return BarRequest(bar=position + 1, capsule=capsule, seed=seed, task="transfer", loop_bars=4,
                          position=position)

    cached, fresh = [], []
    for k in range(repeat):
        capsule = Capsule((1.0, k + 1.0, 0.0, 0.0))  # a new emotion each time: the loop is transferred
        t0 = time.perf_counter_ns()
        gen.serve(ask(k % 4, capsule))
        fresh.append((time.perf_counter_ns() - t0) / 1e6)
        t0 = time.perf_counter_ns()
        gen.serve(ask((k + 1) % 4, capsule))
        cached.append((time.perf_counter_ns() - t0) / 1e6)
    return {"bar_from_cache": percentiles(cached), "bar_new_emotion": percentiles(fresh)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="affetto bench transfer", description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=400, help="transfers timed per method and phrase")
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args(argv)
    from affetto.transfer.methods import available_methods, load_method
    from affetto.transfer.rule import RuleConfig, RuleTransfer

    methods = {"rule": RuleTransfer(), "rule-no-density": RuleTransfer(RuleConfig(density=False))}
    for name in available_methods():
        if name != "rule":
            methods[name] = load_method(name, threads=1)[0]
    phrases = {"pop-pattern (dense, 4/4)": phrase("pop-pattern"), "lullaby (sparse, 3/4)": phrase("lullaby")}
    load = os.getloadavg()[0]
    result: dict = {"goal_ms_p99": GOAL_MS, "repeat": args.repeat, "cpu_threads": 1, "load_1min": load,
                    "cpus": os.cpu_count(), "methods": {}}
    print(f"transfer of a 4-bar phrase, one thread, {args.repeat} calls per method and phrase "
          f"(goal: p99 <= {GOAL_MS:g} ms); {os.cpu_count()} CPUs, load {load:.2f} (a loaded machine's p99 "
          "is the scheduler's, not the method's)")
    for name, method in methods.items():
        result["methods"][name] = {}
        for label, (notes, meter) in phrases.items():
            r = time_method(method, notes, meter, args.repeat)
            result["methods"][name][label] = r
            print(f"  {name:16s} {label:26s} ({len(notes):3d} notes): p50 {r['p50']:6.2f} ms  p99 {r['p99']:6.2f} ms"
                  f"  max {r['max']:6.2f} ms  p99/goal {r['p99'] / GOAL_MS:.2f}")
        notes, meter = phrases["pop-pattern (dense, 4/4)"]
        g = time_generator(method, notes, meter, max(20, args.repeat // 4))
        result["methods"][name]["live generator"] = g
        print(f"  {name:16s} live: a bar from the cached loop p50 {g['bar_from_cache']['p50']:.3f} ms, "
              f"a bar in a new emotion p50 {g['bar_new_emotion']['p50']:.2f} ms "
              f"(p99 {g['bar_new_emotion']['p99']:.2f} ms)")
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
