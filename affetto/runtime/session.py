"""One ONNX Runtime session of a cached decoder: providers, IOBinding and the KV cache.

The cache takes one of two layouts, the graph's (see :mod:`affetto.export.graph`):

* ``matmul`` (graphs exported since the MatMul attention): keys (transposed)
  and values in arrays the session owns, bound at their used length rounded
  up to ``BLOCK`` slots (the attention's cost follows the context, not the
  model's positions); a run returns its own keys and values in ``present``
  and the session writes them into the arrays. Growing past the bound, or
  shrinking well below it, copies the arrays (once every ``BLOCK`` slots).
  The arrays live in host memory: on a GPU provider ONNX Runtime copies the
  bound cache to the device every run (not measured: no GPU here). In a
  graph exported with ``--kv-int8`` the arrays and ``present`` are int8
  (the graph quantises what it returns), bound at one block at least.
* ``gqa``: one preallocated buffer of ``max_len`` slots per layer and
  tensor, bound once with IOBinding as both the past input and the present
  output, so ONNX Runtime's GroupQueryAttention writes new keys in place
  (float32, or int8 in a graph exported with ``--kv-int8``, which the
  attention quantises as it writes and reads back as it is).

On the CPU no step copies the cache either way. The graph runs the two
rows of guidance (the conditioned and the unconditioned capsule) as one
batch; a guidance-distilled model's graph runs one row, whose capsule
carries the guidance scale in one more channel (:func:`guidance_value`).
The session also holds the *context*, the tokens whose keys the cache is
meant to hold (context token i in slot i);
``cached`` says how many of them it really holds.
Everything that changes the context goes through the public methods:

    reset(tokens)          a new context, nothing cached
    condition(rows)        one capsule per row; a change invalidates the cache
    extend(tokens)         append tokens to the context (not run yet)
    prefill(limit)         run the context tokens not yet cached (in runs of
                           ``PREFILL_CHUNK`` with the MatMul attention)
    feed(tokens)           append tokens to the context and run them
    rewind(length)         forget everything after ``length`` tokens (free: the
                           next run overwrites those slots)
    fork(n, room)          ``n`` candidates continuing the context side by side
                           (:class:`Fork`); ``keep`` makes one of them the context

``logits`` is the (rows, vocab) array of the last context position's logits,
valid after ``prefill``/``feed`` (and after a fork's ``keep``).
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
UNCONDITIONED = (0.0, 0.0, 0.0, 0.0)
CONTRACT = ("tokens", "cond", "position_ids", "attention_bias")
LAYOUT_INPUTS = {"matmul": ("attention_split",), "gqa": ("seqlens_k", "total_sequence_length")}
BLOCK = 32  # the matmul layout binds its cache at the used length rounded up to this many slots
SHRINK = 64  # ... and copies it into smaller arrays when this many slots or more are bound unused
PREFILL_CHUNK = 64  # tokens a run of the MatMul attention's prefill reads at most


def least_slots(dtype: type[np.generic]) -> int:
    """The fewest slots the MatMul attention's cache is bound at: an int8 cache is never empty (over no slots,
    ONNX Runtime's integer products leave their output unwritten where a MatMul writes zeros, and the attention
    weights have no largest: NaN logits); the slots past the used ones are hidden by the attention bias."""
    return 0 if dtype == np.float32 else 1


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


def guidance_value(scale: float, max_scale: float) -> float:
    """A guidance-distilled model's guidance channel for ``scale``: ``(scale - 1) / (max_scale - 1)``, held
    to [0, 1] (the scales it learnt; below 1, none)."""
    return min(1.0, max(0.0, (float(scale) - 1.0) / (max_scale - 1.0)))


def guidance_rows(capsule: Sequence[float] | np.ndarray, rows: int) -> Rows:
    """The capsules of a graph's ``rows`` for ``capsule``: itself, then, in a graph of two, the unconditioned
    capsule (zeros) that guidance mixes with. A guidance-distilled model's one row carries the scale in its
    capsule (:func:`guidance_value`)."""
    if rows not in (1, 2):
        raise ValueError(f"a graph runs one row or two (guidance's), got {rows}")
    row = tuple(float(w) for w in capsule)
    return (row, (0.0,) * len(row))[:rows]


def graph_capsule_width(session: ort.InferenceSession) -> int:
    """The weights of a row's capsule the graph takes: 4, or 5 with a guidance-distilled model's channel."""
    width = next((i.shape[1] for i in session.get_inputs() if i.name == "cond"), None)
    return width if isinstance(width, int) else len(UNCONDITIONED)


def graph_attention(session: ort.InferenceSession) -> str:
    """The graph's attention and so its cache layout: ``matmul`` or ``gqa``."""
    return "matmul" if any(o.name == "present" for o in session.get_outputs()) else "gqa"


def graph_rows(session: ort.InferenceSession) -> int:
    """How many rows (capsules) the graph runs at once; raises when it is not this engine's contract."""
    inputs = {i.name: i for i in session.get_inputs()}
    missing = [name for name in (*CONTRACT, *LAYOUT_INPUTS[graph_attention(session)]) if name not in inputs]
    rows = inputs["tokens"].shape[0] if "tokens" in inputs else None
    if missing or not isinstance(rows, int):
        raise ModelFileError(f"the graph lacks {', '.join(missing) or 'a fixed number of rows'}: it was exported "
                             "by an older affetto; export it again with `affetto export`")
    return rows


def cache_dtype(session: ort.InferenceSession) -> type[np.generic]:
    """The KV cache's element type: float32, or int8 for a graph exported with ``--kv-int8``."""
    past = next((i for i in session.get_inputs() if i.name == "past_key_values.0.key"), None)
    kinds: dict[str, type[np.generic]] = {"tensor(float)": np.float32, "tensor(int8)": np.int8}
    if past is None or past.type not in kinds:
        raise ModelFileError(f"the graph's KV cache is {past.type if past else 'missing'}: not one this engine runs")
    return kinds[past.type]


def cache_shape(model: dict) -> dict[str, int]:
    """The cache's layout from a manifest's ``model`` section, as :class:`CachedSession` and
    :func:`sequence_feeds` take it: layers, query heads, key/value heads per row (fewer than the heads with
    grouped-query attention) and the head size."""
    n_head = int(model["n_head"])
    return {"n_layer": int(model["n_layer"]), "heads": n_head, "kv_heads": int(model.get("n_kv_head") or n_head),
            "head_dim": int(model["d_model"]) // n_head}


def sequence_feeds(tokens: np.ndarray, cond: np.ndarray, past: Sequence[np.ndarray] | None, *,
                   n_layer: int, heads: int, kv_heads: int, head_dim: int,
                   attention: str = "matmul", kv_dtype: type[np.generic] = np.float32) -> dict[str, np.ndarray]:
    """Feeds for ``session.run`` of a graph with ``attention``: ``tokens`` (rows, S) under ``cond`` (rows, 4)
    after ``past``; an empty past is of ``kv_dtype`` (the graph's :func:`cache_dtype`).

    ``past`` is the keys and values of every layer at their used length,
    (1, rows * kv_heads, P, head_dim) each, in the order key, value; None is
    an empty cache. Every token sees the past and the tokens before it.
    """
    rows, S = tokens.shape
    P = 0 if past is None else past[0].shape[2]
    feeds: dict[str, np.ndarray] = {
        "tokens": np.asarray(tokens, np.int64),
        "cond": np.asarray(cond, np.float32),
        "position_ids": np.arange(P, P + S, dtype=np.int64)[None],  # (1, S)
    }
    if attention == "gqa":
        feeds["attention_bias"] = np.zeros((1, 1, S, P + S), np.float32)
        feeds["seqlens_k"] = np.array([P + S - 1], np.int32)
        feeds["total_sequence_length"] = np.array(P + S, np.int32)
        empty = np.zeros((1, rows * kv_heads, 0, head_dim), kv_dtype)
        for i in range(n_layer):
            feeds[f"past_key_values.{i}.key"] = empty if past is None else past[2 * i]
            feeds[f"past_key_values.{i}.value"] = empty if past is None else past[2 * i + 1]
        return feeds
    causal = np.where(np.tril(np.ones((S, S), bool)), 0.0, -np.inf).astype(np.float32)
    hidden = least_slots(kv_dtype) if past is None else 0
    bias = np.concatenate([np.zeros((S, P), np.float32), np.full((S, hidden), -np.inf, np.float32), causal], axis=1)
    feeds["attention_bias"] = np.repeat(bias, heads // kv_heads, axis=0)  # (S * G, P + S)
    feeds["attention_split"] = np.array([P + hidden, S], np.int64)
    for i in range(n_layer):
        if past is None:
            key = np.zeros((rows * kv_heads, head_dim, hidden), kv_dtype)
            value = np.zeros((rows * kv_heads, hidden, head_dim), kv_dtype)
        else:
            key = np.ascontiguousarray(past[2 * i][0].transpose(0, 2, 1))
            value = np.ascontiguousarray(past[2 * i + 1][0])
        feeds[f"past_key_values.{i}.key"], feeds[f"past_key_values.{i}.value"] = key, value
    return feeds


class CachedSession:
    """A cached decoder's session, its KV cache and the context the cache holds."""

    def __init__(
        self,
        session: ort.InferenceSession,
        *,
        n_layer: int,
        kv_heads: int,
        head_dim: int,
        max_len: int,
        vocab_size: int,
        bos: int,
        heads: int | None = None,
        stats: dict | None = None,
    ) -> None:
        self.session = session
        self.provider = session.get_providers()[0]
        self.device = "cuda" if self.provider == "CUDAExecutionProvider" else "cpu"
        self.rows = graph_rows(session)
        self.attention = graph_attention(session)
        self.kv_dtype = cache_dtype(session)
        self.n_layer, self.kv_heads, self.head_dim = n_layer, kv_heads, head_dim  # key/value heads per row
        self.max_len, self.vocab_size = max_len, vocab_size
        self._context: list[int] = [bos]
        self._capsules: Rows | None = None  # the rows' capsules of every cached key; None: mixed or unset
        self._cached = 0  # context tokens whose keys are in the cache (slots 0 .. cached - 1)
        self._stale = True  # ``_last`` is not the logits of the last context token
        self._last = np.zeros((self.rows, vocab_size), np.float32)
        self._cond = np.zeros((self.rows, graph_capsule_width(session)), np.float32)
        self._io = session.io_binding()
        self._conditioned = False
        # A step's inputs and outputs live in buffers made once per step width and bound while that width
        # runs; a run writes into them in place, so a decode step allocates and binds only its attention bias.
        self._steps: dict[int, _StepBuffers] = {}
        self._bound = 0  # the width whose buffers are bound (0: none)
        self.stats = stats if stats is not None else {}
        self._zeros = np.zeros(max_len, np.float32)  # a token that sees every slot before it, viewed to its length
        self._kv: _MatMulCache | _SharedCache
        if self.attention == "matmul":
            if heads is None or heads % kv_heads:
                raise ValueError(f"the MatMul attention needs the query heads (a multiple of {kv_heads}), got {heads}")
            self._kv = _MatMulCache(self._io, self.rows * kv_heads, heads // kv_heads, n_layer, head_dim, max_len,
                                    self.kv_dtype)
        else:
            self._kv = _SharedCache(self._io, self.rows * kv_heads, n_layer, head_dim, self.kv_dtype, self.device)
            self._reserve(max_len)

    # ---- what the cache holds ----------------------------------------------------------
    @property
    def context(self) -> tuple[int, ...]:
        """The context tokens (a copy)."""
        return tuple(self._context)

    @property
    def capsule_width(self) -> int:
        """The weights of a row's capsule: 4, or 5 with a guidance-distilled model's guidance channel."""
        return int(self._cond.shape[1])

    @property
    def length(self) -> int:
        return len(self._context)

    @property
    def cached(self) -> int:
        """How many context tokens have their keys in the cache."""
        return self._cached

    @property
    def capsules(self) -> Rows | None:
        """The rows' capsules the cached keys were computed under (None when they mix capsules)."""
        return self._capsules

    @property
    def logits(self) -> np.ndarray:
        """(rows, vocab) logits at the last context token (after ``prefill``, ``feed`` or a fork's ``keep``)."""
        return self._last

    def reset(self, tokens: Sequence[int]) -> None:
        """Replace the context; nothing of it is cached."""
        self._context = list(tokens)
        self._cached = 0
        self._stale = True

    def rewind(self, length: int) -> None:
        """Keep the first ``length`` context tokens; the next ``prefill`` gives their last one's logits."""
        if not 0 < length <= len(self._context):
            raise ValueError(f"cannot rewind a context of {len(self._context)} tokens to {length}")
        if length < len(self._context):
            del self._context[length:]
            self._stale = True
        self._cached = min(self._cached, length)

    def count(self, key: str, n: int) -> None:
        """Add ``n`` to the figure ``key`` of :attr:`stats` (the engine's, shared by its caches)."""
        self.stats[key] = self.stats.get(key, 0) + n

    # ---- conditioning and buffers ----------------------------------------------------
    def condition(self, rows: Rows, *, reread: bool = True) -> bool:
        """One capsule per row (4 weights, and a guidance-distilled model's guidance channel); True when
        they changed.

        A change invalidates the cache (the capsule is part of every
        position: the next ``prefill`` re-reads the context under it), unless
        ``reread`` is False: then only the tokens run from now on take the new
        capsules, the cached keys keep theirs, and the next ``condition``
        re-reads the context whatever it asks.
        """
        if len(rows) != self.rows:
            raise ValueError(f"this model runs {self.rows} rows, got {len(rows)} capsules")
        if any(len(row) != self._cond.shape[1] for row in rows):
            raise ValueError(f"this model's capsules have {self._cond.shape[1]} weights, got {rows}")
        if self._conditioned and rows == self._capsules:
            return False
        self._cond[:] = np.asarray(rows, np.float32)
        self._io.bind_cpu_input("cond", self._cond)
        self._conditioned = True
        if reread:
            self._capsules = rows
            self._cached = 0
            self._stale = True
        else:
            self._capsules = None
        return True

    def _reserve(self, slots: int) -> None:
        """Make room for ``slots`` cache slots (the context's and forks' tokens), keeping what is cached.

        The shared buffer allocates them now; the MatMul layout grows as runs need slots."""
        self._kv.reserve(slots, self._cached)

    def host_buffers(self) -> list[np.ndarray]:
        """The cache as arrays (1, rows * heads, slots, head_dim), key and value per layer (a copy off CPU, a
        view of the MatMul layout's keys, which it keeps transposed)."""
        return self._kv.host_buffers()

    def _move_slots(self, source: Sequence[int], start: int) -> None:
        """Copy the keys and values of slots ``source`` to the slots from ``start`` on."""
        index = np.asarray(source, np.intp)
        if not np.array_equal(index, np.arange(start, start + len(index))):
            self._kv.move(index, start)

    # ---- running the model -------------------------------------------------------------
    def _run(self, tokens: np.ndarray, positions: np.ndarray, visible: np.ndarray, total: int) -> np.ndarray:
        """Run ``tokens`` (S,) for every row into slots total - S .. total - 1; (rows, S, vocab) logits.

        ``visible`` (S, total) is 0 where a token may look and -inf elsewhere, over the slots before the
        step and the step's own (each token also sees no later one of the step: causality is added).
        The logits are a buffer the next run of the same width overwrites: callers copy what they keep.
        """
        if not self._conditioned:
            raise RuntimeError("condition the rows before running the model")
        S = len(tokens)
        io = self._io
        step = self._steps.get(S)
        if step is None:
            step = _StepBuffers(self.rows, S, self.vocab_size, self._kv.present_shape(S), self.kv_dtype)
            if S <= _KEPT_WIDTHS:  # decode steps: a few widths, again and again; a prefill's is used once
                self._steps[S] = step
        if self._bound != S or step is not self._steps.get(S):
            io.bind_ortvalue_input("tokens", step.tokens_value)
            io.bind_ortvalue_input("position_ids", step.positions_value)
            io.bind_ortvalue_output("logits", step.logits_value)
            if step.present_value is not None:
                io.bind_ortvalue_output("present", step.present_value)
            self._bound = S if step is self._steps.get(S) else 0
        step.tokens[:] = tokens  # every row reads the same tokens
        step.positions[0] = positions
        self._kv.before_run(visible, total)
        self.session.run_with_iobinding(io)
        self._kv.after_run(step.present, total)
        return step.logits

    def extend(self, tokens: Sequence[int]) -> None:
        """Append ``tokens`` to the context without running them (``prefill`` does)."""
        if tokens:
            self._context.extend(tokens)
            self._stale = True

    def prefill(self, limit: int | None = None) -> int:
        """Run the context tokens not yet in the cache (``limit`` of them at most); how many ran.

        GroupQueryAttention's graph reads them in one run; the MatMul attention's in runs of
        ``PREFILL_CHUNK`` tokens, whose scores (tokens x heads x slots) stay small: one run of 384
        tokens measured 47-55 ms and grew ONNX Runtime's memory by tens of MB, six of 64 took 37 ms.
        After a ``rewind`` that left nothing new, the last kept token runs
        again (its slot is rewritten with the same keys) to give its logits.
        """
        if self._stale and self._cached == len(self._context):
            self._cached -= 1
        start = self._cached
        new = self._context[start : None if limit is None else start + max(limit, 1)]
        if not new:
            return 0
        chunk = self._kv.prefill_chunk or len(new)
        for first in range(start, start + len(new), chunk):
            part = new[first - start : first - start + chunk]
            total = first + len(part)
            self._reserve(total)
            visible = self._zeros[None, :total].repeat(len(part), axis=0)  # causality is added by the run
            logits = self._run(np.asarray(part), np.arange(first, total), visible, total)
            self._cached = total
        self._last[:] = logits[:, -1]
        self._stale = self._cached < len(self._context)
        self.count("prefills", 1)
        self.count("prefill_tokens", len(new))
        return len(new)

    def feed(self, tokens: Sequence[int]) -> None:
        """Append ``tokens`` to the context and run everything not yet cached; their logits land in ``logits``."""
        if len(self._context) + len(tokens) > self.max_len:
            raise RuntimeError("context overflow: slide before feeding")
        self._context.extend(tokens)
        self._stale = True
        if len(tokens) == 1 and self._cached == len(self._context) - 1:  # the hot path: one token, no prefill
            total = self._cached + 1
            logits = self._run(np.asarray(tokens), np.array([self._cached]), self._zeros[None, :total], total)
            self._last[:] = logits[:, 0]
            self._cached, self._stale = total, False
            self.count("tokens", 1)
            return
        self.prefill()

    def fork(self, n: int, room: int) -> Fork:
        """``n`` candidates continuing the whole (cached) context, each at most ``room`` tokens long."""
        self.prefill()
        return Fork(self, n, room)


_KEPT_WIDTHS = 32  # step widths (tokens per run) whose buffers a session keeps


class _StepBuffers:
    """The inputs and outputs of runs of one width S, as arrays and the OrtValues sharing their memory."""

    def __init__(self, rows: int, width: int, vocab_size: int, present: tuple[int, ...] | None,
                 dtype: type[np.generic] = np.float32) -> None:
        self.tokens = np.zeros((rows, width), np.int64)  # (R, S)
        self.positions = np.zeros((1, width), np.int64)  # (1, S)
        self.logits = np.zeros((rows, width, vocab_size), np.float32)  # (R, S, V)
        self.tokens_value = ort.OrtValue.ortvalue_from_numpy(self.tokens)
        self.positions_value = ort.OrtValue.ortvalue_from_numpy(self.positions)
        self.logits_value = ort.OrtValue.ortvalue_from_numpy(self.logits)
        # the MatMul layout's keys and values of the step, which the session writes into its cache
        self.present = None if present is None else np.zeros(present, dtype)
        self.present_value = None if self.present is None else ort.OrtValue.ortvalue_from_numpy(self.present)


class Fork:
    """Candidates continuing a context side by side, all reading the one cache of the context.

    Each :meth:`step` feeds one token for each live candidate, in one run:
    the step's tokens take consecutive slots after the context, and the
    attention bias lets each see the context and its own earlier tokens only.
    :meth:`keep` moves one candidate's slots to follow the context and makes
    its tokens part of it; the other candidates' slots are free again.
    """

    def __init__(self, cache: CachedSession, n: int, room: int) -> None:
        if n < 1 or room < 1:
            raise ValueError(f"a fork needs n >= 1 and room >= 1, got {n} and {room}")
        self.cache, self.n = cache, n
        self.start = cache.cached  # == cache.length: the whole context is cached
        limit = self.start + n * room
        cache._reserve(limit)
        self.slots: list[list[int]] = [[] for _ in range(n)]
        self.tokens: list[list[int]] = [[] for _ in range(n)]
        self._next = self.start
        self._visible = np.full((n, limit), -np.inf, np.float32)  # (n, slots): 0 where a candidate may look
        self._visible[:, : self.start] = 0.0
        self._last = np.repeat(cache.logits[None], n, axis=0)  # (n, R, V): each candidate's latest logits

    def logits(self, i: int) -> np.ndarray:
        """(rows, vocab) logits after candidate ``i``'s latest token (the context's before its first)."""
        return self._last[i]

    @property
    def last(self) -> np.ndarray:
        """(candidates, rows, vocab): every candidate's :meth:`logits` (read-only by contract)."""
        return self._last

    def step(self, live: Sequence[int], tokens: Sequence[int]) -> None:
        """Feed ``tokens[j]`` to candidate ``live[j]`` (a candidate that is done just stops stepping)."""
        S = len(live)
        if len(tokens) != S or S == 0:
            raise ValueError(f"one token per live candidate: {len(live)} candidates, {len(tokens)} tokens")
        cache, first = self.cache, self._next
        total = first + S
        positions = np.empty(S, np.int64)
        for j, i in enumerate(live):
            self._visible[i, first + j] = 0.0
            self.slots[i].append(first + j)
            self.tokens[i].append(int(tokens[j]))
            positions[j] = self.start + len(self.slots[i]) - 1
        if positions.max() >= cache.max_len:
            raise RuntimeError("context overflow: slide before drawing")
        visible = self._visible[list(live), :total]  # (S, total), a copy
        logits = cache._run(np.asarray(tokens), positions, visible, total)  # (R, S, V)
        self._last[list(live)] = logits.transpose(1, 0, 2)
        self._next = total
        cache.count("tokens", S)

    def keep(self, i: int) -> list[int]:
        """Make candidate ``i`` the continuation of the context; returns its tokens."""
        cache = self.cache
        cache._move_slots(self.slots[i], self.start)
        cache._context.extend(self.tokens[i])
        cache._cached = self.start + len(self.tokens[i])
        cache._last[:] = self._last[i]
        cache._stale = False
        return list(self.tokens[i])


class _SharedCache:
    """GroupQueryAttention's cache: one buffer of slots per layer and tensor, (1, N, slots, head_dim), bound as
    both the past input and the present output, which the op writes in place."""

    prefill_chunk = 0  # a prefill reads every new token in one run

    def __init__(self, io: ort.IOBinding, heads: int, n_layer: int, head_dim: int, dtype: type[np.generic],
                 device: str) -> None:
        self.io, self.heads, self.n_layer, self.head_dim = io, heads, n_layer, head_dim
        self.dtype, self.device = dtype, device
        self.buffers: list[np.ndarray] = []
        self.values: list[ort.OrtValue] = []
        self.slots = 0
        self._seqlens = np.zeros(1, np.int32)
        self._total = np.zeros((), np.int32)
        io.bind_ortvalue_input("seqlens_k", ort.OrtValue.ortvalue_from_numpy(self._seqlens))
        io.bind_ortvalue_input("total_sequence_length", ort.OrtValue.ortvalue_from_numpy(self._total))

    def reserve(self, slots: int, cached: int) -> None:
        if slots <= self.slots:
            return
        slots = max(slots, self.slots + self.slots // 2)
        shape = (1, self.heads, slots, self.head_dim)
        old = self.host_buffers()
        buffers = [np.zeros(shape, self.dtype) for _ in range(2 * self.n_layer)]
        for new, before in zip(buffers, old):
            new[:, :, :cached] = before[:, :, :cached]
        if self.device == "cpu":  # the OrtValues share the arrays' memory
            values = [ort.OrtValue.ortvalue_from_numpy(b) for b in buffers]
        else:
            values = [ort.OrtValue.ortvalue_from_numpy(b, self.device, 0) for b in buffers]
        for i in range(self.n_layer):
            for j, kind in enumerate(("key", "value")):
                self.io.bind_ortvalue_input(f"past_key_values.{i}.{kind}", values[2 * i + j])
                self.io.bind_ortvalue_output(f"present.{i}.{kind}", values[2 * i + j])
        self.buffers, self.values, self.slots = buffers, values, slots

    def host_buffers(self) -> list[np.ndarray]:
        if self.device == "cpu":
            return self.buffers
        return [v.numpy() for v in self.values]

    def move(self, index: np.ndarray, start: int) -> None:
        for buffer, value in zip(self.host_buffers(), self.values):
            buffer[:, :, start : start + len(index)] = buffer[:, :, index]  # the gather copies first
            if self.device != "cpu":
                value.update_inplace(buffer)

    def present_shape(self, width: int) -> None:
        return None

    def before_run(self, visible: np.ndarray, total: int) -> None:
        self._seqlens[0] = total - 1
        self._total[()] = total
        self.io.bind_cpu_input("attention_bias", np.ascontiguousarray(visible)[None, None])  # (1, 1, S, total)

    def after_run(self, present: np.ndarray | None, total: int) -> None:
        pass


class _MatMulCache:
    """The MatMul attention's cache: keys (L, N, head_dim, bound), transposed, and values (L, N, bound,
    head_dim), bound per layer at ``bound`` slots, the used ones rounded up to ``BLOCK``; the slots past
    the used ones are hidden by the attention bias. A run reads slots 0 .. total - S - 1 (the ones before
    its step) and returns the step's keys and values, which :meth:`after_run` writes.

    A new bound lays the cache out again (a copy): the arrays are views of two stores used in turn, kept
    for the session's life, so that the copy lands in memory already paged in (fresh pages cost ten
    times the copy)."""

    prefill_chunk = PREFILL_CHUNK

    def __init__(self, io: ort.IOBinding, heads: int, group: int, n_layer: int, head_dim: int, max_len: int,
                 dtype: type[np.generic] = np.float32) -> None:
        self.io, self.heads, self.group, self.n_layer, self.head_dim = io, heads, group, n_layer, head_dim
        self.dtype = dtype
        self._least = least_slots(dtype)  # read twice a step by _fit
        self._per_slot = n_layer * heads * head_dim  # elements of keys (or values) a slot
        self._stores = [np.zeros(2 * self._per_slot * max_len, dtype) for _ in range(2)]
        self._turn = 0
        self.keys = np.zeros((n_layer, heads, head_dim, 0), dtype)
        self.values = np.zeros((n_layer, heads, 0, head_dim), dtype)
        self.bound = -1
        self._split = np.zeros(2, np.int64)  # (bound, S)
        self._lower: dict[int, np.ndarray] = {}  # causality within a step of S tokens
        io.bind_ortvalue_input("attention_split", ort.OrtValue.ortvalue_from_numpy(self._split))
        self._fit(0)

    def _fit(self, used: int) -> None:
        """Bind the cache at ``used`` slots rounded up; lay it out again when the bound grows, or when it is
        ``SHRINK`` slots or more larger."""
        target = -(-max(used, self._least) // BLOCK) * BLOCK
        if self.bound >= target and self.bound < target + SHRINK:
            return
        self._turn ^= 1
        size = self._per_slot * target
        if self._stores[self._turn].size < 2 * size:  # past max_len: candidates' slots
            self._stores[self._turn] = np.zeros(3 * size, self.dtype)
        store = self._stores[self._turn]
        keys = store[:size].reshape(self.n_layer, self.heads, self.head_dim, target)
        values = store[size : 2 * size].reshape(self.n_layer, self.heads, target, self.head_dim)
        kept = min(max(self.bound, 0), target)  # the slots past ``kept`` hold finite leftovers, hidden by the bias
        keys[..., :kept] = self.keys[..., :kept]
        values[:, :, :kept] = self.values[:, :, :kept]
        bound = []  # the OrtValues share the arrays' memory: what after_run writes, the next run reads
        for i in range(self.n_layer):
            for kind, array in (("key", keys[i]), ("value", values[i])):
                bound.append(ort.OrtValue.ortvalue_from_numpy(array))
                self.io.bind_ortvalue_input(f"past_key_values.{i}.{kind}", bound[-1])
        self.keys, self.values, self.bound, self._bound_values = keys, values, target, bound

    def reserve(self, slots: int, cached: int) -> None:
        pass  # runs grow the arrays as they write

    def host_buffers(self) -> list[np.ndarray]:
        out = []
        for i in range(self.n_layer):
            out += [self.keys[i].transpose(0, 2, 1)[None], self.values[i][None]]
        return out

    def move(self, index: np.ndarray, start: int) -> None:
        end = start + len(index)
        self.keys[..., start:end] = self.keys[..., index]
        self.values[:, :, start:end] = self.values[:, :, index]

    def present_shape(self, width: int) -> tuple[int, int, int]:
        return (2 * self.n_layer * self.heads, width, self.head_dim)

    def before_run(self, visible: np.ndarray, total: int) -> None:
        S = visible.shape[0]
        first = total - S
        self._fit(first)
        bound = self.bound
        bias = np.empty((S, bound + S), np.float32)
        bias[:, :first] = visible[:, :first]
        bias[:, first:bound] = -np.inf
        if S == 1:
            bias[0, bound] = visible[0, first]
        else:
            lower = self._lower.get(S)
            if lower is None:
                lower = self._lower[S] = np.tril(np.ones((S, S), bool))
            bias[:, bound:] = np.where(lower, visible[:, first:total], -np.inf)
        self._split[0], self._split[1] = bound, S
        self.io.bind_cpu_input("attention_bias", bias if self.group == 1 else bias.repeat(self.group, axis=0))

    def after_run(self, present: np.ndarray | None, total: int) -> None:
        assert present is not None
        S = present.shape[1]
        first = total - S
        self._fit(total)
        step = present.reshape(self.n_layer, 2, self.heads, S, self.head_dim)
        self.keys[..., first:total] = step[:, 0].transpose(0, 1, 3, 2)
        self.values[:, :, first:total] = step[:, 1]
