"""Scoring: both judges' summaries, key kept, and the music metrics against the corpus."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.analysis.judge import estimate_key
from affetto.analysis.metrics import phrase_metrics
from affetto.models.evaluation.config import Generated
from affetto.models.evaluation.data import Phrase
from affetto.models.evaluation.stats import mean_metrics, metric_gaps, proportion, summarise


def key_kept(seed: Phrase, phrase: Phrase, capsule: Capsule, min_clarity: float) -> tuple | None:
    """(same key, same tonic, target valence agrees with the seed's mode), or None for an unclear seed."""
    seed_key, cont_key = _phrase_key(seed), _phrase_key(phrase)
    if seed_key is None or seed_key[2] < min_clarity:
        return None
    agrees = (seed_key[1] == "major") == (capsule.valence >= 0)
    if cont_key is None:
        return (False, False, agrees)
    return (seed_key[:2] == cont_key[:2], seed_key[0] == cont_key[0], agrees)


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


def metric_section(gens: dict[Quadrant, Generated], heldout: Sequence[Phrase]) -> dict:
    corpus_rows: dict[Quadrant, list[dict[str, float]]] = {q: [] for q in Quadrant}
    everything = []
    for p in heldout:
        row = phrase_metrics(p.notes, p.meter, bars=p.bars)
        everything.append(row)
        if 0 <= p.label < 4:
            corpus_rows[Quadrant(p.label)].append(row)
    overall_ref = mean_metrics(everything)
    out: dict[str, Any] = {"corpus": overall_ref, "per_quadrant": {}}
    for q, g in gens.items():
        ref = mean_metrics(corpus_rows[q]) if corpus_rows[q] else overall_ref
        gen = mean_metrics(g.metrics)
        out["per_quadrant"][q.name] = {"generated": gen, "corpus": ref, "gap_percent": metric_gaps(gen, ref),
                                       "corpus_phrases": len(corpus_rows[q]) or len(everything)}
    all_gen = mean_metrics([m for g in gens.values() for m in g.metrics])
    out["overall"] = {"generated": all_gen, "corpus": overall_ref,
                      "gap_percent": metric_gaps(all_gen, overall_ref)}
    return out
