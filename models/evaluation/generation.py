"""Generation: phrases continuing seeds under one condition, through the runtime, each measured."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from affetto.analysis.emotion import Capsule
from affetto.analysis.judge import JudgeConfig, judge
from affetto.analysis.metrics import phrase_metrics
from affetto.models.data import DataConfig
from affetto.models.evaluation.config import EvalConfig, Generated
from affetto.models.evaluation.data import Phrase, phrase_from_notes
from affetto.models.evaluation.scoring import key_kept
from affetto.music.notes import Note, TimeSignature
from affetto.tokens.vocab import Vocabulary


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
        out.key_kept.append(key_kept(seed, phrase, capsule, data_config.min_key_clarity))
    out.seconds = time.perf_counter() - t0
    return out
