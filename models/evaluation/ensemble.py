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
upper voices only), the share of the voices' sounding steps inside the
melody's key (``estimate_key`` on the soprano; major, or minor with its
raised seventh), parallel fifths and octaves per bar over the six voice
pairs, notes inside each voice's usual range, the share of beats whose
sounding notes make a minor triad when harmonised as sad (Q3) and as happy
(Q1), and inner-voice (alto + tenor) onsets per beat at high and low arousal.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from affetto.analysis.judge import estimate_key
from affetto.analysis.voicing import VOICE_RANGES, chord_shares, consonance, inner_activity, parallels, runs
from affetto.analysis.voicing import lines as roll_lines
from affetto.ensemble.engine import COMPARED_CANDIDATES, Ensemble
from affetto.models.musegan.data import LOW, TRACKS, build_splits, load_chorales, to_roll

QUALIFIED_STEPS = 3
Q1, Q2, Q3, Q4 = np.eye(4, dtype=np.float32)


def lines(rolls: np.ndarray, triple: np.ndarray) -> list[np.ndarray]:
    """Binary rolls (N, T, bars, 16, P) -> per phrase a (T, steps) pitch array (-1 rest), padding removed."""
    return roll_lines(rolls, triple, LOW)


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
    bars_sounding = np.asarray(rolls.any((-1, -2)))  # (N, T, bars); numpy types any() over axes as maybe a scalar
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
def in_range(line: np.ndarray) -> dict[str, list[int]]:
    """Per voice: [notes inside its usual range, notes]."""
    out = {}
    for t, name in enumerate(TRACKS):
        lo, hi = VOICE_RANGES[name]
        pitches = [n[2] for n in runs(line[t])]
        out[name] = [sum(lo <= p <= hi for p in pitches), len(pitches)]
    return out


MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10, 11)  # natural minor and the raised leading note


def in_key(line: np.ndarray) -> tuple[int, int]:
    """(sounding steps of alto, tenor and bass inside the melody's key, sounding steps)."""
    sop = line[0][line[0] >= 0]
    tonic, mode, _ = estimate_key(sop, np.ones(len(sop)))
    scale = [(tonic + d) % 12 for d in (MAJOR_SCALE if mode == "major" else MINOR_SCALE)]
    voices = line[1:][line[1:] >= 0]
    return int(np.isin(voices % 12, scale).sum()), len(voices)


def harmony_figures(all_lines: list[np.ndarray], triple: np.ndarray) -> dict[str, Any]:
    good = total = par = bars = keyed = sounding = 0
    ranges = {name: [0, 0] for name in TRACKS}
    for line, tri in zip(all_lines, triple.reshape(-1)):
        k, n = in_key(line)
        keyed, sounding = keyed + k, sounding + n
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
        "in_melody_key_share": keyed / max(sounding, 1),
        "in_range": {k: v[0] / max(v[1], 1) for k, v in ranges.items()},
    }


# ---- the whole evaluation -------------------------------------------------------------------
def _run(ens: Ensemble, melody: np.ndarray | None, capsule: np.ndarray, triple: np.ndarray, seed: int,
         candidates: int) -> np.ndarray:
    from affetto.analysis.emotion import Capsule

    return ens.voice_phrases(melody, triple, Capsule(tuple(capsule)), np.random.default_rng(seed), candidates)


def music21_mode(line: np.ndarray) -> str:
    """Mode of a phrase as music21's Aarden-Essen key finder hears it (a judge the ensemble never selects with)."""
    from music21 import analysis, note, stream

    s: stream.Stream[note.Note] = stream.Stream()
    for voice in line:
        for start, length, pitch in runs(voice):
            n = note.Note(pitch)
            n.quarterLength = length / 4
            s.insert(start / 4, n)
    return analysis.discrete.AardenEssen(s).getSolution(s).mode


def speed(ens: Ensemble, repeat: int = 200) -> dict[str, float]:
    """Milliseconds per harmonised 4-bar phrase on the session's threads: the graph alone at batch 1, and
    the whole choice among the model's candidates (one batch of K draws, then the judge)."""
    import time

    from affetto.analysis.emotion import Capsule, Quadrant

    s = ens.spec
    melody = np.zeros((1, s.bars, s.steps, s.pitches), np.float32)
    melody[0, :, ::4, 30] = 1.0
    args = (melody, np.ones((1, 1), np.float32), np.eye(4, dtype=np.float32)[:1], np.zeros((1, 1), np.float32))
    z = ens.latents(1, np.random.default_rng(0))
    rng = np.random.default_rng(0)
    triple = np.zeros((1, 1), np.float32)

    def timed(fn) -> np.ndarray:
        for _ in range(10):
            fn()
        times = []
        for _ in range(repeat):
            start = time.perf_counter_ns()
            fn()
            times.append((time.perf_counter_ns() - start) / 1e6)
        return np.array(times)

    graph = timed(lambda: ens.run(*args, z))
    chosen = timed(lambda: ens.voice_phrases(melody, triple, Capsule.of(Quadrant.Q3), rng))
    judged = timed(lambda: ens.voice_phrases(melody, triple, Capsule.of(Quadrant.Q3), rng, COMPARED_CANDIDATES))
    return {"graph_ms_p50": float(np.percentile(graph, 50)), "graph_ms_p99": float(np.percentile(graph, 99)),
            "chosen_ms_p50": float(np.percentile(chosen, 50)), "chosen_ms_p99": float(np.percentile(chosen, 99)),
            "candidates": ens.candidates, "bars_per_phrase": s.bars,
            "compared_candidates": COMPARED_CANDIDATES, "compared_ms_p50": float(np.percentile(judged, 50)),
            "compared_ms_p99": float(np.percentile(judged, 99))}


def compared(ens: Ensemble) -> list[int]:
    """The candidate counts measured: one draw, the model's default and the judge's pick of
    :data:`~affetto.ensemble.engine.COMPARED_CANDIDATES`."""
    return sorted({1, ens.candidates, COMPARED_CANDIDATES})


def evaluate(model: str | Path | None = None, *, phrases: int = 200, seed: int = 0) -> dict[str, Any]:
    ens = Ensemble(model)
    test = build_splits(load_chorales(progress=False))["test"]
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(test), size=min(phrases, len(test)), replace=False))
    real = to_roll(test.pitch[pick].astype(np.int64), test.onset[pick], ens.spec.bars) > 0.5  # (N, 4, bars, 16, P)
    triple = test.triple[pick].astype(np.float32)[:, None]
    melody = real[:, 0].astype(np.float32)
    none = np.zeros(4, np.float32)

    report: dict[str, Any] = {
        "model": str(ens.path),
        "phrases": len(pick),
        "chorales": len({n.split(":")[0] for n in np.array(test.names)[pick]}),
        "data": {"musegan": musegan_metrics(real, triple), "harmony": harmony_figures(lines(real, triple), triple),
                 "minor_triad_share": float(np.mean([chord_shares(ln)[0] for ln in lines(real, triple)])),
                 "inner_onsets_per_beat": float(np.mean([inner_activity(ln) for ln in lines(real, triple)]))},
        "candidates": {},
    }
    real_lines = lines(real, triple)
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

    for k in compared(ens):
        free = _run(ens, None, none, triple, seed, k)
        harmonised = _run(ens, melody, none, triple, seed, k)
        by_mood = {name: lines(_run(ens, melody, cap, triple, seed, k), triple)
                   for name, cap in (("happy", Q1), ("tense", Q2), ("sad", Q3), ("calm", Q4))}
        shares = {name: [chord_shares(ln)[:2] for ln in v] for name, v in by_mood.items()}
        sad_minor = np.array([s[0] for s in shares["sad"]])
        happy_minor = np.array([s[0] for s in shares["happy"]])
        activity = {name: np.array([inner_activity(ln) for ln in v]) for name, v in by_mood.items()}
        judged = {name: [music21_mode(ln) for ln in by_mood[name]] for name in ("happy", "sad")}
        report["candidates"][str(k)] = {
            "musegan": {"free": musegan_metrics(free, triple), "harmonised": musegan_metrics(harmonised, triple)},
            "harmony": harmony_figures(lines(harmonised, triple), triple),
            "harmony_by_mood": {name: harmony_figures(v, triple) for name, v in by_mood.items()},
            "emotion": {
                "minor_triad_share": {name: float(np.mean([s[0] for s in v])) for name, v in shares.items()},
                "major_triad_share": {name: float(np.mean([s[1] for s in v])) for name, v in shares.items()},
                "melodies_sad_more_minor_than_happy": float(np.mean(sad_minor > happy_minor)),
                "melodies_sad_at_least_as_minor_as_happy": float(np.mean(sad_minor >= happy_minor)),
                "minor_key_melodies": len(minor_key),
                "tonic_triads_minor_in_minor_melodies": {name: tonic_minor(by_mood[name])
                                                         for name in ("happy", "sad")},
                "music21_judged_minor": {name: float(np.mean([m == "minor" for m in v]))
                                         for name, v in judged.items()},
                "inner_onsets_per_beat": {name: float(v.mean()) for name, v in activity.items()},
                "melodies_happy_busier_than_calm": float(np.mean(activity["happy"] > activity["calm"])),
                "melodies_tense_busier_than_sad": float(np.mean(activity["tense"] > activity["sad"])),
            },
        }
    raw = Ensemble(model, voice_leading=False)  # the draws as they came, before the voice-leading rules
    report["without_voice_leading_rules"] = {
        str(k): harmony_figures(lines(_run(raw, melody, none, triple, seed, k), triple), triple)
        for k in compared(ens)}
    report["speed_one_thread"] = speed(ens)
    return report


def markdown(report: dict[str, Any]) -> str:
    d, c = report["data"], report["candidates"]
    ks = list(c)
    rows = [f"ensemble eval: {report['model']} on {report['phrases']} held-out phrases "
            f"({report['chorales']} chorales); model columns at {' and '.join(ks)} candidate(s) per phrase", ""]
    head = " | ".join(f"free k={k} | harmonised k={k}" for k in ks)
    rows += [f"| metric | track | data | {head} |", "|---|---|---|" + "---|---|" * len(ks)]
    for metric in ("empty_bars", "used_pitch_classes", "qualified_notes", "tonal_distance"):
        for track in d["musegan"][metric]:
            cells = " | ".join(f"{c[k]['musegan']['free'][metric][track]:.3f} | "
                               f"{c[k]['musegan']['harmonised'][metric][track]:.3f}" for k in ks)
            rows.append(f"| {metric} | {track} | {d['musegan'][metric][track]:.3f} | {cells} |")
    rows += ["", "| harmonised held-out sopranos | data | " + " | ".join(f"k={k}" for k in ks) + " |",
             "|---|---|" + "---|" * len(ks)]
    rows.append("| consonant share vs melody | " + f"{d['harmony']['consonant_share']:.3f} | "
                + " | ".join(f"{c[k]['harmony']['consonant_share']:.3f}" for k in ks) + " |")
    rows.append("| parallel 5ths/8ves per bar | " + f"{d['harmony']['parallels_per_bar']:.3f} | "
                + " | ".join(f"{c[k]['harmony']['parallels_per_bar']:.3f}" for k in ks) + " |")
    for figure, label in (("consonant_share", "consonant share vs melody"), ("parallels_per_bar", "parallels per bar")):
        if all("harmony_by_mood" in c[k] for k in ks):
            rows.append(f"| {label}, happy / tense / sad / calm | {d['harmony'][figure]:.3f} | " + " | ".join(
                " / ".join(f"{v[figure]:.3f}" for v in c[k]["harmony_by_mood"].values()) for k in ks) + " |")
    raw = report.get("without_voice_leading_rules")
    if raw:
        rows.append("| parallels per bar, draws without the voice-leading rules | "
                    f"{d['harmony']['parallels_per_bar']:.3f} | "
                    + " | ".join(f"{raw[k]['parallels_per_bar']:.3f}" for k in ks) + " |")
    rows.append("| voice steps in the melody's key | " + f"{d['harmony']['in_melody_key_share']:.3f} | "
                + " | ".join(f"{c[k]['harmony']['in_melody_key_share']:.3f}" for k in ks) + " |")
    for voice in d["harmony"]["in_range"]:
        rows.append(f"| {voice} notes in range | {d['harmony']['in_range'][voice]:.3f} | "
                    + " | ".join(f"{c[k]['harmony']['in_range'][voice]:.3f}" for k in ks) + " |")
    rows.append(f"| minor-triad share of beats | {d['minor_triad_share']:.3f} | " + " | ".join("" for _ in ks) + " |")
    rows.append(f"| inner-voice onsets per beat | {d['inner_onsets_per_beat']:.3f} | "
                + " | ".join("" for _ in ks) + " |")
    sp = report.get("speed_one_thread")
    if sp:
        rows += ["", f"speed, one CPU thread, per 4-bar phrase: the graph {sp['graph_ms_p50']:.2f} ms p50, "
                 f"{sp['graph_ms_p99']:.2f} ms p99; the whole phrase at the default {sp['candidates']} "
                 f"candidate(s) {sp['chosen_ms_p50']:.2f} ms p50, {sp['chosen_ms_p99']:.2f} ms p99"
                 + (f"; {sp['compared_candidates']} candidates and the judge {sp['compared_ms_p50']:.2f} ms p50, "
                    f"{sp['compared_ms_p99']:.2f} ms p99" if "compared_ms_p50" in sp else "")]
    for k in ks:
        rows += ["", f"| emotion, k={k} | value |", "|---|---|"]
        for key, value in c[k]["emotion"].items():
            if isinstance(value, dict):
                value = ", ".join(f"{name} {v:.3f}" for name, v in value.items())
            elif isinstance(value, float):
                value = f"{value:.3f}"
            rows.append(f"| {key} | {value} |")
    return "\n".join(rows)
