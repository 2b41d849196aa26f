"""The music-text model's proof on held-out windows (the corpus's ``test`` split, never trained on).

- Retrieval: each test window's aligned music point against every test
  caption's text point (cosine), and back: recall@1 and recall@5 of the
  true pair, music->text and text->music, in a pool of all test pairs (and
  the mean over pools of 100, a common size in the literature).
- Attribute accuracy of generated captions: the decoder's own greedy caption
  from the music (no constraint, no re-ranking), read back with
  :func:`affetto.words.describe.claims` and checked against the analysis of
  the window: of all the field values the captions name, the share that is
  right, overall and per field; how often a caption names the key and the
  mood; the key also against music21's Aarden-Essen and Temperley-Kostka-Payne
  estimators, which the project neither trains nor selects with.
- What the music encoder hears: where the model has attribute heads, the
  share of test windows whose measured value each head's most likely value
  is, per field (the recogniser inside the text model, before any words).
- Source words: how often a caption's composer, collection or region is the
  window's (not checkable by analysis; reported apart).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from affetto.models.checkpoint import load_checkpoint
from affetto.models.text.captions import COMPOSERS, REGIONS
from affetto.models.text.data import TextData, attribute_labels, load_data
from affetto.models.text.model import MusicTextModel, by_field
from affetto.models.text.train import fixed_batch
from affetto.music.notes import TimeSignature
from affetto.words.describe import claims, contradictions
from affetto.words.textmodel import STEPS_PER_BEAT, Vocabulary

FIELDS = ("tonic", "mode", "meter", "tempo", "density", "register", "texture", "contour", "mood")


def recall(sims: np.ndarray, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Recall@k of the diagonal in each row of a (N, N) similarity matrix."""
    rank = (sims > np.diag(sims)[:, None]).sum(1)  # items scored above the true one
    return {**{f"r{k}": float((rank < k).mean()) for k in ks}, "median_rank": float(np.median(rank) + 1)}


def pooled_recall(sims: np.ndarray, pool: int = 100, seed: int = 0) -> dict[str, float]:
    """Mean recall over random pools of ``pool`` pairs (every pair in exactly one pool)."""
    order = np.random.default_rng(seed).permutation(len(sims))
    figures = [recall(sims[np.ix_(p, p)]) for p in np.array_split(order, max(1, len(sims) // pool))]
    return {k: float(np.mean([f[k] for f in figures])) for k in figures[0]}


def music21_keys(notes: np.ndarray, meter: TimeSignature) -> tuple[str, str]:
    """(Aarden-Essen, Temperley-Kostka-Payne) key names of a window's input rows, by music21."""
    from music21 import note, stream
    from music21.analysis.discrete import AardenEssen, TemperleyKostkaPayne

    bar = round(meter.beats_per_bar * STEPS_PER_BEAT)
    s: stream.Stream = stream.Stream()
    for pitch, pos, bar_index, dur in notes[notes[:, 0] > 0]:
        n = note.Note(int(pitch) - 1, quarterLength=float(dur) / STEPS_PER_BEAT)
        s.insert((int(bar_index) * bar + int(pos)) / STEPS_PER_BEAT, n)
    names = []
    for estimator in (AardenEssen, TemperleyKostkaPayne):
        key = estimator().getSolution(s)
        tonic = key.tonic.name.replace("-", "b")
        names.append(f"{_pitch_name(tonic)} {key.mode}")
    return names[0], names[1]


def _pitch_name(name: str) -> str:
    from affetto.analysis.judge import PITCH_NAMES

    pc = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}[name[0]] + name.count("#") - name.count("b")
    return PITCH_NAMES[pc % 12]


def caption_accuracy(captions: list[list[str]], data: TextData, index: np.ndarray,
                     m21: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Of the field values the captions name, the share the analysis agrees with (overall and per field)."""
    right = dict.fromkeys(FIELDS, 0)
    named = dict.fromkeys(FIELDS, 0)
    key_and_mood = 0
    key_m21 = {"aarden_essen": 0, "temperley_kostka_payne": 0}
    key_named = 0
    source_right = source_named = 0
    for row, (tokens, i) in enumerate(zip(captions, index)):
        facts = data.facts[int(i)]
        said = claims(tokens)
        wrong = contradictions(said, facts.fields)
        for slot, values in said.items():
            named[slot] += len(values)
            right[slot] += len(values) - len(wrong.get(slot, set()))
        key_and_mood += all(s in said for s in ("tonic", "mode", "mood"))
        if m21 is not None and "tonic" in said and "mode" in said and len(said["tonic"]) == 1:
            key_named += 1
            name = f"{next(iter(said['tonic']))} {next(iter(said['mode']))}"
            key_m21["aarden_essen"] += name == m21[row][0]
            key_m21["temperley_kostka_payne"] += name == m21[row][1]
        src = facts.source
        for word in tokens:
            if word in COMPOSERS or word in REGIONS or word in ("essen", "o'neill's", "ryan's", "aird's"):
                source_named += 1
                truth = {src.composer, src.region, *src.collection.split()}
                source_right += word in truth
    total_named = sum(named.values())
    out: dict[str, Any] = {
        "accuracy": sum(right.values()) / max(1, total_named),
        "per_field": {k: {"named": named[k], "right": right[k], "accuracy": right[k] / named[k] if named[k] else None}
                      for k in FIELDS},
        "names_key_and_mood": key_and_mood / max(1, len(captions)),
        "source_accuracy": source_right / max(1, source_named),
    }
    if m21 is not None:
        out["key_vs_music21"] = {k: v / max(1, key_named) for k, v in key_m21.items()}
    return out


@torch.no_grad()
def evaluate(checkpoint: str | Path, *, limit: int | None = None, data: TextData | None = None,
             with_music21: bool = True) -> dict[str, Any]:
    """Every figure of the module docstring for one checkpoint."""
    model, meta = load_checkpoint(checkpoint)
    if not isinstance(model, MusicTextModel):
        raise ValueError(f"{checkpoint}: a {meta.get('family')} checkpoint, not a text one")
    vocab = Vocabulary(tuple(meta["vocabulary"]))
    data = data if data is not None else load_data()
    index = data.indices("test")
    if limit:
        index = index[:limit]
    notes, glob, tokens, _ = fixed_batch(data, index, vocab, model.cfg.max_text, seed=11)
    zm: list[torch.Tensor] = []
    zt: list[torch.Tensor] = []
    caps: list[list[str]] = []
    heads: list[torch.Tensor] = []
    for start in range(0, len(index), 256):
        sl = slice(start, start + 256)
        z, heard = model.music.encode(notes[sl], glob[sl])
        aligned = model.align(z)
        if heard is not None:
            heads.append(heard)
        zm.append(torch.nn.functional.normalize(aligned, dim=-1))
        zt.append(torch.nn.functional.normalize(model.text(tokens[sl]), dim=-1))
        caps.extend(vocab.decode(row[1:].tolist()) for row in model.greedy(model.caption_point(aligned, heard)))
    sims = (torch.cat(zm) @ torch.cat(zt).T).numpy()
    m21 = None
    if with_music21:
        m21 = [music21_keys(data.notes[int(i)], TimeSignature.parse(data.facts[int(i)].fields.meter)) for i in index]
    ground = [data.facts[int(i)].fields for i in index]
    kk_vs_m21 = None
    if m21 is not None:
        kk_vs_m21 = {"aarden_essen": float(np.mean([f.key == m[0] for f, m in zip(ground, m21)])),
                     "temperley_kostka_payne": float(np.mean([f.key == m[1] for f, m in zip(ground, m21)]))}
    heard_right = None
    if heads:
        labels = attribute_labels([data.facts[int(i)] for i in index])
        heard_right = {}
        for name, logits in by_field(torch.cat(heads)).items():
            known = labels[name] >= 0
            guess = logits.argmax(-1).numpy()
            heard_right[name] = float(np.mean(guess[known] == labels[name][known])) if known.any() else None
    return {
        "checkpoint": str(checkpoint),
        "gtp_weight": meta["train"]["loss"]["gtp"],
        "step": meta["step"],
        "train_minutes": round(float(meta["train_seconds"]) / 60, 1),
        "test_pairs": len(index),
        "music_to_text": recall(sims),
        "text_to_music": recall(sims.T),
        "music_to_text_pool100": pooled_recall(sims),
        "text_to_music_pool100": pooled_recall(sims.T),
        "captions": caption_accuracy(caps, data, index, m21),
        "analysis_key_vs_music21": kk_vs_m21,
        "heads_right": heard_right,
        "examples": [" ".join(c) for c in caps[:5]],
    }


def format_report(results: dict[str, dict[str, Any]]) -> str:
    lines = []
    for name, r in results.items():
        c = r["captions"]
        lines.append(f"{name} (GTP weight {r['gtp_weight']}, {r['step']} steps, {r['train_minutes']} min), "
                     f"{r['test_pairs']} held-out pairs")
        for what in ("music_to_text", "text_to_music", "music_to_text_pool100", "text_to_music_pool100"):
            lines.append(f"  {what:22s} R@1 {r[what]['r1']:.3f}  R@5 {r[what]['r5']:.3f}  median rank "
                         f"{r[what]['median_rank']:.0f}")
        lines.append(f"  caption attributes right {c['accuracy']:.3f}; names key and mood {c['names_key_and_mood']:.3f}"
                     f"; source words right {c['source_accuracy']:.3f}")
        lines.append("  per field: " + ", ".join(f"{k} {v['accuracy']:.2f} ({v['named']})"
                                                 for k, v in c["per_field"].items() if v["accuracy"] is not None))
        if r.get("heads_right"):
            lines.append("  the music encoder's heads right: " + ", ".join(
                f"{k} {v:.2f}" for k, v in r["heads_right"].items() if v is not None))
        if "key_vs_music21" in c:
            lines.append(f"  named key vs music21: Aarden-Essen {c['key_vs_music21']['aarden_essen']:.3f}, "
                         f"Temperley-Kostka-Payne {c['key_vs_music21']['temperley_kostka_payne']:.3f} "
                         f"(the analysis's own key vs them: {r['analysis_key_vs_music21']})")
    return "\n".join(lines)


def markdown_report(results: dict[str, dict[str, Any]], command: str) -> str:
    """The figures as the tables of ``docs/eval/text.md``."""
    first = next(iter(results.values()))
    out = ["# The music-text model: held-out figures", "",
           f"Measured with `{command}` on the corpus's {first['test_pairs']} test windows (one fixed caption each; "
           "recall over all pairs and over pools of 100; attribute accuracy of the decoder's own greedy captions, "
           "free, checked against the analysis; the music encoder's heads against the analysis).", "",
           "| run | GTP | steps | m->t R@1 | m->t R@5 | t->m R@1 | t->m R@5 | m->t R@1 (100) | m->t R@5 (100) "
           "| t->m R@1 (100) | t->m R@5 (100) | median rank m->t | caption attributes right |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        cells = [r["music_to_text"]["r1"], r["music_to_text"]["r5"], r["text_to_music"]["r1"],
                 r["text_to_music"]["r5"], r["music_to_text_pool100"]["r1"], r["music_to_text_pool100"]["r5"],
                 r["text_to_music_pool100"]["r1"], r["text_to_music_pool100"]["r5"]]
        out.append(f"| `{name}` | {r['gtp_weight']} | {r['step']} | " + " | ".join(f"{c:.3f}" for c in cells)
                   + f" | {r['music_to_text']['median_rank']:.0f} | {r['captions']['accuracy']:.3f} |")
    fields = [f for f in FIELDS if any(r["captions"]["per_field"][f]["named"] for r in results.values())]
    out += ["", "Per field, the free captions (share right of the values they name, and how many they name), "
            "and the key they name against music21:", "",
            "| run | " + " | ".join(fields) + " | key = Aarden-Essen | key = TKP | names key and mood |",
            "|---|" + "---|" * (len(fields) + 3)]
    for name, r in results.items():
        c = r["captions"]
        cells = []
        for f in fields:
            v = c["per_field"][f]
            cells.append("-" if v["accuracy"] is None else f"{v['accuracy']:.2f} ({v['named']})")
        m21 = c.get("key_vs_music21") or {}
        out.append(f"| `{name}` | " + " | ".join(cells) + f" | {m21.get('aarden_essen', float('nan')):.3f} | "
                   f"{m21.get('temperley_kostka_payne', float('nan')):.3f} | {c['names_key_and_mood']:.3f} |")
    heads = {n: r["heads_right"] for n, r in results.items() if r.get("heads_right")}
    if heads:
        names = list(next(iter(heads.values())))
        out += ["", "What the music encoder's attribute heads hear (share of test windows right, per field):", "",
                "| run | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for n, h in heads.items():
            out.append(f"| `{n}` | " + " | ".join("-" if h[k] is None else f"{h[k]:.2f}" for k in names) + " |")
    keys = first.get("analysis_key_vs_music21")
    if keys:
        out += ["", f"The analysis's own key against music21 on the same windows: Aarden-Essen "
                f"{keys['aarden_essen']:.3f}, Temperley-Kostka-Payne {keys['temperley_kostka_payne']:.3f}."]
    out += ["", "Free greedy captions of the first test windows, per run:", ""]
    for name, r in results.items():
        out.append(f"- `{name}`:")
        out += [f"  - {e}" for e in r["examples"][:3]]
    return "\n".join(out) + "\n"
