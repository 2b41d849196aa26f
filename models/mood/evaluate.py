"""How well the shipped recogniser hears moods: ``python -m affetto.models.mood.evaluate [--model FILE]``.

Runs the exported ``.onnx`` (ONNX Runtime, as the daemon does) on:

1. **labelled held-out phrases** (the validation and test pieces, drawn and
   augmented as for training, :mod:`.data`): quadrant accuracy against the
   feature judge's labels, per quadrant, and the sign of valence and arousal;
2. **an independent check** on the same phrases and on the corpus's phrases
   as written (no augmentation): valence against music21's Aarden-Essen and
   Temperley-Kostka-Payne key estimators (major = positive), which the
   project neither trains nor selects with, and arousal against onsets per
   beat (Spearman's rank correlation; also against mean velocity);
3. **the outside seeds** (``models/seeds/*.mid``, written for the project, not
   in the corpus): every 2-bar phrase, its valence against the mode the seed is
   written in and against both music21 estimators, its arousal against its
   onsets per beat.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from affetto.analysis.emotion import Quadrant
from affetto.models.evaluation.listening import ESTIMATORS, independent_keys
from affetto.models.mood.data import MAX_STEPS, PhraseSet, draw_phrases, split_pieces
from affetto.music.notes import Note
from affetto.words.mood import MoodRecogniser

log = logging.getLogger(__name__)


def run_set(recogniser: MoodRecogniser, phrases: PhraseSet, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, 4), va (N, 2)) by the ONNX model, batched with padding."""
    probs = np.zeros((len(phrases), 4), np.float32)
    va = np.zeros((len(phrases), 2), np.float32)
    for start in range(0, len(phrases), batch):
        index = np.arange(start, min(start + batch, len(phrases)))
        width = int(phrases.steps[index].max())
        logits, out = recogniser.run(phrases.roll[index, :, :width].astype(np.float32),
                                     phrases.mask(index)[:, :width], phrases.summary[index])
        z = np.exp(logits - logits.max(1, keepdims=True))
        probs[index], va[index] = z / z.sum(1, keepdims=True), out
    return probs, va


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def accuracy_figures(phrases: PhraseSet, probs: np.ndarray, va: np.ndarray) -> dict[str, Any]:
    q, pred = phrases.quadrant, probs.argmax(1)
    confusion = np.zeros((4, 4), np.int64)
    np.add.at(confusion, (q, pred), 1)
    per = {Quadrant(k).name: round(float(confusion[k, k] / max(confusion[k].sum(), 1)), 3) for k in range(4)}
    return {
        "phrases": len(phrases),
        "accuracy": round(float((pred == q).mean()), 3),
        "balanced_accuracy": round(float(np.mean(list(per.values()))), 3),
        "per_quadrant_recall": per,
        "confusion_rows_true_cols_predicted": confusion.tolist(),
        "valence_sign": round(float(((va[:, 0] >= 0) == (phrases.va[:, 0] >= 0)).mean()), 3),
        "arousal_sign": round(float(((va[:, 1] >= 0) == (phrases.va[:, 1] >= 0)).mean()), 3),
        "by_bars": {f"{b}": round(float((pred == q)[bars == b].mean()), 3)
                    for b in range(1, 5) for bars in [_bars(phrases)] if (bars == b).any()},
    }


def _bars(phrases: PhraseSet) -> np.ndarray:
    return np.round(phrases.steps / (4 * phrases.bar_beats)).astype(np.int64)


def _notes(rows: np.ndarray) -> list[Note]:
    return [Note(int(p), float(o), max(float(d), 1e-3), int(v)) for p, o, d, v in rows]


def independent_figures(phrases: PhraseSet, va: np.ndarray, limit: int, *, progress: bool = False) -> dict[str, Any]:
    """Valence against music21's key estimators, arousal against onsets per beat (first ``limit`` phrases)."""
    if phrases.notes is None:
        raise ValueError("the phrases need their notes (draw_phrases(keep_notes=True))")
    n = min(limit, len(phrases))
    modes: dict[str, list[bool]] = {name: [] for name in ESTIMATORS}
    iterator: Any = range(n)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="music21 keys", unit="phrase")
    for i in iterator:
        keys = independent_keys(_notes(phrases.notes[i]))
        for name in ESTIMATORS:
            key = keys[name]
            modes[name].append(key is not None and key[1] == "major")
    positive = va[:n, 0] >= 0
    out: dict[str, Any] = {"phrases": n, "major_share": {}}
    for name, major in modes.items():
        m = np.array(major)
        out[f"valence_vs_{name}"] = round(float((positive == m).mean()), 3)
        out["major_share"][name] = round(float(m.mean()), 3)
    both = np.array(modes["aarden_essen"]) == np.array(modes["temperley_kostka_payne"])
    agree = (positive == np.array(modes["aarden_essen"]))[both]
    out["valence_vs_both_where_they_agree"] = round(float(agree.mean()), 3)
    out["estimators_agree"] = round(float(both.mean()), 3)
    out["arousal_spearman_onsets_per_beat"] = round(spearman(va[:n, 1], phrases.density[:n]), 3)
    out["arousal_spearman_velocity"] = round(spearman(va[:n, 1], phrases.velocity[:n]), 3)
    return out


def outside_seed_figures(recogniser: MoodRecogniser, bars: int = 2) -> dict[str, Any]:
    """Every ``bars``-bar phrase of the outside seeds: valence against the written mode and music21's
    estimators, arousal against onsets per beat."""
    from affetto.models.outside_seeds import SEED_FOLDER, outside_seeds
    from affetto.music.midifile import read_midi

    rows: list[dict[str, Any]] = []
    for seed in outside_seeds():
        phrase = read_midi(SEED_FOLDER / f"{seed.name}.mid")  # the shipped file, as a player's DAW would send it
        meter = phrase.meter or seed.meter
        length = meter.beats_per_bar * bars
        last = max(n.onset for n in phrase.notes)
        start = 0.0
        while start <= last:
            notes = [Note(n.pitch, n.onset - start, n.duration, n.velocity) for n in phrase.notes
                     if start <= n.onset < start + length]
            start += length
            if len(notes) < 2:
                continue
            mood = recogniser(notes, meter)
            keys = independent_keys(notes)
            onsets = len({round(n.onset * 48) for n in notes}) / length
            rows.append({"seed": seed.name, "written": seed.key.split()[-1], "quadrant": mood.quadrant,
                         "valence": round(mood.valence, 3), "arousal": round(mood.arousal, 3),
                         "onsets_per_beat": round(onsets, 3),
                         **{name: (k[1] if k else None) for name, k in keys.items()}})
    positive = np.array([r["valence"] >= 0 for r in rows])
    out: dict[str, Any] = {"phrases": len(rows)}

    def share(major: list[bool]) -> float:
        return round(float((positive == np.array(major)).mean()), 3)

    out["valence_vs_written_mode"] = share([r["written"] == "major" for r in rows])
    for name in ESTIMATORS:
        out[f"valence_vs_{name}"] = share([r[name] == "major" for r in rows])
    out["arousal_spearman_onsets_per_beat"] = round(spearman(np.array([r["arousal"] for r in rows]),
                                                             np.array([r["onsets_per_beat"] for r in rows])), 3)
    per_seed: dict[str, Any] = {}
    for r in rows:
        s = per_seed.setdefault(r["seed"], {"written": r["written"], "quadrants": {}, "valence": [], "arousal": [],
                                            "onsets_per_beat": []})
        s["quadrants"][r["quadrant"]] = s["quadrants"].get(r["quadrant"], 0) + 1
        for k in ("valence", "arousal", "onsets_per_beat"):
            s[k].append(r[k])
    for s in per_seed.values():
        for k in ("valence", "arousal", "onsets_per_beat"):
            s[k] = round(float(np.mean(s[k])), 2)
    out["per_seed"] = per_seed
    return out


def evaluate(model: str | None = None, *, held_out: int = 3000, music21_phrases: int = 600, seed: int = 7,
             limit: int | None = None, progress: bool = True) -> dict[str, Any]:
    from affetto.models.corpus import load_corpus

    recogniser = MoodRecogniser(model)
    pieces = list(load_corpus(progress=False, limit=limit))
    _, (held_pieces, held_labels) = split_pieces(pieces)
    augmented = draw_phrases(held_pieces, held_out, seed, labels=held_labels, keep_notes=True, progress=progress)
    plain = draw_phrases(held_pieces, music21_phrases, seed + 1, labels=held_labels, augment=False,
                         keep_notes=True, progress=progress)
    probs, va = run_set(recogniser, augmented)
    _, va_plain = run_set(recogniser, plain)
    report = {
        "model": str(recogniser.path),
        "held_out_pieces": len(held_pieces),
        "max_steps": MAX_STEPS,
        "labels_held_out": augmented.counts(),
        "held_out_accuracy": accuracy_figures(augmented, probs, va),
        "independent_augmented": independent_figures(augmented, va, music21_phrases, progress=progress),
        "independent_as_written": independent_figures(plain, va_plain, music21_phrases, progress=progress),
        "outside_seeds": outside_seed_figures(recogniser),
    }
    return report


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a mood .onnx (default: the shipped one)")
    parser.add_argument("--held-out", type=int, default=3000)
    parser.add_argument("--music21-phrases", type=int, default=600)
    parser.add_argument("--out", default=None, help="write the report as JSON here too")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    report = evaluate(args.model, held_out=args.held_out, music21_phrases=args.music21_phrases)
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
