"""How many bars affetto takes to follow the player's mood, through JACK; and what recognition costs.

A DAW-side client (dummy-driver JACK server ``affetto-follow``, 48 kHz, 256
frames) sends MIDI clock and a player who changes mood every four bars: a
soft, sparse phrase in A minor (a chord every half bar, velocity 40), then a
busy, loud one in C major (eighths, velocity 105), and back, ``--segments``
times. ``affetto run --mode continue --emotion-source follow`` (or
``contrast``) plays along with the shipped models; the knob stays at happy.

Each output bar is judged by what neither model nor the emotion plan uses:
its mode by music21's Aarden-Essen and Temperley-Kostka-Payne key estimators,
and its loudness and busyness by mean velocity and onsets per beat against the
midpoints between the two moods' output bars (measured in the same run, in
the last two bars of every segment). A bar follows the player's mood when
both estimators name the mode asked (the player's; with ``contrast`` the
other one) and both its velocity and its onsets are on the mood's side. The
lag of a change at bar ``c`` is ``k`` for the first bar ``c + k`` from which
two bars in a row follow (the goal: 2, the bar that ends plus the bar of
lookahead); the lags of valence alone and arousal alone are printed too.

``--render DIR`` also writes the performance (the player on channel 1,
affetto on channel 2, both piano) as ``DIR/<source>.mid``, renders it with
FluidSynth and ``/usr/share/sounds/sf2/FluidR3_GM.sf2`` to ``DIR/<source>.wav``,
and draws affetto's bars as ``DIR/<source>.png``: to listen to.

``--latency`` measures only the recogniser: per phrase of 1, 2 and 4 bars, the
time :func:`affetto.words.mood.recognise` takes on one thread (features and
ONNX Runtime), median and 99th percentile over ``--repeats`` calls, and how
that compares with a bar at 120 BPM. The daemon's own recognition times (its
log lines "the player sounds ...") are printed after a JACK run.

Usage: ``python bench/bench_follow.py [--bpm 120] [--segments 5] [--source follow] [--candidates 1]
[--render DIR] [--latency]``.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_daemon  # its JACK server start, by the server name set in main()
from soak import is_note_on, playing

from affetto.music.notes import Note, TimeSignature

RATE = bench_daemon.RATE
SERVER, PORT = "affetto-follow", "follow"
SEGMENT_BARS = 4
AM, DM, E7 = (57, 60, 64), (62, 65, 69), (56, 59, 62, 64)
SAD_BARS = [(AM, DM), (E7, AM), (DM, E7), (AM, AM)]  # A minor: a soft chord every half bar
BUSY_BARS = [(60, 64, 67, 72, 76, 72, 67, 64), (65, 69, 72, 77, 72, 69, 65, 69),
             (67, 71, 74, 79, 74, 71, 67, 71), (72, 67, 64, 60, 64, 67, 72, 76)]  # C F G C, eighths
SAD_VELOCITY, BUSY_VELOCITY = 40, 105


def player_bar(kind: str, k: int) -> list[Note]:
    """Bar ``k`` of a segment: the sad or the busy phrase's notes, onsets from the bar line."""
    if kind == "sad":
        return [Note(p, 2.0 * half, 1.9, SAD_VELOCITY) for half, chord in enumerate(SAD_BARS[k % len(SAD_BARS)])
                for p in chord]
    return [Note(p, 0.5 * i, 0.45, BUSY_VELOCITY) for i, p in enumerate(BUSY_BARS[k % len(BUSY_BARS)])]


def script_for(bpm: float, segments: int) -> tuple[list[tuple[int, bytes]], list[str], int]:
    """(DAW script, the mood of each segment, stop frame)."""
    beat = RATE * 60.0 / bpm
    bars = segments * SEGMENT_BARS + 2
    script = [(0, bytes([0xB0, 20, 85])), (1, bytes([0xFA]))]
    script += [(1 + round(k * beat / 24), bytes([0xF8])) for k in range(bars * 4 * 24)]
    moods = ["sad" if s % 2 == 0 else "busy" for s in range(segments)]
    for s, mood in enumerate(moods):
        for k in range(SEGMENT_BARS):
            bar = s * SEGMENT_BARS + k
            for n in player_bar(mood, k):
                on = 1 + int((bar * 4 + n.onset) * beat)
                off = on + int(n.duration * beat)
                script += [(on, bytes([0x90, n.pitch, n.velocity])), (off, bytes([0x80, n.pitch, 0]))]
    stop = int(bars * 4 * beat)
    script.append((stop, bytes([0xFC])))
    return script, moods, stop


def bars_played(received, start: int, bpm: float) -> dict[int, list[Note]]:
    beat = RATE * 60.0 / bpm
    out: dict[int, list[Note]] = {}
    for frame, m in received:
        if is_note_on(m):
            beats = (frame - start - 1) / beat
            bar = int(beats // 4)
            out.setdefault(bar, []).append(Note(m[1], max(0.0, beats - 4 * bar), 0.5, m[2]))
    return out


def performed(received, start: int, bpm: float, channel: int) -> list[Note]:
    """What was received as notes (onsets in beats from the start, durations to their note-offs)."""
    beat = RATE * 60.0 / bpm
    out, open_at = [], {}
    for frame, m in sorted(received, key=lambda e: e[0]):
        if len(m) != 3 or m[0] & 0xF0 not in (0x80, 0x90):
            continue
        t = max(0.0, (frame - start - 1) / beat)
        if is_note_on(m):
            open_at[m[1]] = (t, m[2])
        elif m[1] in open_at:
            on, velocity = open_at.pop(m[1])
            out.append(Note(m[1], on, max(t - on, 0.05), velocity, channel))
    return out


def render(folder: Path, name: str, player: list[Note], output: list[Note], bpm: float) -> None:
    import shutil
    import subprocess

    from affetto.music.midifile import write_midi
    from affetto.music.plot import piano_roll

    folder.mkdir(parents=True, exist_ok=True)
    mid = folder / f"{name}.mid"
    write_midi(mid, sorted(player + output, key=lambda n: n.onset), bpm=bpm)
    piano_roll(folder / f"{name}.png", output, meter=TimeSignature(), title=f"affetto, --emotion-source {name}")
    piano_roll(folder / f"{name}-player.png", player, meter=TimeSignature(), title="the player")
    font = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
    if shutil.which("fluidsynth") and font.exists():
        subprocess.run(["fluidsynth", "-ni", "-F", str(folder / f"{name}.wav"), "-r", "44100", str(font), str(mid)],
                       check=True, capture_output=True)
    print(f"wrote {mid}, {folder / (name + '.png')} and (with FluidSynth) {folder / (name + '.wav')}")


def judge_bars(played: dict[int, list[Note]], bars: int) -> list[dict]:
    from affetto.models.evaluation.listening import independent_keys

    out = []
    for b in range(bars):
        notes = played.get(b, [])
        keys = independent_keys(notes)
        pair = notes + [Note(n.pitch, n.onset + 4.0, n.duration, n.velocity) for n in played.get(b + 1, [])]
        out.append({"modes": {k: (v[1] if v else None) for k, v in keys.items()},
                    "pair_modes": {k: (v[1] if v else None) for k, v in independent_keys(pair).items()},
                    "onsets": len({round(n.onset * 4) for n in notes}) / 4.0,
                    "velocity": float(np.mean([n.velocity for n in notes])) if notes else 0.0})
    return out


def lags(judged: list[dict], moods: list[str], source: str) -> list[dict]:
    """Per change of mood: the lag of valence, of arousal, and of both (None: never within the segment)."""
    settled = {m: [judged[s * SEGMENT_BARS + k] for s, mm in enumerate(moods) if mm == m for k in (2, 3)
                   if s * SEGMENT_BARS + k < len(judged)] for m in ("sad", "busy")}

    def midpoint(key: str) -> float:
        return float(np.median([j[key] for j in settled["sad"]]) + np.median([j[key] for j in settled["busy"]])) / 2

    mid_v, mid_o = midpoint("velocity"), midpoint("onsets")

    def valence_ok(j: dict, mood: str) -> bool:
        want = "minor" if mood == "sad" else "major"
        if source == "contrast":
            want = "major" if want == "minor" else "minor"
        return all(v == want for v in j["pair_modes"].values())  # this bar and the next, read together

    def arousal_ok(j: dict, mood: str) -> bool:
        busy = j["velocity"] > mid_v and j["onsets"] > mid_o
        calm = j["velocity"] < mid_v and j["onsets"] < mid_o
        return busy if mood == "busy" else calm

    def lag(c: int, mood: str, ok, *, pair: bool) -> int | None:
        for k in range(SEGMENT_BARS + 1):
            if c + k + 1 < len(judged) and ok(judged[c + k], mood) and (pair or ok(judged[c + k + 1], mood)):
                return k
        return None

    out = []
    for s in range(1, len(moods)):
        c, mood = s * SEGMENT_BARS, moods[s]
        out.append({"bar": c, "to": mood, "valence": lag(c, mood, valence_ok, pair=True),
                    "arousal": lag(c, mood, arousal_ok, pair=False),
                    "both": lag(c, mood, lambda j, m: valence_ok(j, m) and arousal_ok(j, m), pair=False)})
    return out


def run(bpm: float, segments: int, source: str, model: str | None,
        render_to: Path | None = None, candidates: int | None = None) -> tuple[list[dict], list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "follow.toml"
        text = f'[daemon]\nemotion = 85\nrng_seed = 1\nemotion_source = "{source}"\n'
        if candidates is not None:
            text += f"candidates = {candidates}\n"
        config.write_text(text, encoding="utf-8")
        cmd = [sys.executable, "-m", "affetto.daemon", "run", "--midi-api", "jack", "--clock", "midi",
               "--port-name", PORT, "--config", str(config)]
        if model:
            cmd += ["--model", model]
        with playing(cmd, dict(os.environ, PYTHONUNBUFFERED="1"), PORT, "follow-daw") as (proc, daw, lines):
            script, moods, stop = script_for(bpm, segments)
            start = daw.play(script)
            daw.wait_frame(start + stop + RATE // 2, stop / RATE * 3 + 60)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            received = list(daw.received)
    if render_to is not None:
        sent = [(start + frame, data) for frame, data in script]
        render(render_to, source, performed(sent, start, bpm, 0), performed(received, start, bpm, 1), bpm)
    heard = [line.split("emotion_source: ", 1)[-1].rstrip() for line in lines if "the player sounds" in line]
    print("what the daemon heard (at each change of quadrant):\n  " + "\n  ".join(heard))
    ms = [float(m) for line in lines for m in re.findall(r"the player sounds .*\(([\d.]+) ms\)", line)]
    played = bars_played(received, start, bpm)
    judged = judge_bars(played, segments * SEGMENT_BARS + 2)
    for b, j in enumerate(judged):
        mood = moods[min(b // SEGMENT_BARS, len(moods) - 1)]
        print(f"  bar {b:2d} (player: {mood if b < segments * SEGMENT_BARS else '-':4s}): "
              f"AE {j['modes']['aarden_essen']}, TKP {j['modes']['temperley_kostka_payne']} "
              f"(with the next bar: {j['pair_modes']['aarden_essen']}, {j['pair_modes']['temperley_kostka_payne']}), "
              f"onsets/beat {j['onsets']:.2f}, velocity {j['velocity']:.0f}")
    return lags(judged, moods, source), ms


def latency(repeats: int) -> None:
    from affetto.words.mood import shipped_recogniser

    recogniser = shipped_recogniser()
    four = TimeSignature()
    bar_ms = 4 * 60000 / 120
    for bars in (1, 2, 4):
        for kind in ("sad", "busy"):
            notes = [Note(n.pitch, n.onset + 4.0 * k, n.duration, n.velocity)
                     for k in range(bars) for n in player_bar(kind, k)]
            recogniser(notes, four)  # warm
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter_ns()
                recogniser(notes, four)
                times.append((time.perf_counter_ns() - t0) / 1e6)
            t = np.array(times)
            print(f"recognise, {bars} bar(s), {kind} ({len(notes)} notes): median {np.median(t):.3f} ms, "
                  f"p99 {np.percentile(t, 99):.3f} ms; a 4/4 bar at 120 BPM is {bar_ms:.0f} ms: "
                  f"{bar_ms / np.median(t):.0f}x the median")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bpm", type=float, default=120.0)
    ap.add_argument("--segments", type=int, default=5)
    ap.add_argument("--source", choices=["follow", "contrast"], default="follow")
    ap.add_argument("--model", default=None)
    ap.add_argument("--candidates", type=int, default=None, help="bars drawn per bar (default: the model's)")
    ap.add_argument("--render", default=None, metavar="DIR", help="write MIDI, WAV and piano rolls here")
    ap.add_argument("--latency", action="store_true", help="only the recogniser's time per phrase")
    ap.add_argument("--repeats", type=int, default=2000)
    args = ap.parse_args()
    if args.latency:
        latency(args.repeats)
        return
    bench_daemon.SERVER = SERVER
    jackd = bench_daemon.start_jack()
    if jackd is None:
        raise SystemExit("jackd is missing or did not start")
    try:
        result, ms = run(args.bpm, args.segments, args.source, args.model,
                         Path(args.render) if args.render else None, args.candidates)
    finally:
        jackd.send_signal(signal.SIGTERM)
        jackd.wait(timeout=10)
    for r in result:
        print(f"change at bar {r['bar']} to {r['to']}: bars to follow: valence {r['valence']}, "
              f"arousal {r['arousal']}, both {r['both']}")
    both = [r["both"] for r in result]
    heard = [b for b in both if b is not None]
    print(f"{args.source} at {args.bpm:.0f} BPM: {len(heard)}/{len(both)} changes followed; bars to follow "
          f"(both): median {np.median(heard) if heard else float('nan'):.1f}, max {max(heard) if heard else None}; "
          f"goal <= 2")
    if ms:
        print(f"recognition in the daemon (its log, at changes of mood): median {np.median(ms):.2f} ms, "
              f"max {max(ms):.2f} ms over {len(ms)} lines")


if __name__ == "__main__":
    main()
