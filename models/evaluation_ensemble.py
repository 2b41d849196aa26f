"""How good is the ensemble: MuseGAN's metrics and harmonisation figures, beside the held-out chorales.

The model runs as the user runs it (the exported ``.onnx`` in ONNX Runtime,
rolls binarised per step and voice). Data figures come from the same
held-out phrases (chorales the training never saw; no transpositions, no
parallel-mode copies).

MuseGAN's metrics (Dong et al., 2018), per track: empty bars (share of bars
with no note), used pitch classes per non-empty bar, qualified notes (share
of notes at least 3 sixteenths long), and the tonal distance between track
pairs (Harte et al.'s 6-D tonal centroid per bar, mean Euclidean distance
over bars where both tracks sound).

Harmonisation of each held-out soprano line (the model writes alto, tenor
and bass): share of sounding steps whose interval to the melody is
consonant (unison/octave, thirds, sixths, fifths; fourths count against the
upper voices only), parallel fifths and octaves per bar over the six voice
pairs, notes inside each voice's usual range, the share of beats whose
sounding notes make a minor triad when harmonised as sad (Q3) and as happy
(Q1), and inner-voice (alto + tenor) onsets per beat at high and low arousal.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from affetto.ensemble import Ensemble, binarise
from affetto.judge import estimate_key

from .musegan.data import LOW, TRACKS, VOICE_RANGES, build_splits, load_chorales, to_roll

QUALIFIED_STEPS = 3
CONSONANT_UPPER = {0, 3, 4, 5, 7, 8, 9}
CONSONANT_BASS = {0, 3, 4, 7, 8, 9}
Q1, Q2, Q3, Q4 = np.eye(4, dtype=np.float32)


# ---- rolls -> lines and notes -----------------------------------------------------------
def lines(rolls: np.ndarray, triple: np.ndarray) -> list[np.ndarray]:
    """Binary rolls (N, T, bars, 16, P) -> per phrase a (T, steps) pitch array (-1 rest), padding removed."""
    out = []
    for roll, tri in zip(rolls, triple.reshape(-1)):
        per_bar = 12 if tri > 0.5 else 16
        r = roll[:, :, :per_bar]  # (T, bars, per_bar, P)
        sounding = r.any(-1)
        pitch = np.where(sounding, LOW + r.argmax(-1), -1)
        out.append(pitch.reshape(r.shape[0], -1))
    return out


def runs(line: np.ndarray) -> list[tuple[int, int, int]]:
    """(start step, length, pitch) of each note of one line."""
    notes, start = [], 0
    for s in range(1, len(line) + 1):
        if s == len(line) or line[s] != line[start]:
            if line[start] >= 0:
                notes.append((start, s - start, int(line[start])))
            start = s
    return notes


# ---- MuseGAN's metrics ---------------------------------------------------------------------
def _tonal_centroid(chroma: np.ndarray) -> np.ndarray:
    """Harte, Sandler & Gasser (2006): chroma (..., 12) -> 6-D tonal centroid."""
    k = np.arange(12)
    phi = np.stack([
        np.sin(k * 7 * np.pi / 6), np.cos(k * 7 * np.pi / 6),
        np.sin(k * 3 * np.pi / 2), np.cos(k * 3 * np.pi / 2),
        0.5 * np.sin(k * 2 * np.pi / 3), 0.5 * np.cos(k * 2 * np.pi / 3),
    ])  # (6, 12)
    norm = chroma.sum(-1, keepdims=True)
    return (chroma / np.maximum(norm, 1e-9)) @ phi.T


def musegan_metrics(rolls: np.ndarray, triple: np.ndarray) -> dict[str, Any]:
    """Per-track metrics of binary rolls (N, T, bars, 16, P)."""
    bars_sounding = rolls.any((-1, -2))  # (N, T, bars)
    out: dict[str, Any] = {"empty_bars": {}, "used_pitch_classes": {}, "qualified_notes": {}, "tonal_distance": {}}
    chroma = np.zeros((*rolls.shape[:3], 12))
    for pc in range(12):
        chroma[..., pc] = rolls[..., (np.arange(rolls.shape[-1]) + LOW) % 12 == pc].sum((-1, -2))
    for t, name in enumerate(TRACKS):
        out["empty_bars"][name] = float(1 - bars_sounding[:, t].mean())
        used = (chroma[:, t] > 0).sum(-1)[bars_sounding[:, t]]
        out["used_pitch_classes"][name] = float(used.mean()) if used.size else 0.0
        lengths = [n[1] for ln in lines(rolls, triple) for n in runs(ln[t])]
        out["qualified_notes"][name] = float(np.mean(np.array(lengths) >= QUALIFIED_STEPS)) if lengths else 0.0
    centroid = _tonal_centroid(chroma)  # (N, T, bars, 6)
    for a, b in itertools.combinations(range(len(TRACKS)), 2):
        both = bars_sounding[:, a] & bars_sounding[:, b]
        d = np.linalg.norm(centroid[:, a] - centroid[:, b], axis=-1)[both]
        out["tonal_distance"][f"{TRACKS[a]}-{TRACKS[b]}"] = float(d.mean()) if d.size else float("nan")
    return out


# ---- harmonisation figures -----------------------------------------------------------------
def consonance(line: np.ndarray) -> tuple[int, int]:
    """(consonant, sounding) steps of alto, tenor and bass against the soprano (line is (4, steps))."""
    good = total = 0
    for t in (1, 2, 3):
        both = (line[0] >= 0) & (line[t] >= 0)
        interval = (line[0][both] - line[t][both]) % 12
        allowed = CONSONANT_BASS if t == 3 else CONSONANT_UPPER
        good += int(np.isin(interval, list(allowed)).sum())
        total += int(both.sum())
    return good, total


def parallels(line: np.ndarray) -> int:
    """Parallel fifths and octaves (incl. unisons) between any two voices, moving in the same direction."""
    count = 0
    for a, b in itertools.combinations(range(line.shape[0]), 2):
        both = (line[a] >= 0) & (line[b] >= 0)
        pairs = [(int(x), int(y)) for x, y in zip(line[a][both], line[b][both])]
        pairs = [p for i, p in enumerate(pairs) if i == 0 or p != pairs[i - 1]]
        for (x0, y0), (x1, y1) in itertools.pairwise(pairs):
            i0, i1 = (x0 - y0) % 12, (x1 - y1) % 12
            if i0 == i1 and i0 in (0, 7) and x0 != x1 and y0 != y1 and (x1 - x0) * (y1 - y0) > 0:
                count += 1
    return count


def in_range(line: np.ndarray) -> dict[str, list[int]]:
    """Per voice: [notes inside its usual range, notes]."""
    out = {}
    for t, name in enumerate(TRACKS):
        lo, hi = VOICE_RANGES[name]
        pitches = [n[2] for n in runs(line[t])]
        out[name] = [sum(lo <= p <= hi for p in pitches), len(pitches)]
    return out


def chord_shares(line: np.ndarray, per_bar: int) -> tuple[float, float, int]:
    """(minor-triad share, major-triad share, beats) over the beats of a phrase."""
    minor = major = beats = 0
    for s in range(0, line.shape[1], 4):
        pcs = {int(p) % 12 for p in line[:, s] if p >= 0}
        beats += 1
        if len(pcs) == 3:
            for root in pcs:
                if pcs == {root, (root + 3) % 12, (root + 7) % 12}:
                    minor += 1
                if pcs == {root, (root + 4) % 12, (root + 7) % 12}:
                    major += 1
    return minor / max(beats, 1), major / max(beats, 1), beats


def inner_activity(line: np.ndarray, per_bar: int) -> float:
    """Onsets per beat of alto and tenor together."""
    beats = line.shape[1] / 4
    return sum(len(runs(line[t])) for t in (1, 2)) / beats


def harmony_figures(all_lines: list[np.ndarray], triple: np.ndarray) -> dict[str, Any]:
    good = total = par = bars = 0
    ranges = {name: [0, 0] for name in TRACKS}
    for line, tri in zip(all_lines, triple.reshape(-1)):
        g, t = consonance(line)
        good, total = good + g, total + t
        par += parallels(line)
        bars += line.shape[1] // (12 if tri > 0.5 else 16)
        for name, (inside, count) in in_range(line).items():
            ranges[name][0] += inside
            ranges[name][1] += count
    return {
        "consonant_share": good / max(total, 1),
        "parallels_per_bar": par / max(bars, 1),
        "in_range": {k: v[0] / max(v[1], 1) for k, v in ranges.items()},
    }


# ---- the whole evaluation -------------------------------------------------------------------
def _run(ens: Ensemble, melody: np.ndarray, has: float, capsule: np.ndarray, triple: np.ndarray,
         seed: int) -> np.ndarray:
    n = len(triple)
    probs = ens.run(melody, np.full((n, 1), has, np.float32), np.tile(capsule, (n, 1)), triple,
                    ens.latents(n, np.random.default_rng(seed)))
    rolls = binarise(probs, ens.threshold)
    if has:
        rolls[:, 0] = melody > 0.5
    return rolls


def speed(ens: Ensemble, repeat: int = 300) -> dict[str, float]:
    """Milliseconds per harmonised 4-bar phrase (batch 1, the session's threads), after a warm-up."""
    import time

    s = ens.spec
    melody = np.zeros((1, s.bars, s.steps, s.pitches), np.float32)
    melody[0, :, ::4, 30] = 1.0
    args = (melody, np.ones((1, 1), np.float32), np.eye(4, dtype=np.float32)[:1], np.zeros((1, 1), np.float32))
    z = ens.latents(1, np.random.default_rng(0))
    for _ in range(20):
        ens.run(*args, z)
    times = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        ens.run(*args, z)
        times.append((time.perf_counter_ns() - start) / 1e6)
    return {"phrase_ms_p50": float(np.percentile(times, 50)), "phrase_ms_p99": float(np.percentile(times, 99)),
            "bars_per_phrase": s.bars}


def evaluate(model: str | Path | None = None, *, phrases: int = 200, seed: int = 0) -> dict[str, Any]:
    ens = Ensemble(model)
    test = build_splits(load_chorales(progress=False))["test"]
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(test), size=min(phrases, len(test)), replace=False))
    real = to_roll(test.pitch[pick].astype(np.int64), test.onset[pick], ens.spec.bars) > 0.5  # (N, 4, bars, 16, P)
    triple = test.triple[pick].astype(np.float32)[:, None]
    melody = real[:, 0].astype(np.float32)
    none = np.zeros(4, np.float32)

    free = _run(ens, np.zeros_like(melody), 0.0, none, triple, seed)
    harmonised = _run(ens, melody, 1.0, none, triple, seed)
    real_lines, harm_lines = lines(real, triple), lines(harmonised, triple)
    report: dict[str, Any] = {
        "model": str(ens.path),
        "phrases": len(pick),
        "chorales": len({n.split(":")[0] for n in np.array(test.names)[pick]}),
        "musegan": {"data": musegan_metrics(real, triple), "free": musegan_metrics(free, triple),
                    "harmonised": musegan_metrics(harmonised, triple)},
        "harmony": {"data": harmony_figures(real_lines, triple), "model": harmony_figures(harm_lines, triple)},
    }

    by_mood = {}
    for name, cap in (("happy", Q1), ("tense", Q2), ("sad", Q3), ("calm", Q4)):
        by_mood[name] = lines(_run(ens, melody, 1.0, cap, triple, seed), triple)
    shares = {name: [chord_shares(ln, 16)[:2] for ln in by_mood[name]] for name in by_mood}
    sad_minor = np.array([s[0] for s in shares["sad"]])
    happy_minor = np.array([s[0] for s in shares["happy"]])
    minor_key = []
    for i in range(len(pick)):
        sop = real_lines[i][0]
        sop = sop[sop >= 0]
        tonic, mode, _ = estimate_key(sop, np.ones(len(sop)))
        if mode == "minor":
            minor_key.append((i, tonic))

    def tonic_minor(lines_: list[np.ndarray]) -> float:
        minor = chords = 0
        for i, tonic in minor_key:
            for s in range(0, lines_[i].shape[1], 4):
                pcs = {int(p) % 12 for p in lines_[i][:, s] if p >= 0}
                if pcs == {tonic, (tonic + 3) % 12, (tonic + 7) % 12}:
                    minor, chords = minor + 1, chords + 1
                elif pcs == {tonic, (tonic + 4) % 12, (tonic + 7) % 12}:
                    chords += 1
        return minor / chords if chords else float("nan")

    activity = {name: np.array([inner_activity(ln, 16) for ln in by_mood[name]]) for name in by_mood}
    data_activity = np.array([inner_activity(ln, 16) for ln in real_lines])
    report["emotion"] = {
        "minor_triad_share": {name: float(np.mean([s[0] for s in v])) for name, v in shares.items()},
        "major_triad_share": {name: float(np.mean([s[1] for s in v])) for name, v in shares.items()},
        "data_minor_triad_share": float(np.mean([chord_shares(ln, 16)[0] for ln in real_lines])),
        "melodies_sad_more_minor_than_happy": float(np.mean(sad_minor > happy_minor)),
        "melodies_sad_at_least_as_minor_as_happy": float(np.mean(sad_minor >= happy_minor)),
        "minor_key_melodies": len(minor_key),
        "tonic_triads_minor_in_minor_melodies": {name: tonic_minor(by_mood[name]) for name in ("happy", "sad")},
        "inner_onsets_per_beat": {name: float(v.mean()) for name, v in activity.items()},
        "data_inner_onsets_per_beat": float(data_activity.mean()),
        "melodies_happy_busier_than_calm": float(np.mean(activity["happy"] > activity["calm"])),
        "melodies_tense_busier_than_sad": float(np.mean(activity["tense"] > activity["sad"])),
    }
    report["speed_one_thread"] = speed(ens)
    return report


def markdown(report: dict[str, Any]) -> str:
    m, h, e = report["musegan"], report["harmony"], report["emotion"]
    rows = [f"ensemble eval: {report['model']} on {report['phrases']} held-out phrases "
            f"({report['chorales']} chorales)", "",
            "| metric | track | data | free | harmonised |", "|---|---|---|---|---|"]
    for metric in ("empty_bars", "used_pitch_classes", "qualified_notes", "tonal_distance"):
        for track in m["data"][metric]:
            rows.append(f"| {metric} | {track} | {m['data'][metric][track]:.3f} | {m['free'][metric][track]:.3f} | "
                        f"{m['harmonised'][metric][track]:.3f} |")
    rows += ["", "| harmonisation of held-out sopranos | data | model |", "|---|---|---|",
             f"| consonant share vs melody | {h['data']['consonant_share']:.3f} | "
             f"{h['model']['consonant_share']:.3f} |",
             f"| parallel 5ths/8ves per bar | {h['data']['parallels_per_bar']:.3f} | "
             f"{h['model']['parallels_per_bar']:.3f} |"]
    for voice in h["data"]["in_range"]:
        rows.append(f"| {voice} notes in range | {h['data']['in_range'][voice]:.3f} | "
                    f"{h['model']['in_range'][voice]:.3f} |")
    sp = report.get("speed_one_thread")
    if sp:
        rows += ["", f"speed, one CPU thread: {sp['phrase_ms_p50']:.2f} ms per 4-bar phrase (p50), "
                 f"{sp['phrase_ms_p99']:.2f} ms (p99)"]
    rows += ["", "| emotion | value |", "|---|---|"]
    for key, value in e.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v:.3f}" for k, v in value.items())
        elif isinstance(value, float):
            value = f"{value:.3f}"
        rows.append(f"| {key} | {value} |")
    return "\n".join(rows)
