"""One ONNX Runtime session of a cached decoder: providers, IOBinding and the shared KV cache.

The cache is one preallocated buffer of ``max_len`` positions per layer and
tensor, bound once with IOBinding as both the past input and the present
output, so ONNX Runtime's GroupQueryAttention writes new keys in place: no
step copies the cache. The session also holds the *context*, the tokens whose
keys the cache is meant to hold; ``cached`` says how many of them it really
holds. Everything that changes the context goes through the public methods:

    reset(tokens)        a new context, nothing cached
    condition(rows)      one capsule per batch row; a change invalidates the cache
    prefill()            run the context tokens not yet cached, as one batch
    step(token)          feed one token, append it to the context
    rewind(length, ...)  forget everything after ``length`` tokens (free: the
                         next step overwrites those slots)

``logits`` is the (batch, vocab) view of the last position's logits, valid
after ``prefill``/``step`` (or restored by ``rewind``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from affetto.errors import ConfigError, ModelFileError

log = logging.getLogger(__name__)

Rows = tuple[tuple[float, ...], ...]


def choose_providers(requested: str = "auto") -> list[str]:
    """Execution providers to ask for, best first; CPU is always the last resort.

    ``auto`` picks CPU: the shipped models are a few MB, where a decode step
    on CPU costs less than the kernel launches of a GPU step. ``cuda`` and
    ``coreml`` ask for those providers when this ONNX Runtime has them.
    """
    available = ort.get_available_providers()
    wanted = {"auto": [], "cpu": [], "cuda": ["CUDAExecutionProvider"], "coreml": ["CoreMLExecutionProvider"]}
    if requested not in wanted:
        raise ConfigError(f"provider must be one of {', '.join(wanted)}, got {requested!r}")
    chosen = [p for p in wanted[requested] if p in available]
    if wanted[requested] and not chosen:
        log.warning("%s was asked for but this ONNX Runtime has only %s; using CPU", requested, available)
    return [*chosen, "CPUExecutionProvider"]


def open_session(path: Path, *, threads: int, provider: str = "auto") -> ort.InferenceSession:
    """An ONNX Runtime session for ``path`` on ``threads`` intra-op threads and the chosen provider."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = choose_providers(provider)
    if len(providers) > 1:
        # A missing CUDA library is reported below, once, not as a page of errors.
        ort.set_default_logger_severity(4)
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as err:  # ONNX Runtime raises its own Fail/InvalidGraph types
        raise ModelFileError(f"{path}: ONNX Runtime cannot load this model ({err})") from err
    finally:
        ort.set_default_logger_severity(2)  # ONNX Runtime's default: warnings
    if providers[0] != session.get_providers()[0]:
        log.warning("%s could not be loaded (missing libraries?); running on %s",
                    providers[0], session.get_providers()[0])
    return session


class CachedSession:
    """A cached decoder's session, its shared KV cache and the context the cache holds."""

    def __init__(
        self,
        session: ort.InferenceSession,
        *,
        n_layer: int,
        n_head: int,
        head_dim: int,
        max_len: int,
        vocab_size: int,
        bos: int,
        stats: dict | None = None,
    ) -> None:
        self.session = session
        self.provider = session.get_providers()[0]
        self.device = "cuda" if self.provider == "CUDAExecutionProvider" else "cpu"
        self.n_layer, self.n_head, self.head_dim = n_layer, n_head, head_dim
        self.max_len, self.vocab_size = max_len, vocab_size
        self._context: list[int] = [bos]
        self._rows: Rows | None = None  # capsules of the rows whose keys are in the cache
        self._cached = 0  # context tokens whose keys are in the cache
        self._batch = 0
        self._last = np.zeros((0, vocab_size), np.float32)
        self.stats = stats if stats is not None else {}
        for key in ("tokens", "prefills", "prefill_tokens"):
            self.stats.setdefault(key, 0)

    # ---- what the cache holds ----------------------------------------------------------
    @property
    def context(self) -> tuple[int, ...]:
        """The context tokens (a copy)."""
        return tuple(self._context)

    @property
    def length(self) -> int:
        return len(self._context)

    @property
    def cached(self) -> int:
        """How many context tokens have their keys in the cache."""
        return self._cached

    @property
    def batch(self) -> int:
        return self._batch

    @property
    def logits(self) -> np.ndarray:
        """(batch, vocab) logits at the last position fed (a view into the bound output)."""
        return self._last

    def reset(self, tokens: Sequence[int]) -> None:
        """Replace the context; nothing of it is cached."""
        self._context = list(tokens)
        self._cached = 0

    def rewind(self, length: int, logits: np.ndarray | None = None) -> None:
        """Keep the first ``length`` context tokens; ``logits`` restores those seen after them."""
        if not 0 < length <= len(self._context):
            raise ValueError(f"cannot rewind a context of {len(self._context)} tokens to {length}")
        del self._context[length:]
        self._cached = min(self._cached, length)
        if logits is not None:
            self._last[:] = logits

    # ---- conditioning and buffers ----------------------------------------------------
    def condition(self, rows: Rows) -> bool:
        """One capsule (4 weights) per batch row; True when they changed and the cache was invalidated."""
        if rows == self._rows:
            return False
        if len(rows) != self._batch:
            self._bind(len(rows))
        self._cond[:] = np.asarray(rows, np.float32)
        self._io.bind_cpu_input("cond", self._cond)
        self._rows = rows
        self._cached = 0
        return True

    def _bind(self, batch: int) -> None:
        """Allocate the shared cache for ``batch`` rows and bind everything that stays put."""
        shape = (batch, self.n_head, self.max_len, self.head_dim)  # (B, nh, max_len, hs)
        self._caches = [
            ort.OrtValue.ortvalue_from_shape_and_type(shape, np.float32, self.device, 0)
            for _ in range(2 * self.n_layer)
        ]
        self._tok = np.zeros((batch, 1), np.int64)
        self._cond = np.zeros((batch, 4), np.float32)
        self._seqlens = np.zeros(batch, np.int32)
        self._total = np.zeros((), np.int32)
        self._logits = np.zeros((batch, 1, self.vocab_size), np.float32)  # (B, 1, V)
        self._last = self._logits[:, 0]
        io = self.session.io_binding()
        for i in range(self.n_layer):
            for j, kind in enumerate(("key", "value")):
                io.bind_ortvalue_input(f"past_key_values.{i}.{kind}", self._caches[2 * i + j])
                io.bind_ortvalue_output(f"present.{i}.{kind}", self._caches[2 * i + j])
        self._io = io
        self._step_values = [ort.OrtValue.ortvalue_from_numpy(a) for a in (self._tok, self._seqlens, self._total,
                                                                           self._logits)]
        self._batch = batch

    def _bind_step(self) -> None:
        tok, seqlens, total, logits = self._step_values
        self._io.bind_ortvalue_input("tokens", tok)
        self._io.bind_ortvalue_input("seqlens_k", seqlens)
        self._io.bind_ortvalue_input("total_sequence_length", total)
        self._io.bind_ortvalue_output("logits", logits)

    # ---- running the model -------------------------------------------------------------
    def prefill(self) -> int:
        """Run the context tokens not yet in the cache as one batch; returns how many ran."""
        if self._batch == 0:
            raise RuntimeError("condition the rows before running the model")
        new = self._context[self._cached :]
        if not new:
            return 0
        start = self._cached
        tokens = np.tile(np.asarray(new, np.int64), (self._batch, 1))  # (B, T)
        logits = np.zeros((self._batch, len(new), self.vocab_size), np.float32)  # (B, T, V)
        io = self._io
        io.bind_cpu_input("tokens", tokens)
        self._seqlens[:] = start + len(new) - 1
        self._total[...] = start + len(new)
        io.bind_ortvalue_input("seqlens_k", self._step_values[1])
        io.bind_ortvalue_input("total_sequence_length", self._step_values[2])
        io.bind_ortvalue_output("logits", ort.OrtValue.ortvalue_from_numpy(logits))
        self.session.run_with_iobinding(io)
        self._cached = len(self._context)
        self._logits[:] = logits[:, -1:]
        self._bind_step()
        self.stats["prefills"] += 1
        self.stats["prefill_tokens"] += len(new)
        return len(new)

    def step(self, token: int) -> None:
        """Feed one token (the whole context must be cached); its logits land in :attr:`logits`."""
        if self._cached >= self.max_len:
            raise RuntimeError("context overflow: slide before stepping")
        self._tok[:] = token
        self._seqlens[:] = self._cached
        self._total[...] = self._cached + 1
        self.session.run_with_iobinding(self._io)
        self._context.append(token)
        self._cached += 1
        self.stats["tokens"] += 1
