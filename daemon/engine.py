"""The ONNX Runtime engine: one bar at a time, in a given emotion, with no torch.

Life of a bar::

    prime(seed)                        context = BOS + the seed's bars (not run yet)
    generate_bar(capsule, ...)         1. if the rows' capsules changed, the cache is stale: re-run
                                          the context as one prefill (the capsule is part of every
                                          position, so a new emotion re-reads the phrase in it)
                                       2. feed BAR, then sample token by token under the grammar
                                          mask until the model closes the bar (samples BAR)
                                       3. decode the bar's tokens to notes relative to the bar

Candidates: with ``candidates > 1`` several bars are drawn from the same
state (rolling back is free: the shared cache is written in place, so the
context length is simply reset), each is judged by the feature judge together
with the bars before it, and the bar nearest the capsule's valence and arousal
is kept and re-read. It costs about ``candidates + 1`` times the sampling of
a bar.

Mode following: a 2 M-parameter model follows the phrase it continues far
more than the capsule's valence (measured: the key of the context decides the
mode of the continuation). So when the capsule's valence disagrees with the
mode of the context (a clear major key asked to be sad, or the reverse), the
context is moved to its parallel mode (same tonic, third, sixth and seventh
moved a semitone, as training's augmentation does) before the model reads
it: the continuation then starts from a minor version of what was played.
Checked after ``prime`` and whenever the capsule changes; ``follow_mode=False``
turns it off.

The cache is one preallocated buffer of ``max_len`` positions per layer and
tensor, bound once with IOBinding as both the past input and the present
output, so ONNX Runtime's GroupQueryAttention writes new keys in place: no
step copies the cache. When the context would overflow, it slides: the
oldest whole bars are dropped so half the window remains, and the rest is
re-run once. Guidance runs the conditioned and the unconditioned row as one
batch of two.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import onnxruntime as ort

from affetto.emotion import Capsule
from affetto.errors import ConfigError, ModelFileError
from affetto.judge import JudgeConfig, change_mode, estimate_key, judge_arrays
from affetto.manifest import read_manifest
from affetto.music import Note, TimeSignature
from affetto.ratelimit import RateLimitedLog
from affetto.vocab import DUR, Vocabulary

from .sampling import DEFAULT_SAMPLING, SamplingConfig, guide, sample

log = logging.getLogger(__name__)
LOG_PERIOD_S = 60.0  # a warning a re-prime repeats goes out once a minute at most

DEFAULT_MODEL_NAME = "affetto-default.onnx"
MAX_NOTES_PER_BAR = 48
MODE_CLARITY = 0.65  # key correlation above which the context's mode counts as clear (training uses the same)
MODE_VALENCE = 0.25  # capsules closer to neutral valence than this leave the mode alone
JUDGED_BARS = 4  # a candidate bar is judged with the bars before it, this many in all (the eval judges 4)


def default_model_path() -> Path:
    """The model shipped inside the package."""
    return Path(str(resources.files("affetto") / "assets" / DEFAULT_MODEL_NAME))


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


class Engine:
    """Generates bars with an affetto ``.onnx`` model; satisfies the daemon's BarGenerator."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        meter: TimeSignature = TimeSignature(4, 4),
        threads: int | None = 1,
        provider: str = "auto",
        max_notes_per_bar: int = MAX_NOTES_PER_BAR,
        follow_mode: bool = True,
    ) -> None:
        self.model_path = Path(path) if path is not None else default_model_path()
        threads = 1 if threads is None else threads  # one thread leaves a core to the scheduler
        if not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"threads must be an int >= 1, got {threads!r}")
        t0 = time.perf_counter()
        self.manifest = read_manifest(self.model_path)
        try:
            self.vocab = Vocabulary.from_dict(self.manifest["vocab"])
            model = self.manifest["model"]
            self.n_layer, self.n_head = int(model["n_layer"]), int(model["n_head"])
            self.head_dim = int(model["d_model"]) // self.n_head
            self.max_len = int(model["max_len"])
            if int(model["vocab_size"]) != self.vocab.size:
                raise ValueError(f"model has {model['vocab_size']} tokens, its vocabulary {self.vocab.size}")
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFileError(f"{self.model_path}: manifest does not describe a usable model ({err})") from err
        self.guidance_ready = bool(self.manifest.get("conditioning", {}).get("guidance_ready", False))
        self.meter = meter
        self.bar_steps = self.vocab.grid.steps_per_bar(meter)
        if self.bar_steps > self.vocab.config.max_bar_steps:
            raise ConfigError(
                f"meter {meter} is longer than this model's bars ({self.vocab.config.max_bar_steps} steps)"
            )
        self.max_notes_per_bar = max_notes_per_bar
        self.follow_mode = follow_mode
        self.judge_config = JudgeConfig(**self.manifest.get("judge", {}))
        data_config = (self.manifest.get("training") or {}).get("data_config") or {}
        self.label_tempo = float(data_config.get("label_tempo", self.judge_config.tempo_ref))
        self._mode_for: tuple | None = None  # capsule weights the context's mode was last matched to
        self.max_bar_tokens = 1 + self.bar_steps + 3 * max_notes_per_bar

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
            self.session = ort.InferenceSession(str(self.model_path), options, providers=providers)
        except Exception as err:  # ONNX Runtime raises its own Fail/InvalidGraph types
            raise ModelFileError(f"{self.model_path}: ONNX Runtime cannot load this model ({err})") from err
        finally:
            ort.set_default_logger_severity(2)  # ONNX Runtime's default: warnings
        self.provider = self.session.get_providers()[0]
        if providers[0] != self.provider:
            log.warning("%s could not be loaded (missing libraries?); running on %s", providers[0], self.provider)
        self.device = "cuda" if self.provider == "CUDAExecutionProvider" else "cpu"
        self.load_seconds = time.perf_counter() - t0

        self._context: list[int] = [self.vocab.bos]
        self._rows: tuple | None = None  # capsules of the rows whose keys are in the cache
        self._cached = 0  # context tokens whose keys are in the cache
        self._batch = 0
        self._mask = np.empty(self.vocab.size, dtype=bool)
        self._guided = np.empty(self.vocab.size, dtype=np.float32)
        self._limited_log = RateLimitedLog(log, period_s=LOG_PERIOD_S)
        self.stats = {"bars": 0, "tokens": 0, "prefills": 0, "prefill_tokens": 0, "slides": 0, "last_ms": 0.0,
                      "mode_changes": 0}

    @classmethod
    def load(cls, path: str | Path | None = None, **kwargs) -> Engine:
        return cls(path, **kwargs)

    # ---- buffers ---------------------------------------------------------------
    def _bind(self, batch: int) -> None:
        """Allocate the shared cache for ``batch`` rows and bind everything that stays put."""
        shape = (batch, self.n_head, self.max_len, self.head_dim)
        self._caches = [
            ort.OrtValue.ortvalue_from_shape_and_type(shape, np.float32, self.device, 0)
            for _ in range(2 * self.n_layer)
        ]
        self._tok = np.zeros((batch, 1), np.int64)
        self._cond = np.zeros((batch, 4), np.float32)
        self._seqlens = np.zeros(batch, np.int32)
        self._total = np.zeros((), np.int32)
        self._logits = np.zeros((batch, 1, self.vocab.size), np.float32)
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

    # ---- running the model ---------------------------------------------------------
    def _prefill(self) -> None:
        """Run the context tokens not yet in the cache as one batch."""
        new = self._context[self._cached :]
        if not new:
            return
        start = self._cached
        tokens = np.tile(np.asarray(new, np.int64), (self._batch, 1))
        logits = np.zeros((self._batch, len(new), self.vocab.size), np.float32)
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

    def _step(self, token: int) -> None:
        """Feed one token; its logits land in ``self._logits``."""
        if self._cached >= self.max_len:
            raise RuntimeError("context overflow: slide before stepping")  # guarded by _make_room
        self._tok[:] = token
        self._seqlens[:] = self._cached
        self._total[...] = self._cached + 1
        self.session.run_with_iobinding(self._io)
        self._context.append(token)
        self._cached += 1
        self.stats["tokens"] += 1

    def _configure(self, capsule: Capsule, guidance: float) -> None:
        rows = (capsule.weights,)
        if guidance != 1.0 and self.guidance_ready and not capsule.is_unconditioned:
            rows = (capsule.weights, (0.0, 0.0, 0.0, 0.0))
        if rows == self._rows:
            return
        if len(rows) != self._batch:
            self._bind(len(rows))
        self._cond[:] = np.asarray(rows, np.float32)
        self._io.bind_cpu_input("cond", self._cond)
        self._rows = rows
        self._cached = 0

    def _match_mode(self, capsule: Capsule) -> None:
        """Move the context to its parallel mode when its clear mode disagrees with the capsule's valence."""
        if not self.follow_mode or capsule.weights == self._mode_for:
            return
        self._mode_for = capsule.weights
        if capsule.is_unconditioned or abs(capsule.valence) < MODE_VALENCE:
            return
        vocab = self.vocab
        body = self._context[1:]
        n_bars = sum(1 for t in body if t == vocab.bar)
        if n_bars == 0:
            return
        steps = vocab.notes_to_steps(vocab.decode(body, self.meter))
        if len(steps) < 4:
            return
        tonic, mode, clarity = estimate_key(steps[:, 2], steps[:, 1] / vocab.config.steps_per_beat)
        if clarity < MODE_CLARITY or (mode == "major") == (capsule.valence > 0):
            return
        moved = change_mode(steps, tonic, mode)
        self._context = [vocab.bos, *vocab.encode_steps(moved, self.bar_steps, n_bars=n_bars).tolist()]
        self._cached = 0
        self.stats["mode_changes"] += 1
        log.debug("context moved from %s %s to the parallel mode for %s", tonic, mode, capsule)

    def _make_room(self) -> None:
        """Slide the context at bar lines when the next bar might not fit."""
        if len(self._context) + self.max_bar_tokens <= self.max_len:
            return
        bars = [i for i, t in enumerate(self._context) if t == self.vocab.bar]
        budget = self.max_len // 2
        keep = next((b for b in bars if len(self._context) - b <= budget - 1), None)
        tail = self._context[keep:] if keep is not None else []
        self._context = [self.vocab.bos, *tail]
        self._cached = 0
        self.stats["slides"] += 1

    # ---- the daemon's interface ---------------------------------------------------------
    def prime(self, seed: Sequence[Note], bars: int | None = None) -> None:
        """Start afresh from ``seed`` (onsets in beats from its first bar line; may be empty).

        Pitches outside the model's range are folded by octaves (with a
        warning); ``bars`` pads the seed with empty bars up to that length.
        """
        cfg = self.vocab.config
        outside = sum(1 for n in seed if not cfg.pitch_min <= n.pitch <= cfg.pitch_max)
        if outside:  # a re-prime repeats it for every seed: rate-limited
            self._limited_log.warning("seed-octaves", "%d seed notes outside the model's range %d..%d were moved "
                                      "by octaves", outside, cfg.pitch_min, cfg.pitch_max)
        steps = self.vocab.notes_to_steps(seed)
        if bars is not None and len(steps):
            steps = steps[steps[:, 0] < bars * self.bar_steps]
        body = self.vocab.encode_steps(steps, self.bar_steps, n_bars=bars).tolist()
        budget = self.max_len // 2
        if len(body) > budget - 1:  # keep the latest whole bars
            bars = (i for i, t in enumerate(body) if t == self.vocab.bar and len(body) - i <= budget - 1)
            cut = next(bars, len(body))
            body = body[cut:]
        self._context = [self.vocab.bos, *body]
        self._cached = 0
        self._mode_for = None

    def generate_bar(
        self,
        capsule: Capsule,
        *,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        guidance: float | None = None,
        greedy: bool = False,
        candidates: int | None = None,
        rng: np.random.Generator | None = None,
    ) -> list[Note]:
        """The next bar's notes, onsets relative to the bar (``0 <= onset < bar length``).

        Settings left at None take :meth:`sampling_for` the capsule.
        """
        given = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "guidance": guidance,
                 "candidates": candidates}
        config = self.sampling_for(capsule).replace(greedy=greedy, **{k: v for k, v in given.items() if v is not None})
        tokens = self.generate_bar_tokens(capsule, config, rng or np.random.default_rng())
        return self.vocab.decode(tokens, self.meter)

    def generate_bar_tokens(self, capsule: Capsule, config: SamplingConfig, rng: np.random.Generator) -> list[int]:
        t0 = time.perf_counter()
        self._match_mode(capsule)
        self._configure(capsule, config.guidance)
        self._make_room()
        self._prefill()
        self._step(self.vocab.bar)  # every bar opens with BAR: fed once, however many candidates follow
        if config.candidates > 1 and not capsule.is_unconditioned and not config.greedy:
            body = self._best_of(capsule, config, rng)
        else:
            body = self._sample_bar(config, rng)
        self.stats["bars"] += 1
        self.stats["last_ms"] = (time.perf_counter() - t0) * 1000
        return [self.vocab.bar, *body]

    def _sample_bar(self, config: SamplingConfig, rng: np.random.Generator) -> list[int]:
        """Sample under the grammar after the bar's BAR until the model closes the bar; returns the tokens."""
        vocab = self.vocab
        state = vocab.new_state(self.bar_steps)
        state.last = DUR  # what precedes a bar: the previous bar's end
        vocab.advance(state, vocab.bar)
        body: list[int] = []
        mask, guided = self._mask, self._guided
        while True:
            vocab.allowed(state, mask)
            if state.notes_in_bar >= self.max_notes_per_bar:
                mask[vocab.pos0 : vocab.vel0] = False  # no new notes: finish this one, then close the bar
            if self._batch == 2:
                logits = guide(self._logits[0, 0], self._logits[1, 0], config.guidance, guided)
            else:
                np.copyto(guided, self._logits[0, 0])
                logits = guided
            token = sample(logits, mask, config, rng)
            if token == vocab.bar:
                return body
            vocab.advance(state, token)
            self._step(token)
            body.append(token)

    def _best_of(self, capsule: Capsule, config: SamplingConfig, rng: np.random.Generator) -> list[int]:
        """Draw ``config.candidates`` bars after the same BAR; keep the one judged nearest the capsule."""
        length, logits = len(self._context), self._logits.copy()  # the whole context is in the cache
        recent = self._recent_bars(JUDGED_BARS)  # the bars before, and this bar's BAR
        best: list[int] | None = None
        best_score = -np.inf
        for _ in range(config.candidates):
            body = self._sample_bar(config, rng)
            score = self._judge_score(recent + body, capsule)
            if best is None or score > best_score:
                best, best_score = body, score
            del self._context[length:]
            self._cached = length
            self._logits[:] = logits
        # Re-read the winner token by token (ONNX Runtime's attention takes a multi-token step on top
        # of a cache only for batch 1, and guidance runs two rows).
        for token in best:  # type: ignore[union-attr]
            self._step(token)
        return best  # type: ignore[return-value]

    def _recent_bars(self, n: int) -> list[int]:
        """The tokens of the last ``n`` whole bars of the context."""
        bars = [i for i, t in enumerate(self._context) if t == self.vocab.bar]
        return self._context[bars[max(0, len(bars) - n)]:] if n > 0 and bars else []

    def _judge_score(self, tokens: list[int], capsule: Capsule) -> float:
        """How near the feature judge puts these bars to the capsule (valence and arousal agreement)."""
        notes = self.vocab.decode(tokens, self.meter)
        n_bars = sum(1 for t in tokens if t == self.vocab.bar)
        if not notes:
            return -np.inf
        verdict = judge_arrays(
            np.array([n.pitch for n in notes]), np.array([n.onset for n in notes]),
            np.array([n.duration for n in notes]), np.array([n.velocity for n in notes]),
            n_bars * self.meter.beats_per_bar, self.label_tempo, self.judge_config)
        return verdict.valence * capsule.valence + verdict.arousal * capsule.arousal

    def sampling_for(self, capsule: Capsule) -> SamplingConfig:
        """Sampling settings for a capsule: the model's own (its manifest's ``sampling``), else the defaults.

        A manifest may name settings per quadrant (``"Q3": {...}``) over a
        ``"default"``; a blended capsule takes those of its heaviest quadrant.
        """
        spec = self.manifest.get("sampling") or {}
        base = DEFAULT_SAMPLING.replace(**spec.get("default", {}))
        if capsule.is_unconditioned:
            return base
        return base.replace(**spec.get(capsule.quadrant.name, {}))

    def describe(self) -> str:
        m = self.manifest
        return (f"{self.model_path.name} ({m.get('dtype')}, {m['model']['n_layer']} layers x {m['model']['d_model']}, "
                f"context {self.max_len}, guidance {'ready' if self.guidance_ready else 'unavailable'}) "
                f"on {self.provider}")
