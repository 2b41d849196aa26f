"""How well a transfer method re-plays phrases in another emotion, as ears it was not trained with hear it.

Figures per method (any :class:`affetto.transfer.api.Transfer`: the CVAE, the rule baseline):

- **valence flips**: each source is asked the two quadrants of the other
  valence (a major source: sad and tense; a minor one: happy and calm);
  a flip counts when music21's Aarden-Essen or Temperley-Kostka-Payne key
  finder hears the output in the asked mode (each estimator counted
  apart). The source's mode is the project's own estimate (Krumhansl), the
  one the methods use; the estimators' reading of the sources is reported
  beside, since a flip of a source they already hear in the target mode
  proves little.
- **content kept**, against the source: top-line contour correlation
  (Pearson, over the phrase's grid steps, of the highest sounding pitch,
  held through rests) and onset F1 (distinct onset steps: the rhythm), plus
  note F1 (an onset with a pitch within a semitone: what a mode change keeps).
- **arousal**: for each source, the happy output against the sad one: busier
  (distinct onsets per beat) or louder (mean velocity).
- **round trip** (ToneNet's check): A -> B (the other valence and arousal)
  -> A's own emotion, against A: onset F1, contour correlation, mean
  velocity error of matched notes.

Sources: the project's seeds from outside the corpus (``models/seeds``,
4-bar phrases) and held-out corpus phrases (4 bars from pieces of the test
split). Functions here are plain, so ``affetto eval-transfer`` can reuse them.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.music.notes import Note, TimeSignature
from affetto.transfer.model import STEPS_PER_BEAT, capsule_of, key_of, steps_of

log = logging.getLogger(__name__)

ESTIMATORS = ("AardenEssen", "TemperleyKostkaPayne")


@dataclass(frozen=True)
class Source:
    name: str
    meter: TimeSignature
    notes: tuple[Note, ...]
    bars: int


# ---- measures ------------------------------------------------------------------------------
def music21_modes(notes: Sequence[Note]) -> dict[str, str | None]:
    """The mode ("major"/"minor") each music21 key finder hears; None for no notes."""
    if not notes:
        return dict.fromkeys(ESTIMATORS)
    from music21 import analysis, note, stream

    s: stream.Stream = stream.Stream()
    for n in notes:
        s.insert(float(n.onset), note.Note(n.pitch, quarterLength=float(n.duration)))
    return {name: str(getattr(analysis.discrete, name)(s).getSolution(s).mode) for name in ESTIMATORS}


def top_line(notes: Sequence[Note], steps: int) -> np.ndarray:
    """The highest sounding pitch at each grid step, held through rests (NaN before the first note)."""
    line = np.full(steps, -1.0)
    for n in notes:
        a = max(0, round(n.onset * STEPS_PER_BEAT))
        b = min(steps, max(a + 1, round(n.end * STEPS_PER_BEAT)))
        line[a:b] = np.maximum(line[a:b], n.pitch)
    out = np.full(steps, np.nan)
    last = np.nan
    for i, p in enumerate(line):
        last = p if p >= 0 else last
        out[i] = last
    return out


def contour_correlation(source: Sequence[Note], other: Sequence[Note], beats: float) -> float:
    """Pearson correlation of the two top lines over the steps both have begun; NaN when one is flat."""
    steps = round(beats * STEPS_PER_BEAT)
    a, b = top_line(source, steps), top_line(other, steps)
    both = ~np.isnan(a) & ~np.isnan(b)
    if both.sum() < 3 or a[both].std() == 0 or b[both].std() == 0:
        return math.nan
    return float(np.corrcoef(a[both], b[both])[0, 1])


def _f1(hits: int, a: int, b: int) -> float:
    return 1.0 if a + b == 0 else 2 * hits / (a + b)


def onset_f1(source: Sequence[Note], other: Sequence[Note]) -> float:
    """F1 of the distinct onset steps (the rhythm) of ``other`` against ``source``."""
    a = {round(n.onset * STEPS_PER_BEAT) for n in source}
    b = {round(n.onset * STEPS_PER_BEAT) for n in other}
    return _f1(len(a & b), len(a), len(b))


def note_f1(source: Sequence[Note], other: Sequence[Note], tolerance: int = 1) -> float:
    """F1 of notes matched one to one at the same onset step with pitches within ``tolerance`` semitones."""
    free = [(round(n.onset * STEPS_PER_BEAT), n.pitch) for n in source]
    hits = 0
    for n in other:
        on = round(n.onset * STEPS_PER_BEAT)
        near = [i for i, (o, p) in enumerate(free) if o == on and abs(p - n.pitch) <= tolerance]
        if near:
            free.pop(min(near, key=lambda i: abs(free[i][1] - n.pitch)))
            hits += 1
    return _f1(hits, len(source), len(other))


def velocity_error(source: Sequence[Note], other: Sequence[Note]) -> float:
    """Mean absolute velocity difference of notes at the same onset step and pitch; NaN when none match."""
    at = {(round(n.onset * STEPS_PER_BEAT), n.pitch): n.velocity for n in source}
    diffs = [abs(at[k] - n.velocity) for n in other if (k := (round(n.onset * STEPS_PER_BEAT), n.pitch)) in at]
    return float(np.mean(diffs)) if diffs else math.nan


def onsets_per_beat(notes: Sequence[Note], beats: float) -> float:
    return len({round(n.onset * STEPS_PER_BEAT) for n in notes}) / beats


def mean_velocity(notes: Sequence[Note]) -> float:
    return float(np.mean([n.velocity for n in notes])) if notes else 0.0


# ---- sources ------------------------------------------------------------------------------
def seed_sources(bars: int = 4) -> list[Source]:
    """The first ``bars`` bars and the next ``bars`` of every seed from outside the corpus."""
    from affetto.models.outside_seeds import SEED_FOLDER
    from affetto.music.midifile import read_midi

    out = []
    for path in sorted(SEED_FOLDER.glob("*.mid")):
        phrase = read_midi(path)
        length = bars * phrase.meter.beats_per_bar
        for part in range(2):
            lo = part * length
            notes = tuple(Note(n.pitch, n.onset - lo, n.duration, n.velocity, n.channel)
                          for n in phrase.notes if lo <= n.onset < lo + length)
            if len(notes) >= 4:
                out.append(Source(f"{path.stem}:{part + 1}", phrase.meter, notes, bars))
    return out


def corpus_sources(count: int = 40, bars: int = 4, seed: int = 0, min_notes: int = 8) -> list[Source]:
    """``count`` phrases of ``bars`` bars from held-out pieces (the test split) of the default corpus."""
    from affetto.models.corpus import load_corpus
    from affetto.models.data import assign_splits, window
    from affetto.music.notes import Grid
    from affetto.transfer.model import meter_index

    pieces = load_corpus(progress=False)
    splits = assign_splits(pieces)
    rng = np.random.default_rng(seed)
    test = [p for p, s in zip(pieces, splits) if s == "test"]
    out: list[Source] = []
    for i in rng.permutation(len(test)).tolist():
        piece = test[i]
        try:
            meter_index(piece.meter)
            bar_steps = Grid(STEPS_PER_BEAT).steps_per_bar(piece.meter)
        except ValueError:
            continue
        total = int(piece.notes[:, 0].max() // bar_steps) + 1
        if total < bars:
            continue
        first = int(rng.integers(0, total - bars + 1))
        win = window(np.asarray(piece.notes, dtype=np.int64), bar_steps, first, bars)
        if len(win) < min_notes:
            continue
        notes = tuple(Note(int(p), o / STEPS_PER_BEAT, d / STEPS_PER_BEAT, int(v)) for o, d, p, v in win.tolist())
        out.append(Source(f"{piece.name}@{first}", piece.meter, notes, bars))
        if len(out) == count:
            break
    return out


# ---- the evaluation -------------------------------------------------------------------------
OTHER_VALENCE = {0: (Quadrant.Q3, Quadrant.Q2), 1: (Quadrant.Q1, Quadrant.Q4)}  # by the source's mode
OPPOSITE = {Quadrant.Q1: Quadrant.Q3, Quadrant.Q2: Quadrant.Q4, Quadrant.Q3: Quadrant.Q1, Quadrant.Q4: Quadrant.Q2}


def _mean(values: Sequence[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else math.nan


def evaluate_method(method, sources: Sequence[Source], *, strength: float = 1.0, seed: int = 0) -> dict:
    """Every figure of the module's docstring for one method over ``sources``."""
    flips: dict[str, list[bool]] = {name: [] for name in ESTIMATORS}
    source_heard: dict[str, list[bool]] = {name: [] for name in ESTIMATORS}
    contour, onset, notes_kept, arousal, busier, louder = [], [], [], [], [], []
    trip_onset, trip_contour, trip_velocity = [], [], []
    seconds: list[float] = []
    rows = []
    for i, src in enumerate(sources):
        beats = src.bars * src.meter.beats_per_bar
        steps = steps_of(src.notes)
        _, mode = key_of(steps)
        asked_mode = "minor" if mode == 0 else "major"
        heard_src = music21_modes(src.notes)
        outs: dict[Quadrant, list[Note]] = {}
        for q in Quadrant:
            rng = np.random.default_rng(seed + i)
            began = time.perf_counter()
            outs[q] = method.transfer(list(src.notes), src.meter, Capsule.of(q), strength=strength, rng=rng)
            seconds.append(time.perf_counter() - began)
        for q in OTHER_VALENCE[mode]:
            heard = music21_modes(outs[q])
            for name in ESTIMATORS:
                flips[name].append(heard[name] == asked_mode)
                source_heard[name].append(heard_src[name] == asked_mode)
            contour.append(contour_correlation(src.notes, outs[q], beats))
            onset.append(onset_f1(src.notes, outs[q]))
            notes_kept.append(note_f1(src.notes, outs[q]))
            # A -> B -> A: B the other valence and arousal, back under A's own emotion
            back_to = Capsule(tuple(float(w) for w in capsule_of(steps, beats)))  # type: ignore[arg-type]
            there = outs[OPPOSITE[Quadrant.Q1 if mode == 0 else Quadrant.Q3]]
            back = method.transfer(there, src.meter, back_to, strength=strength, rng=np.random.default_rng(seed + i))
            trip_onset.append(onset_f1(src.notes, back))
            trip_contour.append(contour_correlation(src.notes, back, beats))
            trip_velocity.append(velocity_error(src.notes, back))
        happy, sad = outs[Quadrant.Q1], outs[Quadrant.Q3]
        b = onsets_per_beat(happy, beats) > onsets_per_beat(sad, beats)
        lo = mean_velocity(happy) > mean_velocity(sad)
        busier.append(b)
        louder.append(lo)
        arousal.append(b or lo)
        rows.append({"source": src.name, "mode": "minor" if mode else "major", "notes": len(src.notes),
                     "out_notes": {q.name: len(v) for q, v in outs.items()},
                     "happy_velocity": mean_velocity(happy), "sad_velocity": mean_velocity(sad)})
    ms = 1000 * np.array(seconds)
    return {
        "sources": len(sources),
        "flips": {name: float(np.mean(v)) for name, v in flips.items()},
        "flips_both": float(np.mean([a and b for a, b in zip(*flips.values())])),
        "source_already_in_target_mode": {name: float(np.mean(v)) for name, v in source_heard.items()},
        "contour_correlation": _mean(contour),
        "contour_at_least_0.7": float(np.mean([c >= 0.7 for c in contour if not math.isnan(c)])),
        "onset_f1": _mean(onset),
        "onset_f1_at_least_0.6": float(np.mean([f >= 0.6 for f in onset])),
        "note_f1": _mean(notes_kept),
        "arousal_happy_busier_or_louder": float(np.mean(arousal)),
        "happy_busier": float(np.mean(busier)),
        "happy_louder": float(np.mean(louder)),
        "round_trip": {"onset_f1": _mean(trip_onset), "contour_correlation": _mean(trip_contour),
                       "velocity_error": _mean(trip_velocity)},
        "ms_per_transfer": {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))},
        "rows": rows,
    }


def load_methods(names: Sequence[str], model: str | None) -> dict[str, Any]:
    """Methods by name: ``cvae`` (``model``, default: the shipped one) and ``rule`` (the baseline)."""
    out: dict[str, Any] = {}
    for name in names:
        if name == "cvae":
            from affetto.transfer.model import CvaeTransfer

            out[name] = CvaeTransfer(model)
        elif name == "rule":
            import importlib

            out[name] = importlib.import_module("affetto.transfer.rule").RuleTransfer()
        else:
            raise ValueError(f"unknown method {name!r}: use cvae or rule")
    return out


def markdown(report: dict) -> str:
    lines = ["| method | sources | flips AE | flips TKP | source already | contour | onset F1 | note F1 | "
             "arousal | round trip onset F1 / contour / vel err | ms p50/p99 |", "|" + "---|" * 11]
    for group, methods in report.items():
        for name, r in methods.items():
            sa = r["source_already_in_target_mode"]
            rt = r["round_trip"]
            lines.append(
                f"| {name} ({group}) | {r['sources']} | {r['flips']['AardenEssen']:.0%} | "
                f"{r['flips']['TemperleyKostkaPayne']:.0%} | "
                f"{sa['AardenEssen']:.0%}/{sa['TemperleyKostkaPayne']:.0%} | "
                f"{r['contour_correlation']:.2f} | {r['onset_f1']:.2f} | {r['note_f1']:.2f} | "
                f"{r['arousal_happy_busier_or_louder']:.0%} | {rt['onset_f1']:.2f} / {rt['contour_correlation']:.2f} / "
                f"{rt['velocity_error']:.1f} | {r['ms_per_transfer']['p50']:.1f}/{r['ms_per_transfer']['p99']:.1f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a transfer .onnx (default: the shipped one)")
    parser.add_argument("--methods", default="cvae,rule")
    parser.add_argument("--corpus", type=int, default=40, help="held-out corpus phrases (0: none)")
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="transfer-eval.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    methods = load_methods([m for m in args.methods.split(",") if m], args.model)
    groups = {"seeds": seed_sources()}
    if args.corpus:
        groups["held-out"] = corpus_sources(args.corpus, seed=args.seed)
    report = {g: {name: evaluate_method(m, srcs, strength=args.strength, seed=args.seed)
                  for name, m in methods.items()} for g, srcs in groups.items()}
    Path(args.out).write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(markdown(report))


if __name__ == "__main__":
    main()


def threshold_sweep(model_path: str | Path | None, thresholds: Sequence[float] = (0.25, 0.3, 0.35, 0.4, 0.45, 0.5),
                    count: int = 200, seed: int = 0) -> dict[float, float]:
    """Reconstruction onset-cell F1 (onset step and pitch) of validation-split corpus windows at each decode
    threshold: the phrase encoded and decoded under its own condition (no key finder involved, so the
    threshold is chosen on what the model keeps, not on what the independent ears hear)."""
    from affetto.models.corpus import load_corpus
    from affetto.models.transfer.data import PhraseConfig, build_phrases
    from affetto.transfer.model import CvaeTransfer, bar_bins, condition, phrase_roll, tonic_shift

    model = CvaeTransfer(model_path)
    phrases = build_phrases(load_corpus(progress=False), PhraseConfig(seed=seed))["valid"]
    rng = np.random.default_rng(seed)
    hits = {t: [0, 0] for t in thresholds}
    for i in rng.permutation(len(phrases))[:count].tolist():
        w = phrases.windows[i]
        shift = tonic_shift(w.tonic)
        roll = phrase_roll(w.notes, w.n_bars, w.bar_steps, shift)
        cond = condition(capsule_of(w.notes, w.n_bars * w.bar_steps / STEPS_PER_BEAT), w.mode)
        density, poly = bar_bins(w.notes, w.n_bars, w.bar_steps)
        eps = np.zeros((w.n_bars, w.bar_steps // model.z_steps, model.z_dim), np.float32)
        probs, _ = model.decode(roll, cond, cond, density, poly, w.meter, eps)
        real = roll[..., 0, :] > 0.5
        for t in thresholds:
            pred = probs[..., 0, :] >= t
            hits[t][0] += int((pred & real).sum())
            hits[t][1] += int(pred.sum() + real.sum())
    return {t: 2 * h / max(total, 1) for t, (h, total) in hits.items()}
