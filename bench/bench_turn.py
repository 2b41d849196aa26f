"""How soon a knob turn is heard: the time from the CC to the first note of the new emotion, through JACK.

A DAW-side client (dummy-driver JACK server ``affetto-turn``, 48 kHz, 256
frames) sends MIDI clock, a 2-bar seed of broken chords in eighths, and turns
the knob (CC 20) between happy and sad every two bars, at a different place
in the bar each time. ``affetto run`` continues the seed with the shipped
model. For each turn the reaction is the time from the CC's frame to the
first note-on (the lead's channel) after it whose velocity is on the new
emotion's side of the seed's (80: sad bars are played softer than it, happy
ones louder). A bar's loudness is scaled to the emotion's, its shape kept,
so a bar whose first note the model wrote louder than the rest can open on
the old side: that note is not counted. Printed per tempo: the reactions' median,
90th percentile and maximum in ms and in beats, beside one beat + 50 ms;
``--compare`` runs the same with the revision turned off (a turn heard at the
bar lines, as before) and prints the ratio of the medians. Nothing is
asserted: these are measurements.

Usage: ``python bench/bench_turn.py [--bpm 120,160] [--turns 8] [--model m.onnx] [--compare] [--mode ensemble]
[--rng-seed 1,2,3]``
(``ensemble``: the lead with the ensemble's voices under it; the reaction is read on the lead's channel;
``--rng-seed``: the daemon's draws, one run per seed, the reactions pooled: a turn's reaction depends on
the notes drawn after it, so one seed's turns are one sample of them).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_daemon  # its JACK server start, by the server name set in main()
from soak import is_note_on, playing

RATE = bench_daemon.RATE
SERVER, PORT = "affetto-turn", "turn"
HAPPY, SAD = 85, 0  # knob values
SEED_VELOCITY = 80
CHORDS = [(60, 64, 67, 72), (57, 60, 64, 69), (53, 57, 60, 65), (55, 59, 62, 67)]
PLACES = (0.4, 1.3, 2.6, 3.2, 0.9, 2.1, 3.6, 1.7)  # beats into the bar where the knob turns


def script_for(bpm: float, turns: int) -> tuple[list[tuple[int, bytes]], list[tuple[int, int]], int]:
    """(DAW script, [(CC frame, knob value)], stop frame)."""
    beat = RATE * 60.0 / bpm
    bars = 4 + 2 * turns + 2
    script = [(0, bytes([0xB0, 20, HAPPY])), (1, bytes([0xFA]))]
    script += [(1 + round(k * beat / 24), bytes([0xF8])) for k in range(bars * 4 * 24)]
    for half, chord in enumerate(CHORDS):  # bars 0 and 1
        for i, pitch in enumerate(chord):
            at = 1 + int((half * 2 + i * 0.5) * beat)
            script += [(at, bytes([0x90, pitch, SEED_VELOCITY])), (at + int(0.5 * beat) - 64, bytes([0x80, pitch, 0]))]
    ccs = []
    for t in range(turns):
        value = SAD if t % 2 == 0 else HAPPY
        at = 1 + int(((4 + 2 * t) * 4 + PLACES[t % len(PLACES)]) * beat)
        ccs.append((at, value))
        script.append((at, bytes([0xB0, 20, value])))
    stop = int(bars * 4 * beat)
    script.append((stop, bytes([0xFC])))
    return script, ccs, stop


def reactions(received, start: int, ccs: list[tuple[int, int]]) -> list[float]:
    """Per turn, ms from the CC to the first lead note-on (channel 1) on the new emotion's side of the seed's
    velocity (the ensemble's voices, on other channels, are not counted: their loudness is not the plan's)."""
    ons = sorted((f - start, m[2]) for f, m in received if is_note_on(m) and m[0] & 0x0F == 0)
    out = []
    for at, value in ccs:
        first = next((f for f, v in ons if f > at and (v < SEED_VELOCITY if value == SAD else v > SEED_VELOCITY)),
                     None)
        if first is not None:
            out.append((first - at) / RATE * 1000)
    return out


def run(bpm: float, turns: int, model: str | None, revise_ms: float, mode: str = "continue",
        rng_seed: int = 1) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "turn.toml"
        config.write_text(f"[daemon]\nemotion = {HAPPY}\nrevise_ms = {revise_ms}\nrng_seed = {rng_seed}\n"
                          f"mode = \"{mode}\"\n", encoding="utf-8")
        cmd = [sys.executable, "-m", "affetto.daemon", "run", "--midi-api", "jack", "--clock", "midi",
               "--port-name", PORT, "--config", str(config)]
        if model:
            cmd += ["--model", model]
        with playing(cmd, dict(os.environ, PYTHONUNBUFFERED="1"), PORT, "turn-daw") as (proc, daw, _):
            script, ccs, stop = script_for(bpm, turns)
            start = daw.play(script)
            daw.wait_frame(start + stop + RATE // 2, stop / RATE * 3 + 60)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            received = list(daw.received)
    channels = {m[0] & 0x0F for _, m in received if is_note_on(m)}
    if mode == "ensemble" and not channels - {0}:
        raise SystemExit(f"ensemble mode played no voices (channels heard: {sorted(channels)})")
    return reactions(received, start, ccs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bpm", default="120,160")
    ap.add_argument("--turns", type=int, default=8)
    ap.add_argument("--model", default=None)
    ap.add_argument("--compare", action="store_true", help="also without the revision (heard at bar lines)")
    ap.add_argument("--mode", default="continue", choices=("continue", "ensemble"),
                    help="continue: the lead alone; ensemble: the lead with the ensemble's voices under it")
    ap.add_argument("--rng-seed", default="1", help="the daemon's seeds, comma-separated: one run each, pooled")
    args = ap.parse_args()
    seeds = [int(s) for s in args.rng_seed.split(",")]
    bench_daemon.SERVER = SERVER
    jackd = bench_daemon.start_jack()
    if jackd is None:
        raise SystemExit("jackd is missing or did not start")
    try:
        for bpm in (float(b) for b in args.bpm.split(",")):
            beat_ms = 60000 / bpm
            medians = {}
            for label, revise_ms in (("revised", 150.0), ("bar lines", 2000.0))[: 2 if args.compare else 1]:
                r = np.array([ms for seed in seeds for ms in run(bpm, args.turns, args.model, revise_ms, args.mode,
                                                                   seed)])
                if not len(r):
                    print(f"{bpm:.0f} BPM, {label}: no turn heard")
                    continue
                medians[label] = float(np.median(r))
                print(f"{args.mode} mode, {bpm:.0f} BPM, {label}: {len(r)}/{args.turns * len(seeds)} turns heard; "
                      f"CC -> first note of the new "
                      f"emotion p50 {np.median(r):.0f} ms ({np.median(r) / beat_ms:.2f} beats), p90 "
                      f"{np.percentile(r, 90):.0f} ms, max {r.max():.0f} ms ({r.max() / beat_ms:.2f} beats); "
                      f"one beat + 50 ms = {beat_ms + 50:.0f} ms; within it: {np.mean(r <= beat_ms + 50):.0%}")
            if len(medians) == 2:
                print(f"{bpm:.0f} BPM: bar lines / revised, median reaction: "
                      f"{medians['bar lines'] / medians['revised']:.1f}x")
    finally:
        jackd.send_signal(signal.SIGTERM)
        jackd.wait(timeout=10)


if __name__ == "__main__":
    main()
