"""Listening with ears the engine never consults.

The engine picks candidate bars with the project's feature judge, and the
learned judge learned from that judge's labels, so neither can say whether the
knob works. Here the valence of generated phrases is read by music21's
Aarden-Essen and Temperley-Kostka-Payne key finders, which shaped nothing;
every figure is given at 1 candidate (the model alone) and at the default; and
the questions a musician asks are measured directly:

- Are bars filled in their meter? (:func:`affetto.analysis.metrics.fill_stats`, per meter, unseeded.)
- What texture is it? Thin phrases (under 1.5 notes sounding on average),
  notes per onset, a bass under the line; onsets and velocity per quadrant.
- Is arousal heard? Per seed, how often the happy and tense continuations are
  at least 1.3x as busy as the sad and calm ones.
- Does a continuation follow its seed? Seeds from outside the corpus
  (:mod:`affetto.models.outside_seeds`): density rank correlation between
  seed and continuation, the seed's key kept when no change of mode is asked,
  polyphonic seeds continued polyphonic and melodies as melodies; beside the
  same figures for the seeds' own next bars.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.analysis.judge import JudgeConfig, estimate_key, judge
from affetto.analysis.metrics import fill_stats, polyphony
from affetto.errors import ConfigError
from affetto.models.evaluation.stats import proportion
from affetto.music.notes import Note, TimeSignature

log = logging.getLogger(__name__)

ESTIMATORS = {"aarden_essen": "AardenEssen", "temperley_kostka_payne": "TemperleyKostkaPayne"}
POLYPHONIC = 1.5  # mean pitches sounding (where any sounds) from which a phrase counts as polyphonic
THIN = 1.5  # a phrase with fewer notes sounding on average (where any sound) is thin
BASS = 55  # a bar has a bass when a note at or below G3 sounds an octave or more under its top line
BUSIER = 1.3  # onsets ratio a high-arousal continuation must reach over a low-arousal one of the same seed
DEFAULT = "default"  # the candidate setting that takes the model's own default


@dataclass(frozen=True)
class ListenConfig:
    model: str | None = None
    meters: tuple[str, ...] = ("4/4", "3/4", "6/8")
    unseeded_phrases: int = 12  # per meter, quadrant and candidate setting
    bars: int = 4  # bars generated per phrase
    seed_bars: int = 4  # bars of each outside seed played in; the next ones are the real continuation
    transpositions: tuple[int, ...] = (0, 2, -3, 5)
    candidates: tuple[int | str, ...] = (1, DEFAULT)
    without: tuple[str, ...] = ()  # levers of the emotion plan turned off (see affetto.runtime.plan.Levers)
    guidance: float | None = None  # a guidance scale for every phrase (None: the model's own settings)
    seed_folder: str | None = None  # default: the shipped outside seeds
    label_tempo: float = 110.0
    threads: int = 1
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        for m in self.meters:
            TimeSignature.parse(m)
        for name in ("unseeded_phrases", "bars", "seed_bars", "threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.guidance is not None and not self.guidance >= 1.0:
            raise ConfigError(f"guidance must be >= 1 (1: the conditioned row alone), got {self.guidance}")
        for c in self.candidates:
            if c != DEFAULT and not (isinstance(c, int) and 1 <= c <= 16):
                raise ConfigError(f"candidates must be ints in 1..16 or {DEFAULT!r}, got {c!r}")
        self.levers()  # validates

    def levers(self):
        from affetto.runtime.plan import Levers

        names = {f.name for f in fields(Levers)}
        unknown = sorted(set(self.without) - names)
        if unknown:
            raise ConfigError(f"unknown lever(s) {', '.join(unknown)}: use {', '.join(sorted(names))}")
        return Levers(**dict.fromkeys(self.without, False))

    def to_dict(self) -> dict:
        return asdict(self)


# ---- the independent ears ----------------------------------------------------------------
def independent_keys(notes: Sequence[Note]) -> dict[str, tuple[int, str] | None]:
    """(tonic pitch class, "major"/"minor") by each of music21's estimators; None for no notes."""
    if not notes:
        return dict.fromkeys(ESTIMATORS)
    from music21 import analysis, note, stream

    s: stream.Stream[note.Note] = stream.Stream()
    for n in notes:
        s.insert(float(n.onset), note.Note(n.pitch, quarterLength=float(n.duration)))
    out: dict[str, tuple[int, str] | None] = {}
    for name, cls in ESTIMATORS.items():
        key = getattr(analysis.discrete, cls)(s).getSolution(s)
        out[name] = (int(key.tonic.pitchClass), str(key.mode))
    return out


def krumhansl_key(notes: Sequence[Note]) -> tuple[int, str] | None:
    """The project's own estimate (the feature judge's), for comparison."""
    if not notes:
        return None
    tonic, mode, _ = estimate_key(np.array([n.pitch for n in notes]), np.array([n.duration for n in notes]))
    return tonic, mode


def onset_density(notes: Sequence[Note], beats: float) -> float:
    return len({round(n.onset * 48) for n in notes}) / beats


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Rank correlation (ties share their mean rank); NaN for fewer than 3 pairs or a constant side."""
    if len(a) != len(b):
        raise ValueError("spearman needs two sequences of one length")
    if len(a) < 3:
        return math.nan

    def ranks(x):
        x = np.asarray(x, dtype=float)
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x), dtype=float)
        for value in np.unique(x):
            same = x == value
            r[same] = r[same].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


# ---- material ------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeedPhrase:
    name: str
    meter: TimeSignature
    seed: tuple[Note, ...]  # the first bars, played in
    real_next: tuple[Note, ...]  # the bars that follow in the piece, onsets from their own first bar line


def outside_seed_phrases(cfg: ListenConfig) -> list[SeedPhrase]:
    from affetto.models.outside_seeds import SEED_FOLDER
    from affetto.music.midifile import read_midi

    folder = Path(cfg.seed_folder) if cfg.seed_folder else SEED_FOLDER
    paths = sorted(folder.glob("*.mid"))
    if not paths:
        raise ConfigError(f"no .mid seeds in {folder}")
    out = []
    for path in paths:
        phrase = read_midi(path)
        cut = cfg.seed_bars * phrase.meter.beats_per_bar
        end = cut + cfg.bars * phrase.meter.beats_per_bar
        for shift in cfg.transpositions:
            moved = [Note(min(127, max(0, n.pitch + shift)), n.onset, n.duration, n.velocity) for n in phrase.notes]
            seed = tuple(n for n in moved if n.onset < cut)
            nxt = tuple(Note(n.pitch, n.onset - cut, n.duration, n.velocity) for n in moved if cut <= n.onset < end)
            out.append(SeedPhrase(f"{path.stem}{shift:+d}", phrase.meter, seed, nxt))
    return out


# ---- generation ------------------------------------------------------------------------------
def continue_phrase(engine, seed: Sequence[Note], seed_bars: int, capsule: Capsule, bars: int,
                    candidates: int | str, rng: np.random.Generator, guidance: float | None = None) -> list[Note]:
    """``bars`` bars after ``seed`` (``seed_bars`` long; empty for none), onsets from the first new bar line;
    ``guidance`` replaces the model's own guidance scale."""
    engine.prime(list(seed), bars=seed_bars if seed else None)
    length = engine.meter.beats_per_bar
    from affetto.runtime.sampling import SamplingOverrides

    overrides = SamplingOverrides(candidates=None if candidates == DEFAULT else int(candidates), guidance=guidance)
    notes = []
    for b in range(bars):
        for n in engine.generate_bar(capsule, overrides, rng=rng):
            notes.append(Note(n.pitch, n.onset + b * length, n.duration, n.velocity))
    return notes


@dataclass
class Take:
    """One generated phrase and what it was asked."""

    meter: TimeSignature
    quadrant: int  # asked
    candidates: int | str
    notes: list[Note]
    seed: SeedPhrase | None = None
    same_as_seed: bool = False  # asked the quadrant the seed itself is judged in


def texture(notes: Sequence[Note], meter: TimeSignature, bars: int) -> dict[str, float]:
    """Notes sounding, notes per onset, onsets and velocity per bar, and the share of bars with a bass."""
    if not notes:
        return {"sounding": 0.0, "notes_per_onset": 0.0, "onsets_per_bar": 0.0, "velocity": math.nan, "bass": 0.0}
    length = meter.beats_per_bar
    with_bass = 0
    for b in range(bars):
        inside = [n for n in notes if n.onset < (b + 1) * length and n.end > b * length]
        if inside:
            low, top = min(n.pitch for n in inside), max(n.pitch for n in inside)
            with_bass += low <= BASS and top - low >= 12
    onsets = len({round(n.onset * 48) for n in notes})
    return {"sounding": polyphony(notes), "notes_per_onset": len(notes) / onsets, "onsets_per_bar": onsets / bars,
            "velocity": float(np.mean([n.velocity for n in notes])), "bass": with_bass / bars}


def _arousal_by_seed(takes: Sequence[Take], bars: int) -> dict:
    """Per seed: high-arousal (Q1, Q2) continuations against low (Q3, Q4), in onsets and in velocity."""
    groups: dict[str, dict[bool, list[dict]]] = {}
    for t in takes:
        if t.seed is not None:
            groups.setdefault(t.seed.name, {True: [], False: []})[t.quadrant in (0, 1)].append(
                texture(t.notes, t.meter, bars))
    busier = louder = 0
    ratios = []
    for g in groups.values():
        if not g[True] or not g[False]:
            continue
        hi, lo = (float(np.mean([x["onsets_per_bar"] for x in g[k]])) for k in (True, False))
        ratio = hi / lo if lo > 0 else math.inf
        ratios.append(ratio)
        busier += ratio >= BUSIER
        vh, vl = (float(np.nanmean([x["velocity"] for x in g[k]])) for k in (True, False))
        louder += vh > vl
    n = len(ratios)
    return {"seeds": n, "busier": proportion(busier, n), "louder": proportion(louder, n),
            "median_onset_ratio": float(np.median(ratios)) if ratios else math.nan}


def _mode_agrees(key: tuple[int, str] | None, quadrant: int) -> bool:
    return key is not None and (key[1] == "major") == (Quadrant(quadrant).valence > 0)


def _summary(takes: Sequence[Take], bars: int, label_tempo: float, judge_config: JudgeConfig) -> dict:
    """Valence by each estimator, arousal and quadrant by the feature judge, fill and texture."""
    if not takes:
        return {}
    agree = {name: 0 for name in (*ESTIMATORS, "krumhansl_judge")}
    arousal = 0
    fills, single = [], 0
    for t in takes:
        keys = independent_keys(t.notes)
        for name, key in keys.items():
            agree[name] += _mode_agrees(key, t.quadrant)
        agree["krumhansl_judge"] += _mode_agrees(krumhansl_key(t.notes), t.quadrant)
        beats = bars * t.meter.beats_per_bar
        verdict = judge(t.notes, beats, label_tempo, judge_config)
        arousal += (verdict.arousal > 0) == (t.quadrant in (0, 1))
        fills.append(fill_stats(t.notes, t.meter, bars=bars))
        single += bool(t.notes) and polyphony(t.notes) < 1.1
    n = len(takes)
    tex = [texture(t.notes, t.meter, bars) for t in takes]
    per_quadrant = {}
    for q in Quadrant:
        mine = [x for x, t in zip(tex, takes) if t.quadrant == int(q)]
        if mine:
            per_quadrant[q.name] = {k: float(np.nanmean([x[k] for x in mine])) for k in mine[0]}
    return {
        "phrases": n,
        "valence": {name: proportion(v, n) for name, v in agree.items()},
        "arousal_feature_judge": proportion(arousal, n),
        "fill": {k: float(np.nanmean([f[k] for f in fills])) for k in fills[0]},
        "single_line": proportion(single, n),
        "thin": proportion(sum(x["sounding"] < THIN for x in tex), n),
        "texture": {k: float(np.nanmean([x[k] for x in tex])) for k in tex[0]},
        "per_quadrant": per_quadrant,
    }


def _following(takes: Sequence[Take], seeds: Sequence[SeedPhrase], bars: int) -> dict:
    """Seed following for takes asked the seed's own quadrant, and the same figures for the real next bars."""
    def figures(pairs: Sequence[tuple[SeedPhrase, Sequence[Note]]]) -> dict:
        dens_seed, dens_cont = [], []
        kept = {name: [0, 0] for name in (*ESTIMATORS, "krumhansl_judge")}
        poly = {"polyphonic_kept": [0, 0], "melody_kept": [0, 0]}
        for seed, cont in pairs:
            beats_seed = max(1e-9, max((n.onset for n in seed.seed), default=0.0))
            seed_beats = math.ceil((beats_seed + 1e-9) / seed.meter.beats_per_bar) * seed.meter.beats_per_bar
            dens_seed.append(onset_density(seed.seed, seed_beats))
            dens_cont.append(onset_density(cont, bars * seed.meter.beats_per_bar))
            a, b = independent_keys(seed.seed), independent_keys(cont)
            for name in ESTIMATORS:
                kept[name][0] += a[name] is not None and a[name] == b[name]
                kept[name][1] += 1
            ka, kb = krumhansl_key(seed.seed), krumhansl_key(cont)
            kept["krumhansl_judge"][0] += ka is not None and ka == kb
            kept["krumhansl_judge"][1] += 1
            seed_poly = polyphony(seed.seed) >= POLYPHONIC
            cont_poly = bool(cont) and polyphony(cont) >= POLYPHONIC
            slot = poly["polyphonic_kept" if seed_poly else "melody_kept"]
            slot[0] += cont_poly == seed_poly
            slot[1] += 1
        return {"density_spearman": spearman(dens_seed, dens_cont),
                "density_pairs": [[round(x, 3), round(y, 3)] for x, y in zip(dens_seed, dens_cont)],
                "key_kept": {k: proportion(*v) for k, v in kept.items()},
                **{k: proportion(*v) for k, v in poly.items()}}

    generated = [(t.seed, t.notes) for t in takes if t.same_as_seed and t.seed is not None]
    return {"generated": figures(generated), "real_next_bars": figures([(s, s.real_next) for s in seeds])}


def listen(cfg: ListenConfig) -> dict:
    """Generate and measure; returns a JSON-ready report."""
    from affetto.runtime.engine import Engine, default_model_path

    model = Path(cfg.model) if cfg.model else default_model_path()
    judge_config = JudgeConfig()
    engines: dict[TimeSignature, Engine] = {}

    def engine_for(meter: TimeSignature):
        if meter not in engines:
            engines[meter] = Engine(model, meter=meter, threads=cfg.threads, levers=cfg.levers())
        return engines[meter]

    seeds = outside_seed_phrases(cfg)
    plan: list[tuple] = []  # (meter, quadrant, candidates, seed or None, same_as_seed)
    for c in cfg.candidates:
        for m in cfg.meters:
            for q in range(4):
                plan += [(TimeSignature.parse(m), q, c, None, False)] * cfg.unseeded_phrases
        for s in seeds:
            own = int(judge(list(s.seed), _seed_beats(s), cfg.label_tempo, judge_config).quadrant)
            for q in range(4):
                plan.append((s.meter, q, c, s, q == own))
    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=len(plan), desc="listening", unit="phrase")
    takes: list[Take] = []
    seconds: dict[str, list[float]] = {}
    for i, (meter, q, c, s, same) in enumerate(plan):
        engine = engine_for(meter)
        rng = np.random.default_rng([cfg.seed, i])
        t0 = time.perf_counter()
        notes = continue_phrase(engine, s.seed if s else [], cfg.seed_bars, Capsule.of(Quadrant(q)), cfg.bars, c,
                                rng, cfg.guidance)
        seconds.setdefault(str(c), []).append((time.perf_counter() - t0) / cfg.bars)
        takes.append(Take(meter, q, c, notes, s, same))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()

    report: dict = {"model": str(model), "settings": cfg.to_dict(), "unseeded": {}, "seeded": {}}
    for c in cfg.candidates:
        key = str(c)
        report["unseeded"][key] = {
            m: _summary([t for t in takes if t.seed is None and t.candidates == c and str(t.meter) == m],
                        cfg.bars, cfg.label_tempo, judge_config)
            for m in cfg.meters}
        seeded = [t for t in takes if t.seed is not None and t.candidates == c]
        report["seeded"][key] = {**_summary(seeded, cfg.bars, cfg.label_tempo, judge_config),
                                 "arousal_by_seed": _arousal_by_seed(seeded, cfg.bars),
                                 "following": _following(seeded, seeds, cfg.bars)}
        report.setdefault("ms_per_bar", {})[key] = 1000 * float(np.mean(seconds.get(key, [math.nan])))
    return report


def _seed_beats(s: SeedPhrase) -> float:
    last = max((n.onset for n in s.seed), default=0.0)
    return (math.floor(last / s.meter.beats_per_bar) + 1) * s.meter.beats_per_bar
