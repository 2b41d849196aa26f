"""``affetto eval-transfer``: is the emotion heard changed, and is the player's phrase still there?

Every available method (the rule baseline always, with and without its
density lever; the CVAE when its model is shipped) re-plays the same phrases
into each of the four quadrants, side by side:

- methods: ``cvae`` decodes anchored (every source note kept, moved at most
  a semitone by the model, :func:`affetto.transfer.model.anchored_steps`),
  ``cvae-free`` writes the notes its onset probabilities give;
- material: the outside seeds (:mod:`affetto.models.outside_seeds`, written
  for this project, never trained on) cut into 4-bar phrases, and 4-bar
  phrases of the held-out ("test") pieces of the music21 corpus, split as
  training splits it (:func:`affetto.models.data.assign_splits`), at most
  ``per_piece`` from a piece;
- valence heard: music21's Aarden-Essen and Temperley-Kostka-Payne key
  finders (which neither the project nor its methods select with) name the
  mode of the source and of each output. Asked flips are the targets whose
  mode differs from the source's heard mode (happy -> sad: a source heard
  major asked for Q3; sad -> happy: heard minor asked for Q1); the share
  heard in the target's mode is given for them and for all four targets;
- content kept: the top line's contour correlation (the highest pitch
  sounding, sampled every sixteenth, Pearson) and onset F1 against the source
  (onsets matched within a 32nd note);
- arousal: per source, whether the happy output is busier (more onsets) or
  louder (mean velocity) than the sad one, and each alone.

Goals (issue 17): flips >= 90 %, contour >= 0.7, onset F1 >= 0.6, arousal >= 80 %.
:func:`run_transfer_eval` returns a JSON-ready dict; :func:`markdown` the table.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import click
import numpy as np

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.errors import ConfigError
from affetto.models.evaluation.listening import independent_keys
from affetto.music.notes import Note, TimeSignature
from affetto.transfer.api import Transfer

log = logging.getLogger(__name__)

GOALS = {"flips": 0.9, "contour": 0.7, "onset_f1": 0.6, "arousal": 0.8}
ONSET_TOLERANCE = 0.125  # beats: a 32nd note either way
ESTIMATORS = ("aarden_essen", "temperley_kostka_payne")


@dataclass(frozen=True)
class TransferEvalConfig:
    methods: tuple[str, ...] = ()  # default: every available one ("rule", "rule-no-density", "cvae")
    groups: tuple[str, ...] = ()  # corpus groups for held-out phrases (default: the training's default groups)
    heldout_phrases: int = 64  # held-out corpus phrases drawn
    per_piece: int = 2  # at most this many phrases of one held-out piece
    phrase_bars: int = 4
    strength: float = 1.0
    corpus: bool = True  # False: the outside seeds alone
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("heldout_phrases", "per_piece", "phrase_bars"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.strength <= 1.0:
            raise ConfigError(f"strength must be in [0, 1], got {self.strength}")


@dataclass(frozen=True)
class Phrase:
    name: str
    notes: tuple[Note, ...]
    meter: TimeSignature


# ---- material ------------------------------------------------------------------------------
def windows(notes: Sequence[Note], meter: TimeSignature, bars: int, name: str, *, min_notes: int = 8) -> list[Phrase]:
    """Non-overlapping ``bars``-bar phrases of ``notes`` (onsets from each phrase's first bar line), each with
    notes in its first and last bar and at least ``min_notes`` notes."""
    span = bars * meter.beats_per_bar
    end = max((n.onset for n in notes), default=0.0)
    out = []
    for k in range(int(end // span) + 1):
        lo, hi = k * span, (k + 1) * span
        inside = [Note(n.pitch, n.onset - lo, min(n.duration, hi - n.onset), n.velocity, n.channel)
                  for n in notes if lo <= n.onset < hi]
        first = any(n.onset < meter.beats_per_bar for n in inside)
        last = any(n.onset >= span - meter.beats_per_bar for n in inside)
        if len(inside) >= min_notes and first and last:
            out.append(Phrase(f"{name}@{k * bars}", tuple(inside), meter))
    return out


def outside_phrases(bars: int) -> list[Phrase]:
    from affetto.models.outside_seeds import outside_seeds

    return [p for seed in outside_seeds() for p in windows(seed.notes, seed.meter, bars, seed.name)]


def heldout_phrases(cfg: TransferEvalConfig) -> list[Phrase]:
    """Phrases of the corpus's held-out ("test") pieces, drawn with ``cfg.seed``."""
    from affetto.models.corpus import DEFAULT_GROUPS, load_corpus
    from affetto.models.data import assign_splits

    pieces = load_corpus(cfg.groups or DEFAULT_GROUPS, progress=False)
    splits = assign_splits(pieces)
    rng = np.random.default_rng(cfg.seed)
    pool: list[Phrase] = []
    for piece, split in zip(pieces, splits):
        if split != "test" or piece.meter.beats_per_bar > 8:
            continue
        steps = 4  # the corpus cache's grid: sixteenths (load_corpus's default Grid)
        notes = [Note(int(p), o / steps, max(d, 1) / steps, int(v) if 1 <= v <= 127 else 80)
                 for o, d, p, v in np.asarray(piece.notes).tolist()]
        found = windows(notes, piece.meter, cfg.phrase_bars, piece.name)
        if found:
            pick = rng.choice(len(found), size=min(cfg.per_piece, len(found)), replace=False)
            pool += [found[i] for i in sorted(pick)]
    if not pool:
        raise ConfigError("no held-out corpus phrases (is the corpus cache there? see affetto.models.corpus)")
    keep = rng.choice(len(pool), size=min(cfg.heldout_phrases, len(pool)), replace=False)
    return [pool[i] for i in sorted(keep)]


# ---- measures ------------------------------------------------------------------------------
def top_line_samples(notes: Sequence[Note], beats: float, step: float = 0.25) -> np.ndarray:
    """The highest pitch sounding at every ``step`` (NaN where nothing sounds)."""
    grid = np.arange(0.0, beats, step)
    out = np.full(len(grid), np.nan)
    for n in notes:
        inside = (grid >= n.onset - 1e-9) & (grid < n.end - 1e-9)
        out[inside] = np.fmax(out[inside], n.pitch)
    return out


def contour_correlation(source: Sequence[Note], output: Sequence[Note], beats: float) -> float:
    a, b = top_line_samples(source, beats), top_line_samples(output, beats)
    both = ~np.isnan(a) & ~np.isnan(b)
    if both.sum() < 3 or np.std(a[both]) == 0 or np.std(b[both]) == 0:
        return math.nan
    return float(np.corrcoef(a[both], b[both])[0, 1])


def onset_f1(source: Sequence[Note], output: Sequence[Note], tolerance: float = ONSET_TOLERANCE) -> float:
    """F1 of the output's distinct onsets against the source's (each matched at most once, within ``tolerance``)."""
    src = sorted({round(n.onset, 6) for n in source})
    out = sorted({round(n.onset, 6) for n in output})
    if not src or not out:
        return 0.0
    used: set[int] = set()
    hits = 0
    for t in out:
        best = None
        for i, s in enumerate(src):
            if i not in used and abs(s - t) <= tolerance + 1e-9 and (best is None or abs(s - t) < abs(src[best] - t)):
                best = i
        if best is not None:
            used.add(best)
            hits += 1
    precision, recall = hits / len(out), hits / len(src)
    return 0.0 if hits == 0 else 2 * precision * recall / (precision + recall)


def heard_modes(notes: Sequence[Note]) -> dict[str, str | None]:
    keys = independent_keys(notes)
    return {name: (key[1] if key else None) for name, key in keys.items()}


def _share(hits: list[bool]) -> dict:
    return {"share": float(np.mean(hits)) if hits else math.nan, "n": len(hits)}


def _mean(values: list[float]) -> dict:
    finite = [v for v in values if not math.isnan(v)]
    return {"mean": float(np.mean(finite)) if finite else math.nan, "n": len(finite)}


# ---- the run ---------------------------------------------------------------------------------
def methods_for(cfg: TransferEvalConfig) -> dict[str, Transfer]:
    from affetto.transfer.methods import available_methods, load_method
    from affetto.transfer.rule import RuleConfig, RuleTransfer

    others = [m for m in available_methods() if m != "rule"]
    names = cfg.methods or ("rule", "rule-no-density", *others, *(["cvae-free"] if "cvae" in others else []))
    out: dict[str, Transfer] = {}
    for name in names:
        if name == "rule-no-density":
            out[name] = RuleTransfer(RuleConfig(density=False))
        elif name == "cvae-free":  # the CVAE decoding freely: notes where its onset probability reaches threshold
            from dataclasses import replace

            from affetto.transfer.model import CvaeTransfer

            model = load_method("cvae")[0]
            assert isinstance(model, CvaeTransfer)
            model.settings = replace(model.settings, anchor=0)
            out[name] = model
        else:
            out[name] = load_method(name)[0]
    return out


def evaluate(phrases: Sequence[Phrase], methods: dict[str, Transfer], cfg: TransferEvalConfig,
             progress: bool = False) -> dict:
    """Per method: the flips heard by each estimator, content kept and arousal, over ``phrases``."""
    from tqdm import tqdm

    sources = [heard_modes(p.notes) for p in phrases]
    out: dict = {}
    for name, method in methods.items():
        flips: dict[str, dict[str, list[bool]]] = {e: {"asked": [], "happy_to_sad": [], "sad_to_happy": [],
                                                       "all_targets": []} for e in ESTIMATORS}
        contour: list[float] = []
        f1: list[float] = []
        busier, louder, either = [], [], []
        elapsed = 0.0
        for p, heard in tqdm(list(zip(phrases, sources)), desc=name, disable=not progress, unit="phrase"):
            beats = cfg.phrase_bars * p.meter.beats_per_bar
            outs = {}
            for q in Quadrant:
                t0 = time.perf_counter()
                moved = method.transfer(list(p.notes), p.meter, Capsule.of(q), strength=cfg.strength,
                                        rng=np.random.default_rng(cfg.seed))
                elapsed += time.perf_counter() - t0
                outs[q] = moved
                modes = heard_modes(moved)
                want = "major" if q.valence > 0 else "minor"
                for e in ESTIMATORS:
                    if modes[e] is None or heard[e] is None:
                        continue
                    hit = modes[e] == want
                    flips[e]["all_targets"].append(hit)
                    if heard[e] != want:
                        flips[e]["asked"].append(hit)
                        if q is Quadrant.Q3:
                            flips[e]["happy_to_sad"].append(hit)
                        if q is Quadrant.Q1:
                            flips[e]["sad_to_happy"].append(hit)
                contour.append(contour_correlation(p.notes, moved, beats))
                f1.append(onset_f1(p.notes, moved))
            happy, sad = outs[Quadrant.Q1], outs[Quadrant.Q3]
            b = len({round(n.onset, 6) for n in happy}) > len({round(n.onset, 6) for n in sad})
            loud = np.mean([n.velocity for n in happy]) > np.mean([n.velocity for n in sad])
            busier.append(b)
            louder.append(bool(loud))
            either.append(b or bool(loud))
        out[name] = {
            "flips": {e: {k: _share(v) for k, v in d.items()} for e, d in flips.items()},
            "contour": _mean(contour),
            "onset_f1": _mean(f1),
            "arousal": {"busier_or_louder": _share(either), "busier": _share(busier), "louder": _share(louder)},
            "ms_per_transfer": 1000 * elapsed / max(1, 4 * len(phrases)),
        }
    return out


def run_transfer_eval(cfg: TransferEvalConfig, progress: bool = False) -> dict:
    methods = methods_for(cfg)
    material = {"outside seeds": outside_phrases(cfg.phrase_bars)}
    notes: dict = {}
    if cfg.corpus:
        try:
            material["held-out corpus"] = heldout_phrases(cfg)
        except ConfigError as err:
            log.warning("%s: the outside seeds alone", err)
            notes["corpus_unavailable"] = str(err)
    result = {"config": asdict(cfg), "goals": GOALS, "methods": list(methods), "notes": notes,
              "material": {k: {"phrases": len(v), "names": [p.name for p in v]} for k, v in material.items()},
              "results": {k: evaluate(v, methods, cfg, progress) for k, v in material.items()}}
    return result


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.0f} %"


def _num(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.2f}"


def markdown(result: dict) -> str:
    lines = ["# Transfer: the emotion heard changed, the phrase kept", "",
             f"Strength {result['config']['strength']:g}; valence heard by music21's Aarden-Essen (AE) and "
             "Temperley-Kostka-Payne (TKP) key finders; goals: flips >= 90 %, contour >= 0.7, onset F1 >= 0.6, "
             "arousal (happy busier or louder than sad) >= 80 %. The rule draws no candidates: its figures are "
             "those of one draw.", ""]
    for material, per_method in result["results"].items():
        n = result["material"][material]["phrases"]
        lines += [f"## {material} ({n} phrases of {result['config']['phrase_bars']} bars)", "",
                  "| method | flips AE | flips TKP | happy->sad AE / TKP | sad->happy AE / TKP | four targets AE / TKP "
                  "| contour | onset F1 | arousal (busier / louder) | ms |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in per_method.items():
            f = r["flips"]
            ae, tkp = f["aarden_essen"], f["temperley_kostka_payne"]
            a = r["arousal"]
            lines.append(
                f"| {name} | {_pct(ae['asked']['share'])} (n={ae['asked']['n']}) | {_pct(tkp['asked']['share'])} "
                f"(n={tkp['asked']['n']}) | {_pct(ae['happy_to_sad']['share'])} / {_pct(tkp['happy_to_sad']['share'])} "
                f"| {_pct(ae['sad_to_happy']['share'])} / {_pct(tkp['sad_to_happy']['share'])} "
                f"| {_pct(ae['all_targets']['share'])} / {_pct(tkp['all_targets']['share'])} "
                f"| {_num(r['contour']['mean'])} | {_num(r['onset_f1']['mean'])} "
                f"| {_pct(a['busier_or_louder']['share'])} ({_pct(a['busier']['share'])} / "
                f"{_pct(a['louder']['share'])}) | {r['ms_per_transfer']:.1f} |")
        lines.append("")
    return "\n".join(lines)


@click.command("eval-transfer")
@click.option("--method", "methods", multiple=True,
              type=click.Choice(["rule", "rule-no-density", "cvae", "cvae-free"]),
              help="Methods to measure (repeatable; default: every available one, side by side).")
@click.option("--group", "groups", multiple=True, help="music21 corpus group for held-out phrases (repeatable).")
@click.option("--heldout-phrases", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--strength", type=click.FloatRange(0.0, 1.0), default=1.0, show_default=True)
@click.option("--no-corpus", is_flag=True, help="The outside seeds alone (no corpus cache needed).")
@click.option("--seed-value", type=int, default=0, show_default=True)
@click.option("--out-dir", type=click.Path(file_okay=False), default="docs/eval", show_default=True,
              help="Writes transfer.json and transfer.md here.")
def eval_transfer(methods, groups, heldout_phrases, strength, no_corpus, seed_value, out_dir) -> None:
    """Measure transfer: valence flips heard by music21, content kept, arousal; every method side by side."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = TransferEvalConfig(methods=tuple(methods), groups=tuple(groups), heldout_phrases=heldout_phrases,
                                 strength=strength, corpus=not no_corpus, seed=seed_value)
        result = run_transfer_eval(cfg, progress=True)
    except (ValueError, OSError, ImportError) as err:
        raise click.ClickException(str(err)) from err
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "transfer.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    text = markdown(result)
    (folder / "transfer.md").write_text(text + "\n", encoding="utf-8")
    click.echo(text)
    click.echo(f"wrote {folder / 'transfer.json'} and {folder / 'transfer.md'}")
