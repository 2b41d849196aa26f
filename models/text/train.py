"""Training of the music-text model, with or without GTP, on one CPU thread.

Batches hold distinct windows with a caption drawn for each; every
``eval_every`` steps the held-out ``valid`` windows (one fixed caption each)
give each loss part and music->text recall@1. Checkpoints go through
:mod:`affetto.models.checkpoint` (safetensors + JSON, no pickle) to
``OUT/last`` with the optimizer, the step and the random state's seed, so
``resume=True`` continues a stopped run. Two runs that differ only in
``loss.gtp`` see the same batches in the same order (same seed, same data,
same steps).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from affetto.models.checkpoint import checkpoint_paths, load_checkpoint, save_checkpoint
from affetto.models.text.captions import grammar_words
from affetto.models.text.data import DataConfig, TextData, attribute_labels, load_data
from affetto.models.text.losses import LossConfig, total_loss
from affetto.models.text.model import MusicTextModel, TextModelConfig
from affetto.words.textmodel import Vocabulary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextTrainConfig:
    out: str = "runs/text/gtp"
    steps: int = 4000  # the length of the learning-rate schedule
    stop_at: int = 0  # stop (with a checkpoint) at this step of the schedule; 0: at its end
    batch: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: int = 200
    eval_every: int = 125
    save_every: int = 250
    seed: int = 1234
    threads: int = 1
    model: dict = field(default_factory=dict)  # TextModelConfig fields besides vocab_size
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "eval_every", "save_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an int >= 1, got {getattr(self, name)!r}")
        if self.batch < 3:
            raise ValueError("batch must be at least 3 (GTP compares each item with two others or more)")

    def to_dict(self) -> dict:
        return asdict(self)


def vocabulary() -> Vocabulary:
    return Vocabulary.of(grammar_words())


def fixed_batch(data: TextData, index: np.ndarray, vocab: Vocabulary, max_text: int, seed: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Held-out windows with one caption each and their fields' labels, the same every time (no transposition)."""
    notes, glob, tokens, facts = data.batch(index, vocab, np.random.default_rng(seed), max_text)
    labels = {k: torch.from_numpy(v) for k, v in attribute_labels(facts).items()}
    return torch.from_numpy(notes), torch.from_numpy(glob), torch.from_numpy(tokens), labels


@torch.no_grad()
def validate(model: MusicTextModel, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]],
             cfg: LossConfig) -> dict[str, float]:
    model.eval()
    notes, glob, tokens, labels = batch
    figures: dict[str, float] = {}
    for start in range(0, len(notes), 256):
        sl = slice(start, start + 256)
        _, parts = total_loss(model, notes[sl], glob[sl], tokens[sl], replace(cfg, gtp=max(cfg.gtp, 1e-9)),
                              {k: v[sl] for k, v in labels.items()})
        for k, v in parts.items():
            figures[k] = figures.get(k, 0.0) + v * len(notes[sl]) / len(notes)
    zm = torch.nn.functional.normalize(model.align(model.music(notes, glob)), dim=-1)
    zt = torch.nn.functional.normalize(model.text(tokens), dim=-1)
    sims = zm @ zt.T
    figures["r1_m2t"] = float((sims.argmax(1) == torch.arange(len(sims))).float().mean())
    model.train()
    return figures


def train(cfg: TextTrainConfig, *, resume: bool = False, data: TextData | None = None,
          progress: bool = True) -> Path:
    """Train; returns the checkpoint stem ``OUT/last``."""
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / "last"
    vocab = vocabulary()
    data = data if data is not None else load_data(cfg.data)
    model_cfg = TextModelConfig(vocab_size=len(vocab), **cfg.model)
    torch.manual_seed(cfg.seed)
    model = MusicTextModel(model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, history, seconds = 0, [], 0.0
    if resume and checkpoint_paths(stem)[2].exists():
        loaded, meta = load_checkpoint(stem, opt)
        model.load_state_dict(loaded.state_dict())
        step, history, seconds = int(meta["step"]), list(meta.get("history", [])), float(meta["train_seconds"])
        log.info("resumed %s at step %d", stem, step)
    train_idx = data.indices("train")
    valid_idx = data.indices("valid")
    valid = fixed_batch(data, valid_idx, vocab, model_cfg.max_text, seed=7)
    schedule = np.random.default_rng(cfg.seed)
    epochs = cfg.steps * cfg.batch // len(train_idx) + 2
    order = np.concatenate([schedule.permutation(train_idx) for _ in range(epochs)])
    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, initial=step, desc=f"text {out.name}", disable=not progress, mininterval=10)
    model.train()
    started = time.monotonic()
    meta_base = {"train": cfg.to_dict(), "vocabulary": list(vocab.words), "data_summary": data.summary()}
    last = min(cfg.stop_at or cfg.steps, cfg.steps)
    while step < last:
        index = order[step * cfg.batch:(step + 1) * cfg.batch]
        rng = np.random.default_rng([cfg.seed, step])  # the captions and transpositions of this step
        notes, glob, tokens, facts = data.batch(index, vocab, rng, model_cfg.max_text, transpose=cfg.data.transpose)
        labels = {k: torch.from_numpy(v) for k, v in attribute_labels(facts).items()}
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup) * 0.5 * (1 + np.cos(np.pi * step / cfg.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        loss, parts = total_loss(model, torch.from_numpy(notes), torch.from_numpy(glob), torch.from_numpy(tokens),
                                 cfg.loss, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix({k: f"{v:.3f}" for k, v in parts.items()})
        if step % cfg.eval_every == 0 or step == last:
            figures = validate(model, valid, cfg.loss)
            history.append({"step": step, "lr": lr, **{f"train_{k}": v for k, v in parts.items()},
                            **{f"valid_{k}": v for k, v in figures.items()}})
            log.info("step %d: %s", step, json.dumps(history[-1]))
        if step % cfg.save_every == 0 or step == last:
            elapsed = seconds + time.monotonic() - started
            save_checkpoint(stem, model, {**meta_base, "step": step, "history": history, "train_seconds": elapsed},
                            opt)
    bar.close()
    return stem
