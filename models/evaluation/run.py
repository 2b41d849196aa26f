"""The whole run: material, judges, generation, scoring, likelihood; a JSON-ready report."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.analysis.judge import JudgeConfig, judge
from affetto.ensemble.accompany import stable_seed
from affetto.models.data import DataConfig
from affetto.models.evaluation.config import BLENDS, EvalConfig, Generated
from affetto.models.evaluation.data import Source, labelled_windows, sample_indices
from affetto.models.evaluation.generation import generate_condition
from affetto.models.evaluation.material import data_config_of, resolve_material, training_config
from affetto.models.evaluation.scoring import coherence, metric_section, real_key_kept, score
from affetto.models.evaluation.stats import chance, clean, summarise
from affetto.music.notes import TimeSignature
from affetto.tokens.vocab import Vocabulary

log = logging.getLogger(__name__)


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
    data_config = data_config_of(training_config(manifest))
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
        from affetto.models.corpus import default_cache_dir
        from affetto.models.emotion_classifier import predict, trained_classifier

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
        for scale in cfg.guidance_scales:
            want(Capsule.of(q), base[q].replace(guidance=scale), cfg.sweep_bars)
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
        stream = stable_seed(weights, sampling)
        if bar is not None:
            bar.set_postfix_str(f"{Capsule(weights)}, g={sampling.guidance:g}, t={sampling.temperature:g}")
        results[(weights, sampling)] = generate_condition(
            engines, model_path, Capsule(weights), sampling, seeds, n, cfg, judge_config, data_config, vocab,
            stream, bar)
    if bar is not None:
        bar.close()
    stages["generation"] = time.perf_counter() - t
    if classifier is not None:
        from affetto.models.emotion_classifier import predict

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
    report["metrics"] = metric_section(main, heldout)
    report["coherence"] = coherence(list(main.values()), real_key_kept(heldout, data_config.min_key_clarity))

    t = time.perf_counter()
    report["nll"] = _nll(cfg, source, held_idx, first, vocab, data_config, judge_config)
    stages["nll"] = time.perf_counter() - t
    if cfg.listen:
        from affetto.models.evaluation.listening import ListenConfig, listen

        t = time.perf_counter()
        report["listening"] = listen(ListenConfig(
            model=str(model_path), unseeded_phrases=cfg.listen_phrases, transpositions=(0,) if cfg.listen_phrases < 4
            else (0, 2, -3, 5), label_tempo=data_config.label_tempo, threads=cfg.threads, seed=cfg.seed,
            progress=cfg.progress))
        stages["listening"] = time.perf_counter() - t
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
    from affetto.models.data import build_examples
    from affetto.models.evaluation.nll import heldout_nll

    pieces_idx = sample_indices(held_idx, cfg.nll_segments, cfg.seed + 1)
    pieces = [source.pieces[i] for i in pieces_idx]
    labels = {k: source.labels[i] for k, i in enumerate(pieces_idx) if i in source.labels}
    examples = build_examples(pieces, vocab, data_config, judge_config, labels=labels, augment=False)
    pick = sample_indices(range(len(examples)), cfg.nll_segments, cfg.seed + 2)
    chosen = [examples[i] for i in pick]
    return heldout_nll(engine.session, engine.manifest, [e.tokens for e in chosen],
                       [e.quadrant for e in chosen], bos=vocab.bos,
                       pitch_range=(vocab.pitch0, vocab.vel0 - 1))
