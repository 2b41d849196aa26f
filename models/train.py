"""Training: balanced, augmented batches; validation; checkpoints; resume; DDP.

Run one process (``affetto train``) or several under torchrun
(``torchrun --nproc_per_node 2 -m affetto.cli train ...``): each rank draws
its own batches from a generator seeded by (seed, step, rank), so a resumed
run draws exactly the batches the interrupted one would have drawn, and rank
0 alone writes checkpoints and logs.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import affetto
from affetto.analysis.judge import JudgeConfig
from affetto.errors import ConfigError
from affetto.models.checkpoint import checkpoint_paths, load_checkpoint, read_meta, save_checkpoint
from affetto.models.data import (
    DataConfig,
    Example,
    build_examples,
    describe,
    label_distribution,
    split_examples,
    transpose_tokens,
)
from affetto.models.transformer import EmotionTransformer, ModelConfig, grouped_kv_state
from affetto.tokens.vocab import VocabConfig, Vocabulary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    out: str = "runs/default"
    data: str = "corpus"  # "corpus", a folder of MIDI files, or an EMOPIA folder (with emopia=True)
    labels: str | None = None  # CSV of file,quadrant for a MIDI folder
    emopia: bool = False
    groups: tuple[str, ...] = ()  # music21 corpus groups; empty = the default set
    limit: int | None = None  # at most this many corpus files (for quick runs)
    steps: int = 6000
    batch: int = 32
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup: int = 300
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    cond_dropout: float = 0.15  # share of examples trained unconditioned (for guidance)
    transpose: tuple[int, int] = (-5, 6)  # random transposition range in semitones
    balance: bool = True  # draw quadrants equally often
    transition_share: float = 0.5  # share of each batch drawn from transition examples (when there are any)
    init: str | None = None  # start from this checkpoint's weights (same model config), new optimizer
    eval_every: int = 250
    eval_examples: int = 512
    seed: int = 1234
    threads: int = 0  # torch threads; 0 = torch's default
    model: ModelConfig = field(default_factory=ModelConfig)
    data_config: DataConfig = field(default_factory=DataConfig)
    vocab: VocabConfig = field(default_factory=VocabConfig.with_controls)  # meters and control tokens

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "eval_every", "eval_examples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.cond_dropout < 1:
            raise ConfigError(f"cond_dropout must be in [0, 1), got {self.cond_dropout}")
        if not self.lr > 0 or not 0 <= self.min_lr <= self.lr:
            raise ConfigError(f"need lr > 0 and 0 <= min_lr <= lr, got {self.lr}, {self.min_lr}")
        if self.data_config.max_tokens + 1 > self.model.max_len:
            raise ConfigError(
                f"segments of {self.data_config.max_tokens} tokens + BOS exceed the model's "
                f"{self.model.max_len} positions"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        data = dict(data)
        data["model"] = ModelConfig.from_dict(data.get("model", {}))
        dc = data.get("data_config", {})
        for key in ("time_scales", "velocity_scales"):
            if key in dc:
                dc[key] = tuple(dc[key])
        data["data_config"] = DataConfig(**dc)
        # Runs from before the vocabulary had meters and controls used the version 1 vocabulary.
        data["vocab"] = Vocabulary.from_dict({"format": "affetto-vocab", **data["vocab"]}).config if "vocab" in data \
            else VocabConfig()
        data["groups"] = tuple(data.get("groups", ()))
        data["transpose"] = tuple(data.get("transpose", (-5, 6)))
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


# ---- data -----------------------------------------------------------------------
@dataclass
class Corpus:
    train: list[Example]
    valid: list[Example]
    test: list[Example]
    summary: dict


def load_data(cfg: TrainConfig, vocab: Vocabulary, progress: bool = True) -> Corpus:
    """Pieces -> labelled segments -> split, with a summary written into checkpoints."""
    labels = None
    if cfg.data == "corpus":
        from affetto.models.corpus import DEFAULT_GROUPS, load_corpus

        pieces = load_corpus(cfg.groups or DEFAULT_GROUPS, grid=vocab.grid, progress=progress, limit=cfg.limit)
        source = f"music21 corpus: {', '.join(cfg.groups or DEFAULT_GROUPS)}"
    else:
        from affetto.models.userdata import load_emopia, load_midi_folder

        loaded = load_emopia(cfg.data) if cfg.emopia else load_midi_folder(cfg.data, cfg.labels, grid=vocab.grid)
        pieces, labels = loaded.pieces, loaded.labels
        source = f"{'EMOPIA' if cfg.emopia else 'MIDI folder'} {cfg.data} ({len(loaded.skipped)} files skipped)"
    if not pieces:
        raise ConfigError(f"no usable pieces in {cfg.data}")
    examples = build_examples(pieces, vocab, cfg.data_config, labels=labels, progress=progress)
    originals = build_examples(pieces, vocab, cfg.data_config, labels=labels, augment=False)
    split = split_examples(examples, pieces)
    held = split_examples(originals, pieces)
    summary = {
        "source": source,
        "pieces": len(pieces),
        "train": describe(split["train"]),
        "train_labels": label_distribution(split["train"]),
        "train_tokens": int(sum(len(e.tokens) for e in split["train"])),
        "valid": describe(held["valid"]),
        "test": describe(held["test"]),
    }
    # Validation and test use the pieces as they are: augmentation is a training device.
    return Corpus(split["train"], held["valid"], held["test"], summary)


def example_weights(examples: Sequence[Example], balance: bool, transition_share: float = 0.0) -> np.ndarray:
    """Drawing weights: quadrants equally often (``balance``), transitions at their share."""
    quadrants = np.array([e.quadrant for e in examples])
    transition = np.array([e.target_from > 0 for e in examples])
    weights = np.ones(len(examples))
    for group, share in ((transition, transition_share), (~transition, 1.0 - transition_share)):
        if not group.any():
            continue
        if balance:
            counts = np.bincount(quadrants[group], minlength=4).astype(float)
            weights[group] = 1.0 / counts[quadrants[group]]
        weights[group] *= share / weights[group].sum() if transition.any() and (~transition).any() else 1.0
    return weights / weights.sum()


def make_batch(
    examples: Sequence[Example],
    indices: Sequence[int] | np.ndarray,
    vocab: Vocabulary,
    rng: np.random.Generator | None,
    cfg: TrainConfig,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs (B, T), targets (B, T), capsules (B, 4)); targets use -100 where ignored.

    With ``rng``, each example is transposed at random (inside the pitch range)
    and its capsule dropped to zero at ``cond_dropout``.
    """
    length = max(len(examples[i].tokens) for i in indices) + 1  # + BOS
    seq = np.full((len(indices), length + 1), vocab.pad, dtype=np.int64)
    cond = np.zeros((len(indices), 4), dtype=np.float32)
    context_only = np.zeros(len(indices), dtype=np.int64)
    lo_p, hi_p = vocab.pitch0, vocab.vel0 - 1
    for row, i in enumerate(indices):
        ex = examples[i]
        toks = ex.tokens.astype(np.int64)
        if rng is not None:
            pitches = (toks >= lo_p) & (toks <= hi_p)
            if pitches.any():
                low = max(cfg.transpose[0], lo_p - int(toks[pitches].min()))
                high = min(cfg.transpose[1], hi_p - int(toks[pitches].max()))
                if low <= high:
                    toks = transpose_tokens(vocab, toks, int(rng.integers(low, high + 1)))  # keys move with the pitches
        seq[row, 0] = vocab.bos
        seq[row, 1 : 1 + len(toks)] = toks
        context_only[row] = ex.target_from
        if rng is None or rng.random() >= cfg.cond_dropout:
            cond[row, ex.quadrant] = 1.0
    inputs = torch.from_numpy(seq[:, :-1])
    targets = torch.from_numpy(seq[:, 1:].copy())
    targets[targets == vocab.pad] = -100
    for row, n in enumerate(context_only):
        targets[row, :n] = -100  # a transition's seed bars are context, not a target
    return inputs, targets, torch.from_numpy(cond)


def draw_indices(rng: np.random.Generator, weights: np.ndarray, lengths: np.ndarray, batch: int) -> np.ndarray:
    """A batch of examples of similar length: draw 8 batches' worth, sort, keep one slice."""
    pool = rng.choice(len(weights), size=8 * batch, p=weights)
    pool = pool[np.argsort(lengths[pool], kind="stable")]
    k = int(rng.integers(0, 8))
    return pool[k * batch : (k + 1) * batch]


def cosine_lr(step: int, *, lr: float, min_lr: float, warmup: int, steps: int) -> float:
    """Linear warmup over ``warmup`` steps, then a cosine from ``lr`` down to ``min_lr`` at ``steps``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress))


def lr_at(step: int, cfg: TrainConfig) -> float:
    return cosine_lr(step, lr=cfg.lr, min_lr=cfg.min_lr, warmup=cfg.warmup, steps=cfg.steps)


@torch.no_grad()
def evaluate(model: torch.nn.Module, examples: Sequence[Example], vocab: Vocabulary, cfg: TrainConfig) -> float:
    """Mean cross-entropy per token (nats) on conditioned, untransposed examples."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].tokens))
    for start in range(0, len(order), 32):
        indices = order[start : start + 32]
        inputs, targets, cond = make_batch(examples, indices, vocab, None, cfg)
        logits, _ = model(inputs, cond)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum")
        total += float(loss)
        count += int((targets != -100).sum())
    model.train(was_training)
    return total / max(1, count)


# ---- the loop -----------------------------------------------------------------------
def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend=backend)
    rank = torch.distributed.get_rank() if world > 1 else 0
    return rank, world


def train(cfg: TrainConfig, *, resume: bool = False, progress: bool = True) -> dict:
    """Train (or resume) and return the final metadata; rank 0 writes ``cfg.out``."""
    rank, world = _distributed()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if torch.cuda.is_available() else None
    device = device or torch.device("cpu")
    out = Path(cfg.out)
    last = out / "last"
    if resume and checkpoint_paths(last)[2].exists():
        saved = TrainConfig.from_dict(read_meta(last)["train"])
        # The run's shape comes from the checkpoint; only its length may change on resume.
        cfg = replace(saved, steps=cfg.steps, threads=cfg.threads, out=cfg.out)

    vocab = Vocabulary(cfg.vocab)
    model_cfg = replace(cfg.model, vocab_size=vocab.size)
    cfg = replace(cfg, model=model_cfg)
    data = load_data(cfg, vocab, progress=progress and rank == 0)
    if not data.train or not data.valid:
        raise ConfigError(
            f"need training and validation pieces; got {len(data.train)} train, {len(data.valid)} valid segments"
        )
    if rank == 0:
        log.info("data: %s", data.summary["source"])
        log.info("train: %s", data.summary["train"])
        log.info("valid: %s", data.summary["valid"])

    model = EmotionTransformer(model_cfg).to(device)
    # Capsule embeddings are embeddings: weight decay would shrink the condition toward nothing.
    def decays(name: str, p: torch.nn.Parameter) -> bool:
        return p.dim() >= 2 and not name.startswith(("cond.", "cond_layers"))

    decay = [p for n, p in model.named_parameters() if decays(n, p)]
    no_decay = [p for n, p in model.named_parameters() if not decays(n, p)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.95),
    )
    step = 0
    history: list[dict] = []
    best = float("inf")
    if resume and checkpoint_paths(last)[2].exists():
        loaded, meta = load_checkpoint(last, optimizer)
        model.load_state_dict(loaded.state_dict())
        step, history = int(meta["step"]), list(meta.get("history", []))
        best = float(meta.get("best_val_loss", float("inf")))
        if rank == 0:
            log.info("resumed from %s at step %d", last, step)
    if cfg.init and step == 0:
        start, start_meta = load_checkpoint(cfg.init)
        if not isinstance(start, EmotionTransformer):
            raise ConfigError(f"--init {cfg.init}: a {start_meta.get('family')} checkpoint, not a lead one")
        # A model without per-block capsule embeddings may seed one with them (they start at zero), and one
        # with more key/value heads may seed one with fewer (each the mean of the heads it replaces).
        if replace(start.cfg, cond_layers=model_cfg.cond_layers, n_kv_head=model_cfg.n_kv_head) != model_cfg or (
                start.cfg.cond_layers and not model_cfg.cond_layers) or start.cfg.kv_heads % model_cfg.kv_heads:
            raise ConfigError(f"--init {cfg.init}: its model config {start.cfg} differs from {model_cfg}")
        state = start.state_dict()
        if start.cfg.kv_heads != model_cfg.kv_heads:
            state = grouped_kv_state(state, start.cfg, model_cfg.kv_heads)
            if rank == 0:
                log.info("key/value heads %d -> %d (each the mean of its group)", start.cfg.kv_heads,
                         model_cfg.kv_heads)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or [m for m in missing if m != "cond_layers"]:
            raise ConfigError(f"--init {cfg.init}: weights do not fit (missing {missing}, extra {unexpected})")
        if rank == 0:
            log.info("initialised from %s (step %s)", cfg.init, start_meta.get("step"))
    net: torch.nn.Module = model
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    net.train()

    weights = example_weights(data.train, cfg.balance, cfg.transition_share)
    lengths = np.array([len(e.tokens) for e in data.train])
    valid = data.valid[:: max(1, len(data.valid) // cfg.eval_examples)][: cfg.eval_examples]
    meta_base = {
        "vocab": vocab.to_dict(),
        "judge": JudgeConfig().to_dict(),
        "train": cfg.to_dict(),
        "data_summary": data.summary,
        "affetto": affetto.__version__,
        "torch": torch.__version__,
        "world_size": world,
    }

    def checkpoint(name: str, val_loss: float) -> None:
        meta = {**meta_base, "step": step, "val_loss": val_loss, "best_val_loss": best, "history": history}
        save_checkpoint(out / name, model, meta, optimizer if name == "last" else None)

    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc="training", unit="step")
    tokens_seen, t0 = 0, time.perf_counter()
    val_loss = float("nan")
    while step < cfg.steps:
        rng = np.random.default_rng([cfg.seed, step, rank])
        indices = draw_indices(rng, weights, lengths, cfg.batch)
        inputs, targets, cond = make_batch(data.train, indices, vocab, rng, cfg)
        inputs, targets, cond = inputs.to(device), targets.to(device), cond.to(device)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        logits, _ = net(inputs, cond)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        step += 1
        tokens_seen += int((targets != -100).sum()) * world
        if bar is not None:
            rate = tokens_seen / max(1e-9, time.perf_counter() - t0)
            bar.set_postfix(loss=f"{loss.item():.3f}", val=f"{val_loss:.3f}", tok_s=f"{rate:.0f}")
            bar.update(1)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            if rank == 0:
                val_loss = evaluate(model, valid, vocab, cfg)
                rate = tokens_seen / max(1e-9, time.perf_counter() - t0)
                history.append({"step": step, "train_loss": loss.item(), "val_loss": val_loss,
                                "tokens_per_s": rate, "time": time.time()})
                if val_loss < best:
                    best = val_loss
                    checkpoint("best", val_loss)
                checkpoint("last", val_loss)
                log.info("step %d: train %.4f, valid %.4f nats/token, %.0f tokens/s", step, loss.item(), val_loss, rate)
            if world > 1:
                torch.distributed.barrier()
    if bar is not None:
        bar.close()
    result = {"step": step, "val_loss": val_loss, "best_val_loss": best, "out": str(out), "rank": rank}
    if rank == 0:
        (out / "summary.json").write_text(json.dumps({**result, "data": data.summary}, indent=1), encoding="utf-8")
    if world > 1:
        torch.distributed.destroy_process_group()
    return result
