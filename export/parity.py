"""Parity of an exported graph with its PyTorch model, on ONNX Runtime.

Three checks, each on the same token sequences:

* prefill: the whole sequence in one run equals PyTorch's forward pass;
* decode: a prefix as past (at its used length), then one more token;
* step by step: every token alone through the shared, preallocated cache
  (the daemon's way), compared with the full forward pass.

Tolerances are per dtype: fp32 graphs must agree to ``1e-3`` on logits;
an int8 graph is judged by top-1 agreement and the largest logit difference
instead, since dynamic quantisation moves logits by design.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from affetto.models.transformer import EmotionTransformer
from affetto.runtime.session import (
    CachedSession,
    cache_dtype,
    graph_attention,
    graph_rows,
    guidance_rows,
    sequence_feeds,
)

FP32_ATOL = 1e-3


@dataclass
class ParityReport:
    prefill_max_diff: float
    decode_max_diff: float
    step_max_diff: float
    top1_agreement: float  # share of positions where the argmax agrees (step-by-step run)
    tokens: int

    def passed(self, atol: float = FP32_ATOL) -> bool:
        return max(self.prefill_max_diff, self.decode_max_diff, self.step_max_diff) <= atol

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"prefill max|diff| {self.prefill_max_diff:.2e}, decode {self.decode_max_diff:.2e}, "
            f"step-by-step {self.step_max_diff:.2e}, top-1 agreement {100 * self.top1_agreement:.2f}% "
            f"over {self.tokens} tokens"
        )


def session(model_bytes: bytes, threads: int = 1, *, optimized: bool = True) -> ort.InferenceSession:
    """A CPU session of ``model_bytes``; ``optimized=False`` runs the graph as written (no fusions), to read
    its intermediate values as the fp32 graph defines them."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if not optimized:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def _feeds(tokens: np.ndarray, cond: np.ndarray, past: list[np.ndarray] | None, model: EmotionTransformer,
           attention: str, kv_dtype: type[np.generic] = np.float32):
    cfg = model.cfg
    return sequence_feeds(tokens, cond, past, n_layer=cfg.n_layer, heads=cfg.n_head, kv_heads=cfg.kv_heads,
                          head_dim=cfg.head_dim, attention=attention, kv_dtype=kv_dtype)


def calibration_feeds(model: EmotionTransformer, sequences: list[np.ndarray], cond: np.ndarray,
                      attention: str = "matmul", rows: int = 2, kv_dtype: type[np.generic] = np.float32):
    """Feeds of whole sequences for int8 calibration of the graph with ``attention`` (and a cache of
    ``kv_dtype``): each under its capsule and, with two ``rows`` (the engine's for guidance), unconditioned;
    with one (a guidance-distilled model), under its capsule alone."""
    for seq, c in zip(sequences, cond):
        capsules = np.array(guidance_rows(c, rows), np.float32)
        yield _feeds(np.stack([seq] * rows).astype(np.int64), capsules, None, model, attention, kv_dtype)


def run_full(sess: ort.InferenceSession, model: EmotionTransformer, tokens: np.ndarray, cond: np.ndarray):
    """Logits of the whole sequence in one run (empty past); fewer sequences than the graph's rows repeat."""
    B, rows = tokens.shape[0], graph_rows(sess)
    pad = np.arange(max(B, rows)) % B  # (rows,)
    out = sess.run(None, _feeds(tokens[pad], cond[pad], None, model, graph_attention(sess), cache_dtype(sess)))
    return [out[0][:B], *out[1:]]


def run_steps(
    sess: ort.InferenceSession, model: EmotionTransformer, tokens: np.ndarray, cond: np.ndarray
) -> np.ndarray:
    """Logits of every position, one token per run: through a shared buffer of max_len (GroupQueryAttention's
    way, as the daemon runs it), or, for the MatMul attention, the cache so far bound at its used length,
    each step's ``present`` appended to it."""
    cfg = model.cfg
    B, T = tokens.shape
    out = np.empty((B, T, cfg.vocab_size), np.float32)
    if graph_attention(sess) == "matmul":
        past = [np.zeros((1, B * cfg.kv_heads, 0, cfg.head_dim), np.float32) for _ in range(2 * cfg.n_layer)]
        for t in range(T):
            logits, present = sess.run(["logits", "present"],
                                       _feeds(tokens[:, t : t + 1].astype(np.int64), cond, past, model, "matmul"))
            out[:, t] = logits[:, 0]
            step = present.reshape(2 * cfg.n_layer, 1, B * cfg.kv_heads, 1, cfg.head_dim)
            past = [np.concatenate([p, s], axis=2) for p, s in zip(past, step)]
        return out
    caches = [
        ort.OrtValue.ortvalue_from_numpy(np.zeros((1, B * cfg.kv_heads, cfg.max_len, cfg.head_dim), np.float32))
        for _ in range(2 * cfg.n_layer)
    ]
    io = sess.io_binding()
    for i in range(cfg.n_layer):
        for j, kind in enumerate(("key", "value")):
            io.bind_ortvalue_input(f"past_key_values.{i}.{kind}", caches[2 * i + j])
            io.bind_ortvalue_output(f"present.{i}.{kind}", caches[2 * i + j])
    io.bind_cpu_input("cond", cond.astype(np.float32))
    logits = ort.OrtValue.ortvalue_from_numpy(np.zeros((B, 1, cfg.vocab_size), np.float32))
    io.bind_ortvalue_output("logits", logits)
    for t in range(T):
        io.bind_cpu_input("tokens", np.ascontiguousarray(tokens[:, t : t + 1].astype(np.int64)))
        io.bind_cpu_input("position_ids", np.array([[t]], np.int64))
        io.bind_cpu_input("attention_bias", np.zeros((1, 1, 1, t + 1), np.float32))
        io.bind_cpu_input("seqlens_k", np.array([t], np.int32))
        io.bind_cpu_input("total_sequence_length", np.array(t + 1, np.int32))
        sess.run_with_iobinding(io)
        out[:, t] = logits.numpy()[:, 0]
    return out


def check_parity(model_bytes: bytes, model: EmotionTransformer, tokens: np.ndarray, cond: np.ndarray) -> ParityReport:
    """Compare the graph with ``model`` on ``tokens`` (B, T) under capsules ``cond`` (B, 4)."""
    if tokens.ndim != 2 or tokens.shape[1] < 3:
        raise ValueError("parity needs a (batch, >= 3 tokens) array")
    sess = session(model_bytes)
    rows = graph_rows(sess)
    if tokens.shape[0] > rows:  # a graph of fewer rows (one, for a distilled model) checks them a few at a time
        parts = [check_parity(model_bytes, model, tokens[i : i + rows], cond[i : i + rows])
                 for i in range(0, tokens.shape[0], rows)]
        return ParityReport(
            prefill_max_diff=max(p.prefill_max_diff for p in parts),
            decode_max_diff=max(p.decode_max_diff for p in parts),
            step_max_diff=max(p.step_max_diff for p in parts),
            top1_agreement=sum(p.top1_agreement * p.tokens for p in parts) / sum(p.tokens for p in parts),
            tokens=sum(p.tokens for p in parts),
        )
    model = model.eval()
    with torch.no_grad():
        ref, _presents = model(torch.from_numpy(tokens.astype(np.int64)), torch.from_numpy(cond.astype(np.float32)))
    ref = ref.numpy()
    full = run_full(sess, model, tokens, cond)[0]

    split = tokens.shape[1] - 1
    with torch.no_grad():
        _, past = model(torch.from_numpy(tokens[:, :split].astype(np.int64)), torch.from_numpy(cond.astype(np.float32)))
    B, H, P, hs = past[0][0].shape  # (B, nh, P, hs): the graph's rows are halves of its heads
    flat = [t.numpy().reshape(1, B * H, P, hs) for kv in past for t in kv]
    decode = sess.run(["logits"], _feeds(tokens[:, split:], cond, flat, model, graph_attention(sess)))[0]

    steps = run_steps(sess, model, tokens, cond)
    return ParityReport(
        prefill_max_diff=float(np.abs(full - ref).max()),
        decode_max_diff=float(np.abs(decode[:, 0] - ref[:, split]).max()),
        step_max_diff=float(np.abs(steps - ref).max()),
        top1_agreement=float((steps.argmax(-1) == ref.argmax(-1)).mean()),
        tokens=int(tokens.size),
    )


def agreement(fp32_bytes: bytes, other_bytes: bytes, model: EmotionTransformer, sequences: list[np.ndarray],
              cond: np.ndarray) -> dict[str, float]:
    """Top-1 agreement and max logit difference of two graphs over real sequences."""
    a_sess, b_sess = session(fp32_bytes), session(other_bytes)
    same = total = 0
    max_diff = 0.0
    for seq, c in zip(sequences, cond):
        tokens = seq[None, :].astype(np.int64)
        a = run_full(a_sess, model, tokens, c[None])[0]
        b = run_full(b_sess, model, tokens, c[None])[0]
        same += int((a.argmax(-1) == b.argmax(-1)).sum())
        total += a.shape[1]
        max_diff = max(max_diff, float(np.abs(a - b).max()))
    return {"top1_agreement": same / max(1, total), "max_logit_diff": max_diff, "tokens": total}


def decode_agreement(reference_bytes: bytes, other_bytes: bytes, model: Any,
                     sequences: list[np.ndarray], cond: np.ndarray, prefix: int = 32) -> dict[str, float]:
    """Top-1 agreement, max logit difference and mean KL divergence (nats, the reference's distribution from
    the other's) of two graphs decoding through the engine's own cache.

    Each sequence's first ``prefix`` tokens are read in one run, the rest one token at a time, every
    row (the capsule and, in a graph of two, the unconditioned one) compared at every token: the way a
    graph whose cache differs (an int8 KV cache) is used, and where its error builds up.
    """
    cfg = model.cfg
    sessions = [session(reference_bytes), session(other_bytes)]
    caches = [CachedSession(s, n_layer=cfg.n_layer, heads=cfg.n_head, kv_heads=cfg.kv_heads, head_dim=cfg.head_dim,
                            max_len=cfg.max_len, vocab_size=cfg.vocab_size, bos=int(sequences[0][0]))
              for s in sessions]
    same = total = 0
    max_diff = kl = 0.0
    for seq, c in zip(sequences, cond):
        for cache in caches:
            cache.condition(guidance_rows(c, cache.rows))
            cache.reset([int(t) for t in seq[:prefix]])
            cache.prefill()
        for t in [None, *seq[prefix:]]:
            if t is not None:
                for cache in caches:
                    cache.feed([int(t)])
            a, b = caches[0].logits, caches[1].logits  # (rows, vocab)
            same += int((a.argmax(-1) == b.argmax(-1)).sum())
            total += a.shape[0]
            max_diff = max(max_diff, float(np.abs(a - b).max()))
            kl += float(_kl(a, b).sum())
    return {"top1_agreement": same / max(1, total), "max_logit_diff": max_diff, "mean_kl": kl / max(1, total),
            "tokens": total}


def _kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """KL(softmax(a) || softmax(b)) per row of logits, in nats."""
    from affetto.models.evaluation.nll import log_softmax

    la, lb = log_softmax(a), log_softmax(b)
    return (np.exp(la) * (la - lb)).sum(-1)
