"""Held-out negative log-likelihood of an exported model, in bits, through ONNX Runtime.

Each held-out segment runs as one prefill (empty past, the whole sequence at
once) under its own label's capsule, as training's validation does; every
token after BOS is scored. Bits per note divides the total bits of every
token (bar lines, positions, pitches, velocities, durations) by the number of
notes, so models with different vocabularies or grids stay comparable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities of each row of ``logits`` (the last axis)."""
    top = logits.max(axis=-1, keepdims=True)
    shifted = logits - top
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def sequence_logits(session, manifest: dict, tokens: np.ndarray, cond: np.ndarray) -> np.ndarray:
    """(T, V) logits of one sequence ``tokens`` (T,) under capsule ``cond`` (4,), from an empty cache.

    A graph of two rows runs the second unconditioned and unused; a guidance-distilled model's one row
    takes the capsule with no guidance (its channel 0), the model's conditioned distribution as any other's.
    """
    from affetto.runtime.session import (
        cache_dtype,
        cache_shape,
        graph_attention,
        graph_capsule_width,
        graph_rows,
        guidance_rows,
        sequence_feeds,
    )

    n = graph_rows(session)
    capsule = np.zeros(graph_capsule_width(session), np.float32)  # a distilled model's guidance channel: 0
    capsule[: len(cond)] = cond
    capsules = np.array(guidance_rows(capsule, n), np.float32)  # (n, width)
    rows = np.tile(np.asarray(tokens, np.int64), (n, 1))  # (n, T)
    feeds = sequence_feeds(rows, capsules, None, **cache_shape(manifest["model"]), attention=graph_attention(session),
                           kv_dtype=cache_dtype(session))
    return session.run(["logits"], feeds)[0][0]


def token_logprobs(session, manifest: dict, tokens: np.ndarray, quadrant: int, *, bos: int) -> np.ndarray:
    """(T,) natural log-probabilities of ``tokens`` (T,), after BOS, under quadrant ``quadrant``'s capsule
    (none for a quadrant outside 0-3), from one run of the model."""
    full = np.concatenate([[bos], np.asarray(tokens, np.int64)])
    cond = np.zeros(4, np.float32)
    if 0 <= quadrant < 4:
        cond[quadrant] = 1.0
    logp = log_softmax(sequence_logits(session, manifest, full[:-1], cond).astype(np.float64))  # (T, V)
    return logp[np.arange(len(full) - 1), full[1:]]


def heldout_nll(session, manifest: dict, sequences: Sequence[np.ndarray], labels: Sequence[int], *,
                bos: int, pitch_range: tuple[int, int], progress=None) -> dict:
    """Bits per note and per token over ``sequences`` (token arrays without BOS) under their labels.

    ``pitch_range`` is the (first, last) pitch token id, to count notes.
    ``progress`` is called with 1 after each sequence.
    """
    max_len = int(manifest["model"]["max_len"])
    total_bits, tokens, notes = 0.0, 0, 0
    for seq, quadrant in zip(sequences, labels, strict=True):
        seq = np.asarray(seq, np.int64)[: max_len - 1]
        if len(seq) == 0:
            continue
        total_bits -= float(token_logprobs(session, manifest, seq, quadrant, bos=bos).sum()) / math.log(2)
        tokens += len(seq)
        notes += int(np.count_nonzero((seq >= pitch_range[0]) & (seq <= pitch_range[1])))
        if progress is not None:
            progress(1)
    return {
        "bits_per_note": total_bits / notes if notes else math.nan,
        "bits_per_token": total_bits / tokens if tokens else math.nan,
        "sequences": len(sequences),
        "tokens": tokens,
        "notes": notes,
        "conditioned_on": "each segment's own label",
    }
