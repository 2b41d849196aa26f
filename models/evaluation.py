"""``affetto eval``: does the emotion knob work, and is the music good?

The protocol, in the order it runs:

1. Material. The model's manifest names its training data and data config;
   that data is loaded again and split as training split it, and its held-out
   ("test") pieces are cut into labelled 4-bar phrases (see
   :mod:`affetto.models.evaluation_data`). They are the seeds, the judges'
   ceilings and the reference for the music metrics.
2. Judges. The feature judge (:mod:`affetto.judge`, at the tempo labels use)
   and a learned judge (:mod:`affetto.models.emotion_classifier`) trained on
   phrases of the training split; both are scored on the held-out phrases.
3. Generation. For every condition (each quadrant at the daemon's default
   sampling, blends of neighbouring quadrants, guidance scales, temperatures)
   phrase i continues held-out seed i, so conditions differ only in the
   condition. Every generated phrase of ``phrase_bars`` bars is judged by both
   judges, measured by the music metrics, and its key compared with its seed's.
4. Likelihood. Bits per note of held-out segments under the ONNX model.

:func:`run_eval` returns a JSON-ready dict; :mod:`affetto.models.report` writes it out.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from affetto.emotion import Capsule, Quadrant
from affetto.errors import ConfigError
from affetto.judge import JudgeConfig, estimate_key, judge
from affetto.metrics import phrase_metrics
from affetto.music import Note, TimeSignature
from affetto.vocab import Vocabulary

from .data import DataConfig
from .emotion_classifier import ClassifierConfig
from .evaluation_data import (
    Phrase,
    Source,
    labelled_windows,
    load_seed_folder,
    load_source,
    phrase_from_notes,
    sample_indices,
)
from .evaluation_stats import chance, clean, mean_metrics, metric_gaps, proportion, summarise

log = logging.getLogger(__name__)

# Neighbouring quadrants share one axis; their even blend should keep that axis and sit on the other's edge.
BLENDS = (
    ("Q1+Q2 excited", (0.5, 0.5, 0.0, 0.0), "arousal", 1.0),
    ("Q2+Q3 dark", (0.0, 0.5, 0.5, 0.0), "valence", -1.0),
    ("Q3+Q4 quiet", (0.0, 0.0, 0.5, 0.5), "arousal", -1.0),
    ("Q4+Q1 bright", (0.5, 0.0, 0.0, 0.5), "valence", 1.0),
)


@dataclass(frozen=True)
class EvalConfig:
    model: str | None = None  # an affetto .onnx; None: the shipped model
    bars_per_quadrant: int = 200  # generated bars per quadrant at the default sampling
    seeds: str = "held-out"  # "held-out" (test split of the model's data) or a folder of MIDI files
    data: str | None = None  # the training data to split; None: the model's own (its manifest)
    guidance_scales: tuple[float, ...] = (1.0, 1.5, 3.0)
    temperatures: tuple[float, ...] = (0.8, 1.0, 1.2)
    candidate_counts: tuple[int, ...] = (1, 4, 8)  # bars drawn per bar kept (the judge picks; see the engine)
    sweep_bars: int = 100  # bars per quadrant for each guidance/temperature setting off the default
    blend_bars: int = 48  # bars per blended capsule
    phrase_bars: int = 4  # generated bars judged together (the judge needs a few bars for a key)
    nll_segments: int = 64  # held-out segments scored for bits per note
    judge_pieces: int = 1500  # training pieces (with augmented variants) the learned judge learns from
    learned_judge: bool = True
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    threads: int = 1  # ONNX Runtime and torch threads
    follow_mode: bool = True  # the engine moves a context to its parallel mode when the valence asks (as the daemon)
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("bars_per_quadrant", "sweep_bars", "blend_bars", "phrase_bars"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.nll_segments < 0 or self.judge_pieces < 1 or self.threads < 1:
            raise ConfigError("nll_segments must be >= 0, judge_pieces and threads >= 1")
        for g in self.guidance_scales:
            if not 0 <= g <= 20:
                raise ConfigError(f"guidance scales must be in [0, 20], got {g}")
        for t in self.temperatures:
            if not t > 0:
                raise ConfigError(f"temperatures must be > 0, got {t}")
        for n in self.candidate_counts:
            if not isinstance(n, int) or not 1 <= n <= 16:
                raise ConfigError(f"candidate counts must be ints in 1..16, got {n}")

    @classmethod
    def quick(cls, **changes) -> EvalConfig:
        """Tiny numbers for tests and smoke runs: seconds, not minutes; the figures mean little."""
        small = dict(bars_per_quadrant=8, sweep_bars=4, blend_bars=4, nll_segments=4, judge_pieces=40,
                     classifier=ClassifierConfig(steps=30, batch=16))
        return cls(**{**small, **changes})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Generated:
    """Phrases generated under one condition, with what was measured of each."""

    phrases: list[Phrase] = field(default_factory=list)
    feature: list[int] = field(default_factory=list)  # feature judge's quadrant
    valence: list[float] = field(default_factory=list)
    arousal: list[float] = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)
    # (same key, same tonic, target valence agrees with the seed's mode); None for an unclear seed
    key_kept: list[tuple | None] = field(default_factory=list)
    learned: list[int] = field(default_factory=list)
    seconds: float = 0.0
    tokens: int = 0


# ---- material ---------------------------------------------------------------------------
def _training_config(manifest: dict) -> dict:
    return (manifest.get("training") or {}).get("config") or {}


def _data_config(train: dict) -> DataConfig:
    dc = dict(train.get("data_config") or {})
    for key in ("time_scales", "velocity_scales"):
        if key in dc:
            dc[key] = tuple(dc[key])
    return DataConfig(**{k: v for k, v in dc.items() if k in DataConfig.__dataclass_fields__})


def resolve_material(
    cfg: EvalConfig, manifest: dict, vocab: Vocabulary, data_config: DataConfig, judge_config: JudgeConfig
) -> tuple[Source | None, list[int], list[Phrase], list[Phrase], dict]:
    """(training source or None, held-out piece indices, held-out phrases, seed phrases, report notes)."""
    train = _training_config(manifest)
    data = cfg.data or train.get("data") or "corpus"
    notes: dict = {"data": data}
    source: Source | None = None
    try:
        source = load_source(data, groups=tuple(train.get("groups") or ()), emopia=bool(train.get("emopia")),
                             labels_csv=None if cfg.data else train.get("labels"), vocab=vocab,
                             progress=cfg.progress)
    except ConfigError as err:
        if cfg.seeds == "held-out":
            raise ConfigError(f"{err}; or pass --seeds FOLDER") from err
        log.warning("%s: judges' ceilings use the seed folder and the learned judge is skipped", err)
        notes["data_unavailable"] = str(err)
    held_idx: list[int] = []
    heldout: list[Phrase] = []
    if source is not None:
        held_idx = source.indices("test") or source.indices("valid")
        notes["source"] = source.description
        notes["heldout_split"] = "test" if source.indices("test") else "valid"
        heldout = labelled_windows(source, held_idx, vocab, data_config, judge_config,
                                   window_bars=cfg.phrase_bars)
    if cfg.seeds == "held-out":
        seeds = heldout
        notes["seeds"] = f"held-out {notes.get('heldout_split')} split of {notes.get('source')}"
    else:
        folder = load_seed_folder(cfg.seeds, vocab)
        seeds = labelled_windows(folder, range(len(folder.pieces)), vocab, data_config, judge_config,
                                 window_bars=cfg.phrase_bars)
        notes["seeds"] = folder.description
        if not heldout:
            heldout = seeds
            notes["heldout_is_seed_folder"] = True
    seeds = [s for s in seeds if vocab.grid.steps_per_bar(s.meter) <= vocab.config.max_bar_steps]
    if not seeds:
        raise ConfigError(f"no usable seed phrases ({notes['seeds']})")
    notes.update(heldout_pieces=len(held_idx), heldout_phrases=len(heldout), seed_phrases=len(seeds))
    return source, held_idx, heldout, seeds, notes


# ---- generation --------------------------------------------------------------------------
def _engine_for(engines: dict, meter: TimeSignature, model_path: Path, threads: int, follow_mode: bool = True):
    if meter not in engines:
        from affetto.runtime import load_model

        engines[meter] = load_model(model_path, meter=meter, threads=threads, follow_mode=follow_mode)
    return engines[meter]


def generate_condition(engines: dict, model_path: Path, capsule: Capsule, sampling, seeds: Sequence[Phrase],
                       n_phrases: int, cfg: EvalConfig, judge_config: JudgeConfig, data_config: DataConfig,
                       vocab: Vocabulary, stream: int, bar=None) -> Generated:
    """``n_phrases`` phrases continuing seeds 0, 1, ... under ``capsule``, measured."""
    out = Generated()
    target = int(capsule.quadrant) if not capsule.is_unconditioned else -1
    t0 = time.perf_counter()
    for i in range(n_phrases):
        seed = seeds[i % len(seeds)]
        engine = _engine_for(engines, seed.meter, model_path, cfg.threads, cfg.follow_mode)
        tokens_before = engine.stats["tokens"]
        engine.prime(seed.notes, bars=seed.bars)
        rng = np.random.default_rng([cfg.seed, stream, i])
        notes: list[Note] = []
        length = seed.meter.beats_per_bar
        for b in range(cfg.phrase_bars):
            for n in engine.generate_bar(capsule, sampling, rng=rng):
                notes.append(Note(n.pitch, n.onset + b * length, n.duration, n.velocity))
            if bar is not None:
                bar.update(1)
        out.tokens += engine.stats["tokens"] - tokens_before
        phrase = phrase_from_notes(notes, seed.meter, cfg.phrase_bars, vocab, label=target)
        out.phrases.append(phrase)
        verdict = judge(phrase.notes, phrase.beats, data_config.label_tempo, judge_config)
        out.feature.append(int(verdict.quadrant))
        out.valence.append(verdict.valence)
        out.arousal.append(verdict.arousal)
        out.metrics.append(phrase_metrics(phrase.notes, phrase.meter, bars=phrase.bars))
        out.key_kept.append(_key_kept(seed, phrase, capsule, data_config.min_key_clarity))
    out.seconds = time.perf_counter() - t0
    return out


def _key_kept(seed: Phrase, phrase: Phrase, capsule: Capsule, min_clarity: float) -> tuple | None:
    """(same key, same tonic, target valence agrees with the seed's mode), or None for an unclear seed."""
    seed_key, cont_key = _phrase_key(seed), _phrase_key(phrase)
    if seed_key is None or seed_key[2] < min_clarity:
        return None
    agrees = (seed_key[1] == "major") == (capsule.valence >= 0)
    if cont_key is None:
        return (False, False, agrees)
    return (seed_key[:2] == cont_key[:2], seed_key[0] == cont_key[0], agrees)


# ---- scoring ------------------------------------------------------------------------------
def score(gens: dict[Quadrant, Generated], learned: bool) -> dict:
    """Both judges' summaries over one setting's four quadrants."""
    targets = [int(q) for q, g in gens.items() for _ in g.phrases]
    out = {"phrases": len(targets), "bars": sum(p.bars for g in gens.values() for p in g.phrases),
           "feature": summarise(targets, [v for g in gens.values() for v in g.feature])}
    if learned:
        out["learned"] = summarise(targets, [v for g in gens.values() for v in g.learned])
    return out


def _phrase_key(p: Phrase):
    if not p.notes:
        return None
    return estimate_key(np.array([n.pitch for n in p.notes]), np.array([n.duration for n in p.notes]))


def real_key_kept(heldout: Sequence[Phrase], min_clarity: float) -> dict:
    """The ceiling for key kept: how often the real next bars of a held-out piece keep a clear-key window's key.

    Adjacent windows of one piece (as :func:`labelled_windows` yields them, in
    order) are compared with the same estimator the continuations get.
    """
    kept = tonic = pairs = 0
    for a, b in itertools.pairwise(heldout):
        if a.piece != b.piece or a.piece < 0:
            continue
        ka, kb = _phrase_key(a), _phrase_key(b)
        if ka is None or kb is None or ka[2] < min_clarity:
            continue
        pairs += 1
        kept += ka[:2] == kb[:2]
        tonic += ka[0] == kb[0]
    return {"key_kept": proportion(kept, pairs), "tonic_kept": proportion(tonic, pairs), "pairs": pairs}


def coherence(gens: Sequence[Generated], ceiling: dict | None = None) -> dict:
    """Key kept by continuations of clear-key seeds: where emotion asks for no mode change, and overall.

    ``ceiling`` is :func:`real_key_kept` on the held-out pieces.
    """
    rows = [k for g in gens for k in g.key_kept if k is not None]
    agree = [k for k in rows if k[2]]
    return {
        "ceiling": ceiling,
        "key_kept": proportion(sum(k[0] for k in agree), len(agree)),
        "key_kept_all": proportion(sum(k[0] for k in rows), len(rows)),
        "tonic_kept_all": proportion(sum(k[1] for k in rows), len(rows)),
        "clear_seeds": len(rows),
        "note": "key_kept counts continuations whose target valence agrees with the seed's mode "
                "(major seed asked for Q1/Q4, minor for Q2/Q3); the others are asked to change mode",
    }


def _metric_section(gens: dict[Quadrant, Generated], heldout: Sequence[Phrase]) -> dict:
    corpus_rows = {q: [] for q in Quadrant}
    everything = []
    for p in heldout:
        row = phrase_metrics(p.notes, p.meter, bars=p.bars)
        everything.append(row)
        if 0 <= p.label < 4:
            corpus_rows[Quadrant(p.label)].append(row)
    overall_ref = mean_metrics(everything)
    out = {"corpus": overall_ref, "per_quadrant": {}}
    for q, g in gens.items():
        ref = mean_metrics(corpus_rows[q]) if corpus_rows[q] else overall_ref
        gen = mean_metrics(g.metrics)
        out["per_quadrant"][q.name] = {"generated": gen, "corpus": ref, "gap_percent": metric_gaps(gen, ref),
                                       "corpus_phrases": len(corpus_rows[q]) or len(everything)}
    all_gen = mean_metrics([m for g in gens.values() for m in g.metrics])
    out["overall"] = {"generated": all_gen, "corpus": overall_ref,
                      "gap_percent": metric_gaps(all_gen, overall_ref)}
    return out


# ---- the run -------------------------------------------------------------------------------
def run_eval(cfg: EvalConfig) -> dict:
    """Run the whole evaluation and return the report as a JSON-ready dict."""
    import torch

    from affetto.runtime import default_model_path, load_model

    torch.set_num_threads(cfg.threads)
    t_start = time.perf_counter()
    model_path = Path(cfg.model) if cfg.model else default_model_path()
    first = load_model(model_path, threads=cfg.threads, follow_mode=cfg.follow_mode)
    manifest, vocab = first.manifest, first.vocab
    judge_config = JudgeConfig(**manifest.get("judge", {}))
    data_config = _data_config(_training_config(manifest))
    stages: dict[str, float] = {}

    t = time.perf_counter()
    source, held_idx, heldout, seeds, material = resolve_material(cfg, manifest, vocab, data_config,
                                                                  judge_config)
    rng = np.random.default_rng(cfg.seed)
    seeds = [seeds[i] for i in rng.permutation(len(seeds))]
    stages["material"] = time.perf_counter() - t

    # Judges on real held-out phrases: the ceilings.
    t = time.perf_counter()
    labelled = [p for p in heldout if 0 <= p.label < 4]
    real_feature = [int(judge(p.notes, p.beats, data_config.label_tempo, judge_config).quadrant)
                    for p in labelled]
    training = manifest.get("training") or {}
    report: dict = {
        "model": {"path": str(model_path), "name": manifest.get("name"),
                  "content_hash": manifest.get("content_hash"), "model": manifest.get("model"),
                  "training_step": training.get("step"), "val_loss": training.get("val_loss")},
        "settings": clean(cfg.to_dict()),
        "material": material,
        "label_tempo": data_config.label_tempo,
        "chance": chance(),
        "ceiling": {"phrases": len(labelled),
                    "feature": summarise([p.label for p in labelled], real_feature)},
    }
    classifier = None
    if cfg.learned_judge and source is not None:
        from .corpus import default_cache_dir
        from .emotion_classifier import predict, trained_classifier

        train_idx = sample_indices(source.indices("train"), cfg.judge_pieces, cfg.seed)
        train_phrases = labelled_windows(source, train_idx, vocab, data_config, judge_config, augment=True,
                                         window_bars=cfg.phrase_bars, seed=cfg.seed)
        extra = {"source": source.description, "pieces": len(train_idx), "data_config": data_config.to_dict(),
                 "judge": judge_config.to_dict()}
        classifier, info = trained_classifier(train_phrases, vocab, cfg.classifier,
                                              default_cache_dir() / "judges", extra, progress=cfg.progress)
        report["learned_judge"] = {"training": info, "config": cfg.classifier.to_dict()}
        if labelled:
            verdicts = predict(classifier, labelled).argmax(axis=1).tolist()
            report["ceiling"]["learned"] = summarise([p.label for p in labelled], verdicts)
    elif cfg.learned_judge:
        report["learned_judge"] = {"skipped": "the model's training data is not available here"}
    stages["judges"] = time.perf_counter() - t

    # Conditions: (group, name, capsule, sampling). Identical (capsule, sampling) pairs are generated once.
    quadrants = list(Quadrant)
    base = {q: first.sampling_for(Capsule.of(q)) for q in quadrants}
    plan: dict[tuple, int] = {}  # (weights, sampling) -> phrases
    def want(capsule, sampling, bars):
        key = (capsule.weights, sampling)
        plan[key] = max(plan.get(key, 0), math.ceil(bars / cfg.phrase_bars))
    for q in quadrants:
        want(Capsule.of(q), base[q], cfg.bars_per_quadrant)
        for g in cfg.guidance_scales:
            want(Capsule.of(q), base[q].replace(guidance=g), cfg.sweep_bars)
        for temp in cfg.temperatures:
            want(Capsule.of(q), base[q].replace(temperature=temp), cfg.sweep_bars)
        for n in cfg.candidate_counts:
            want(Capsule.of(q), base[q].replace(candidates=n), cfg.sweep_bars)
    for _, weights, _, _ in BLENDS:
        capsule = Capsule(weights)
        want(capsule, first.sampling_for(capsule), cfg.blend_bars)

    t = time.perf_counter()
    engines = {TimeSignature(4, 4): first}
    results: dict[tuple, Generated] = {}
    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(plan.values()) * cfg.phrase_bars, desc="generating", unit="bar")
    for (weights, sampling), n in plan.items():
        # The condition names its own random stream, so a figure does not move when other settings are added.
        stream = zlib.crc32(repr((weights, sampling)).encode())
        if bar is not None:
            bar.set_postfix_str(f"{Capsule(weights)}, g={sampling.guidance:g}, t={sampling.temperature:g}")
        results[(weights, sampling)] = generate_condition(
            engines, model_path, Capsule(weights), sampling, seeds, n, cfg, judge_config, data_config, vocab,
            stream, bar)
    if bar is not None:
        bar.close()
    stages["generation"] = time.perf_counter() - t
    if classifier is not None:
        from .emotion_classifier import predict

        for g in results.values():
            g.learned = predict(classifier, g.phrases).argmax(axis=1).tolist() if g.phrases else []

    def setting(changes: dict) -> dict[Quadrant, Generated]:
        return {q: results[(Capsule.of(q).weights, base[q].replace(**changes))] for q in quadrants}

    main = setting({})
    learned = classifier is not None
    report["default_sampling"] = {q.name: base[q].as_kwargs() for q in quadrants}
    report["main"] = score(main, learned)
    report["guidance"] = [{"guidance": g, **score(setting({"guidance": g}), learned)}
                          for g in cfg.guidance_scales]
    report["temperature"] = [{"temperature": x, **score(setting({"temperature": x}), learned)}
                             for x in cfg.temperatures]
    report["candidates"] = [{"candidates": n, **score(setting({"candidates": n}), learned)}
                            for n in cfg.candidate_counts]
    report["blends"] = []
    for name, weights, axis, sign in BLENDS:
        capsule = Capsule(weights)
        g = results[(capsule.weights, first.sampling_for(capsule))]
        values = np.array(g.valence if axis == "valence" else g.arousal)
        entry = {"name": name, "weights": list(weights), "axis": axis, "intended": sign,
                 "phrases": len(g.phrases),
                 "feature": {"mean_valence": float(np.mean(g.valence)),
                             "mean_arousal": float(np.mean(g.arousal)),
                             "axis_accuracy": float(np.mean(np.sign(values) == sign)),
                             "judged": np.bincount(g.feature, minlength=4).tolist()}}
        if learned:
            entry["learned"] = {"judged": np.bincount(g.learned, minlength=4).tolist()}
        report["blends"].append(entry)
    report["metrics"] = _metric_section(main, heldout)
    report["coherence"] = coherence(list(main.values()), real_key_kept(heldout, data_config.min_key_clarity))

    t = time.perf_counter()
    report["nll"] = _nll(cfg, source, held_idx, first, vocab, data_config, judge_config)
    stages["nll"] = time.perf_counter() - t
    gen_bars = sum(len(g.phrases) * cfg.phrase_bars for g in results.values())
    gen_seconds = sum(g.seconds for g in results.values())
    report["timing"] = {**{f"{k}_s": v for k, v in stages.items()}, "total_s": time.perf_counter() - t_start,
                        "generated_bars": gen_bars,
                        "generated_tokens": sum(g.tokens for g in results.values()),
                        "ms_per_bar": 1000 * gen_seconds / max(1, gen_bars)}
    return clean(report)


def _nll(cfg: EvalConfig, source: Source | None, held_idx: list[int], engine, vocab: Vocabulary,
         data_config: DataConfig, judge_config: JudgeConfig) -> dict:
    """Bits per note on up to ``nll_segments`` held-out training-sized segments."""
    if source is None or not held_idx or cfg.nll_segments == 0:
        return {"skipped": "no held-out split of the model's data"}
    from .data import build_examples
    from .evaluation_nll import heldout_nll

    pieces_idx = sample_indices(held_idx, cfg.nll_segments, cfg.seed + 1)
    pieces = [source.pieces[i] for i in pieces_idx]
    labels = {k: source.labels[i] for k, i in enumerate(pieces_idx) if i in source.labels}
    examples = build_examples(pieces, vocab, data_config, judge_config, labels=labels, augment=False)
    pick = sample_indices(range(len(examples)), cfg.nll_segments, cfg.seed + 2)
    chosen = [examples[i] for i in pick]
    return heldout_nll(engine.session, engine.manifest, [e.tokens for e in chosen],
                       [e.quadrant for e in chosen], bos=vocab.bos,
                       pitch_range=(vocab.pitch0, vocab.vel0 - 1))
