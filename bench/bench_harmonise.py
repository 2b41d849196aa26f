"""Harmonise benchmark: what a live harmonised bar costs, on one CPU thread (prints numbers, no pass/fail).

- ``harmonise mode``: a loop of 1, 2, 4 or 8 bars under an emotion not seen before (the whole loop is
  harmonised: one 4-bar phrase, two for an 8-bar loop), and a bar of a loop already harmonised (a
  lookup), at 8, 4 and 1 candidates (the ensemble's default among them).
- ``ensemble mode``: the voices under one lead bar (a 4-bar window), without the lead's own cost.

- ``--against REV``: a new 4-bar phrase at the default candidates, this checkout against the ``affetto``
  package of git revision ``REV``, interleaved in one run (a busy machine slows both alike), same inputs;
  says whether the two write the same voices.

Usage: ``python bench/bench_harmonise.py [--model ensemble.onnx] [--repeat 200] [--against REV]``.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

from affetto.analysis.emotion import Capsule
from affetto.ensemble.accompany import Band, LoopHarmoniser
from affetto.ensemble.engine import COMPARED_CANDIDATES, load_voices, melody_roll
from affetto.music.notes import Note, TimeSignature


def loop_of(bars: int) -> list[Note]:
    """A melody of quarter notes over ``bars`` bars, stepping through a C major scale."""
    scale = (60, 62, 64, 65, 67, 69, 71, 72)
    return [Note(scale[(i * 3) % 8] + 12 * (i % 2), float(i), 1.0, 90) for i in range(4 * bars)]


def capsule(i: int) -> Capsule:
    """A different emotion every call (the knob moving), so nothing is looked up."""
    return Capsule((1.0 + i % 7, 0.5 + (i % 3) / 3, 0.2 + (i % 5) / 5, 0.1 + i / 1000))


def ms(samples: list[float]) -> str:
    return f"p50 {np.percentile(samples, 50):6.2f} ms, p99 {np.percentile(samples, 99):6.2f} ms"


class LeadStub:
    """A lead whose bars cost nothing: four quarter notes."""

    meter = TimeSignature()

    def prime(self, seed) -> None:
        pass

    def generate_bar(self, capsule, sampling=None, *, rng=None) -> list[Note]:
        return [Note(64 + k, float(k), 1.0, 90) for k in range(4)]


def package_at(rev: str, into: Path) -> str:
    """The ``affetto`` package of git revision ``rev`` under ``into`` as the package ``affetto_then`` (its
    own imports renamed), beside this one in the same process; returns its name."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "-C", str(root), "archive", rev, "affetto"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "affetto").rename(into / "affetto_then")
    for path in (into / "affetto_then").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        path.write_text(re.sub(r"\b(from|import) affetto\b", r"\1 affetto_then", text), encoding="utf-8")
    sys.path.insert(0, str(into))
    return "affetto_then"


def against(rev: str, model: str | None, repeat: int) -> None:
    """A new 4-bar phrase at the default candidates: this checkout and revision ``rev``, interleaved."""
    meter = TimeSignature()
    with tempfile.TemporaryDirectory() as tmp:
        then = package_at(rev, Path(tmp))
        old_engine = importlib.import_module(f"{then}.ensemble.engine")
        old_accompany = importlib.import_module(f"{then}.ensemble.accompany")
        old_notes = importlib.import_module(f"{then}.music.notes")
        old_emotion = importlib.import_module(f"{then}.analysis.emotion")
        paths = {"now": (load_voices(model, meter), LoopHarmoniser, loop_of(4), capsule),
                 rev: (old_engine.load_voices(model, old_notes.TimeSignature()), old_accompany.LoopHarmoniser,
                       [old_notes.Note(n.pitch, n.onset, n.duration, n.velocity) for n in loop_of(4)],
                       lambda i: old_emotion.Capsule(capsule(i).weights))}
        wall: dict[str, list[float]] = {name: [] for name in (*paths, "graph")}
        cpu: dict[str, list[float]] = {name: [] for name in wall}  # this thread's CPU time: less swayed by load
        same = 0
        for voices, harmoniser, loop, cap in paths.values():  # warm both sessions
            harmoniser(voices).harmonise_bar(loop, 4, 0, cap(0))
        ens = paths["now"][0].ensemble
        s = ens.spec
        melody = np.repeat(melody_roll(loop_of(4), meter, s.bars, s)[None], ens.candidates, 0)
        rng = np.random.default_rng(0)
        for i in range(repeat):
            written = []
            for name, (voices, harmoniser, loop, cap) in paths.items():
                h = harmoniser(voices)
                t0, c0 = time.perf_counter(), time.thread_time()
                h.harmonise_bar(loop, 4, 0, cap(i))
                cpu[name].append((time.thread_time() - c0) * 1e3)
                wall[name].append((time.perf_counter() - t0) * 1e3)
                written.append([(n.pitch, n.onset, n.duration, n.channel)  # the whole phrase, looked up
                                for bar in range(4) for n in h.harmonise_bar(loop, 4, bar, cap(i))])
            same += written[0] == written[1]
            k = len(melody)  # the graph alone: the phrase's draws in one batch
            weights = np.tile(np.array(capsule(i).weights, np.float32), (k, 1))
            feeds = (melody, np.ones((k, 1)), weights, np.zeros((k, 1)))
            z = ens.latents(k, rng)
            t0, c0 = time.perf_counter(), time.thread_time()
            ens.run(*feeds, z)
            cpu["graph"].append((time.thread_time() - c0) * 1e3)
            wall["graph"].append((time.perf_counter() - t0) * 1e3)
    for label, times in (("wall clock", wall), ("CPU time of the thread", cpu)):
        ratio = {q: np.percentile(times["now"], q) / np.percentile(times[rev], q) for q in (50, 99)}
        print(f"new 4-bar phrase, default candidates, interleaved, {label}: this checkout {ms(times['now'])}; "
              f"{rev} {ms(times[rev])}; ratio of p50s {ratio[50]:.2f}x, of p99s {ratio[99]:.2f}x; "
              f"the graph alone ({ens.candidates} draws) {ms(times['graph'])}")
    print(f"the same voices in {same} of {repeat} phrases")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="ensemble .onnx (default: the shipped one)")
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--against", metavar="REV", help="time this checkout against git revision REV, interleaved")
    args = ap.parse_args()
    meter = TimeSignature()
    print(f"harmonise benchmark | {os.cpu_count()} CPUs, one ONNX Runtime thread | load {os.getloadavg()[0]:.2f}")
    if args.against:
        against(args.against, args.model, args.repeat)
        return
    default = load_voices(args.model, meter)
    k_default = default.ensemble.candidates
    for candidates in sorted({k_default, 1, 4, COMPARED_CANDIDATES}, reverse=True):
        voices = load_voices(args.model, meter, candidates=candidates)
        LoopHarmoniser(voices).harmonise_bar(loop_of(1), 1, 0, capsule(0))  # warm the session
        print(f"\ncandidates {candidates}{' (default)' if candidates == k_default else ''}")
        for bars in (1, 2, 4, 8):
            loop = loop_of(bars)
            new, seen = [], []
            harmoniser = LoopHarmoniser(voices)
            for i in range(args.repeat):
                t0 = time.perf_counter()
                harmoniser.harmonise_bar(loop, bars, i, capsule(i))
                new.append((time.perf_counter() - t0) * 1e3)
                t0 = time.perf_counter()
                harmoniser.harmonise_bar(loop, bars, i, capsule(i))  # the same bar, already voiced
                seen.append((time.perf_counter() - t0) * 1e3)
            print(f"  harmonise mode, {bars}-bar loop: new loop or emotion {ms(new)}; a bar already voiced {ms(seen)}")
        band = Band(LeadStub(), voices)
        band.prime([])
        times = []
        for i in range(args.repeat):
            t0 = time.perf_counter()
            band.generate_bar(capsule(i))
            times.append((time.perf_counter() - t0) * 1e3)
        print(f"  ensemble mode, voices under one lead bar: {ms(times)}")
    # the emotion's levers (tonal centre, colour, motion) against the draws alone, interleaved in one run
    with_levers, without = load_voices(args.model, meter), load_voices(args.model, meter)
    without.ensemble.colour = False
    times = {"levers": [], "plain": []}
    loop = loop_of(4)
    for i in range(args.repeat):
        for name, voices in (("levers", with_levers), ("plain", without)):
            t0 = time.perf_counter()
            LoopHarmoniser(voices).harmonise_bar(loop, 4, 0, capsule(i))
            times[name].append((time.perf_counter() - t0) * 1e3)
    print(f"\nnew 4-bar phrase, default candidates: with the emotion's levers {ms(times['levers'])}; "
          f"the draws alone {ms(times['plain'])}; ratio of p50s "
          f"{np.percentile(times['levers'], 50) / np.percentile(times['plain'], 50):.2f}x")


if __name__ == "__main__":
    main()
