"""Harmonise benchmark: what a live harmonised bar costs, on one CPU thread (prints numbers, no pass/fail).

- ``harmonise mode``: a loop of 1, 2, 4 or 8 bars under an emotion not seen before (the whole loop is
  harmonised: one 4-bar phrase, two for an 8-bar loop), and a bar of a loop already harmonised (a
  lookup), with the ensemble's default candidates and with fewer.
- ``ensemble mode``: the voices under one lead bar (a 4-bar window), without the lead's own cost.

Usage: ``python bench/bench_harmonise.py [--model ensemble.onnx] [--repeat 200]``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from affetto.analysis.emotion import Capsule
from affetto.ensemble.accompany import Band, LoopHarmoniser
from affetto.ensemble.engine import load_voices
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="ensemble .onnx (default: the shipped one)")
    ap.add_argument("--repeat", type=int, default=200)
    args = ap.parse_args()
    meter = TimeSignature()
    print(f"harmonise benchmark | {os.cpu_count()} CPUs, one ONNX Runtime thread | load {os.getloadavg()[0]:.2f}")
    default = load_voices(args.model, meter)
    k_default = default.ensemble.candidates
    for candidates in (k_default, max(1, k_default // 2), 1):
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
