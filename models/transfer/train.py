"""Training of the transfer family: the CVAE and the performance decoder, side by side.

Each step draws a CVAE batch (one shape of phrase; a share of transfer pairs,
:mod:`.data`) and a performer batch. The CVAE loss is the ELBO's
reconstruction (BCE of onset and frame cells, summed per phrase) plus
``beta`` times the KL with free bits (each latent dimension's batch-mean KL
counts as at least ``free_bits`` nats); ``beta`` rises linearly from 0 to
``beta`` over ``anneal_steps`` (KL annealing, Bowman et al. 2016). The
performer's loss is the mean squared error of velocity / 127 over real notes.

Checkpoints go through :mod:`affetto.models.checkpoint` (safetensors + JSON)
every ``eval_every`` steps, with the validation figures (reconstruction
onset F1, the pairs' pitch accuracy, active latent units, velocity error);
``resume=True`` continues from ``OUT/last``; ``minutes`` stops with a
checkpoint after that much wall time.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from affetto.errors import ConfigError
from affetto.models.checkpoint import checkpoint_paths, load_checkpoint, save_checkpoint
from affetto.models.transfer.data import PhraseConfig, Phrases, build_phrases, sample_batch, sample_perf_batch
from affetto.models.transfer.model import (
    TransferConfig,
    TransferModel,
    active_units,
    kl_free_bits,
    recon_loss,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransferTrainConfig:
    out: str = "runs/transfer"
    data: str = "corpus"  # 'corpus' or a folder of MIDI files (any, EMOPIA or MAESTRO layout)
    layout: str = "auto"  # for a folder: auto, folder, emopia, maestro
    groups: tuple[str, ...] = ()
    limit: int | None = None  # corpus files or MAESTRO performances read (quick runs)
    steps: int = 4000
    batch: int = 32
    perf_batch: int = 16
    lr: float = 1e-3
    beta: float = 0.1
    anneal_steps: int = 500
    free_bits: float = 0.1  # nats per latent dimension, per latent
    pair_rate: float = 0.5
    eval_every: int = 200
    minutes: float = 0.0
    seed: int = 1234
    threads: int = 1
    init: str | None = None  # start from this checkpoint's weights (fine-tune on --data)
    model: TransferConfig = field(default_factory=TransferConfig)
    phrases: PhraseConfig = field(default_factory=PhraseConfig)

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "perf_batch", "anneal_steps", "eval_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name} must be an int >= 1, got {getattr(self, name)!r}")
        if not self.lr > 0 or self.beta < 0 or self.free_bits < 0 or not 0 <= self.pair_rate <= 1:
            raise ConfigError("lr must be > 0, beta and free_bits >= 0, pair_rate in [0, 1]")
        if self.layout not in ("auto", "folder", "emopia", "maestro"):
            raise ConfigError(f"layout must be auto, folder, emopia or maestro, got {self.layout!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TransferTrainConfig:
        d = dict(d)
        d["model"] = TransferConfig.from_dict(d.get("model", {}))
        d["phrases"] = PhraseConfig.from_dict(d.get("phrases", {}))
        d["groups"] = tuple(d.get("groups", ()))
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def beta_at(step: int, cfg: TransferTrainConfig) -> float:
    """The KL weight at ``step``: linear warm-up from 0 to ``cfg.beta``."""
    return cfg.beta * min(1.0, step / cfg.anneal_steps)


def tensors(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in batch.items()}


def cvae_loss(model: TransferModel, b: dict[str, torch.Tensor], beta: float, free_bits: float,
              eps: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """(loss, figures, logits) of one CVAE batch."""
    if eps is None:
        roll = b["roll"]
        eps = torch.randn(roll.shape[0], roll.shape[1], roll.shape[2] // model.cfg.z_steps, model.cfg.z_dim)
    logits, mean, logvar = model(b["roll"], b["src_cond"], b["tgt_cond"], b["src_density"], b["src_poly"],
                                 b["tgt_density"], b["tgt_poly"], b["meter"], eps)
    rec = recon_loss(logits, b["target"])
    kl_fb, kl = kl_free_bits(mean, logvar, free_bits)
    loss = rec + beta * kl_fb
    return loss, {"recon": rec.item(), "kl": kl.item(), "beta": beta}, logits


def perf_loss(model: TransferModel, b: dict[str, torch.Tensor]) -> torch.Tensor:
    pred = model.performer(b["notes"], b["note_mask"], b["perf_cond"])
    return ((pred - b["velocity"]) ** 2 * b["note_mask"]).sum() / b["note_mask"].sum().clamp(min=1)


def onset_f1(pred: np.ndarray, real: np.ndarray) -> float:
    """F1 of onset cells (step, pitch) between two binary arrays; 1 when both are empty."""
    hit = float((pred & real).sum())
    total = float(pred.sum() + real.sum())
    return 1.0 if total == 0 else 2 * hit / total


def validate(model: TransferModel, phrases: Phrases, cfg: TransferTrainConfig, batches: int = 6) -> dict[str, float]:
    """Figures on fixed validation batches: the ELBO's parts, reconstruction and transfer-pair onset F1
    at the runtime's threshold, active latent units, and velocity error in MIDI steps."""
    rng = np.random.default_rng(0)
    model.eval()
    figures: dict[str, list[float]] = {"val_recon": [], "val_kl": [], "recon_onset_f1": [], "pair_onset_f1": [],
                                       "recon_onset_f1_at_0.3": [], "velocity_mae": []}
    means = []
    with torch.no_grad():
        for _ in range(batches):
            for rate, name in ((0.0, "recon_onset_f1"), (1.0, "pair_onset_f1")):
                b = tensors(sample_batch(phrases, 64, rng, pair_rate=rate))
                r = b["roll"]
                zero = torch.zeros(r.shape[0], r.shape[1], r.shape[2] // model.cfg.z_steps, model.cfg.z_dim)
                _, fig, logits = cvae_loss(model, b, 1.0, 0.0, eps=zero)
                onsets = torch.sigmoid(logits[..., 0, :]).numpy() >= 0.5
                figures[name].append(onset_f1(onsets, b["target"][..., 0, :].numpy() > 0.5))
                if rate == 0.0:
                    low = torch.sigmoid(logits[..., 0, :]).numpy() >= 0.3
                    figures["recon_onset_f1_at_0.3"].append(onset_f1(low, b["target"][..., 0, :].numpy() > 0.5))
                    figures["val_recon"].append(fig["recon"])
                    figures["val_kl"].append(fig["kl"])
                    means.append(model.encoder(b["roll"], b["src_cond"], b["src_density"], b["src_poly"],
                                               b["meter"])[0].reshape(-1, model.cfg.z_dim))
            p = tensors(sample_perf_batch(phrases, 32, rng, velocity_scales=cfg.phrases.velocity_scales))
            pred = model.performer(p["notes"], p["note_mask"], p["perf_cond"])
            err = ((pred - p["velocity"]).abs() * p["note_mask"]).sum() / p["note_mask"].sum()
            figures["velocity_mae"].append(127 * err.item())
    model.train()
    out = {k: float(np.mean(v)) for k, v in figures.items()}
    out["active_units"] = active_units(torch.cat(means)[:, None])
    out["latent_dims"] = model.cfg.z_dim
    return out


def load_training_data(cfg: TransferTrainConfig):
    """(pieces, labels, summary) of ``cfg.data``: the corpus, or a folder in one of the known layouts."""
    if cfg.data == "corpus":
        from affetto.models.corpus import DEFAULT_GROUPS, load_corpus

        pieces = load_corpus(cfg.groups or DEFAULT_GROUPS, limit=cfg.limit, progress=False)
        return pieces, {}, {"source": "music21 corpus", "groups": list(cfg.groups or DEFAULT_GROUPS),
                            "pieces": len(pieces)}
    from affetto.models.userdata import detect_layout, load_emopia, load_maestro, load_midi_folder

    layout = detect_layout(cfg.data) if cfg.layout == "auto" else cfg.layout
    if layout == "emopia":
        loaded = load_emopia(cfg.data)
    elif layout == "maestro":
        loaded = load_maestro(cfg.data, limit=cfg.limit)
    else:
        loaded = load_midi_folder(cfg.data)
    summary = {"source": f"{layout} folder {cfg.data}", "pieces": len(loaded.pieces), "labelled": len(loaded.labels),
               "skipped": len(loaded.skipped)}
    return loaded.pieces, loaded.labels, summary


def train(cfg: TransferTrainConfig, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    from tqdm import tqdm

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    pieces, labels, summary = load_training_data(cfg)
    splits = build_phrases(pieces, cfg.phrases, labels=labels, progress=progress)
    train_ph = splits["train"]
    valid_ph = splits["valid"] if len(splits["valid"]) else train_ph
    summary = {**summary, "phrases": {k: len(v) for k, v in splits.items()},
               "pairs": {k: v.pairs() for k, v in splits.items()}}
    log.info("data: %s; train: %s; %d windows of chords", json.dumps(summary), train_ph.describe(),
             int(train_ph.chordal.sum()))

    model = TransferModel(cfg.model)
    out = Path(cfg.out)
    start, history, before = 0, [], 0.0
    best = float("inf")
    if cfg.init and not (resume and checkpoint_paths(out)[2].exists()):
        loaded, _ = load_checkpoint(cfg.init)
        if not isinstance(loaded, TransferModel):
            raise ConfigError(f"{cfg.init}: not a transfer checkpoint")
        model = loaded
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    if resume and checkpoint_paths(out)[2].exists():
        loaded, meta = load_checkpoint(out, optimizer=None)
        model.load_state_dict(loaded.state_dict())
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
        load_checkpoint(out, optimizer=opt)
        start, history, before = meta["step"], meta.get("history", []), meta.get("train_seconds", 0.0)
        best = meta.get("best_val", best)
        rng = np.random.default_rng(cfg.seed + start)
        torch.manual_seed(cfg.seed + start)
        log.info("resumed at step %d", start)
    model.train()
    sched = lambda step: cfg.lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * min(step / cfg.steps, 1.0))))  # noqa: E731

    def checkpoint(step: int, seconds: float, name: str = "last") -> None:
        meta = {"train": cfg.to_dict(), "step": step, "history": history, "train_seconds": seconds,
                "data_summary": summary, "best_val": best}
        save_checkpoint(out / name, model, meta, opt)

    began = time.perf_counter()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="transfer", disable=not progress)
    step = start
    stats: dict[str, float] = {}
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = float(sched(step))
        b = tensors(sample_batch(train_ph, cfg.batch, rng, pair_rate=cfg.pair_rate,
                                 velocity_scales=cfg.phrases.velocity_scales, chord_weight=cfg.phrases.chord_weight))
        loss, stats, _ = cvae_loss(model, b, beta_at(step, cfg), cfg.free_bits)
        p = tensors(sample_perf_batch(train_ph, cfg.perf_batch, rng, velocity_scales=cfg.phrases.velocity_scales,
                                      max_notes=cfg.phrases.max_notes))
        vel = perf_loss(model, p)
        opt.zero_grad(set_to_none=True)
        (loss + 100.0 * vel).backward()  # velocity / 127 squared is small beside a phrase's summed BCE
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        stats["velocity_mse"] = vel.item()
        bar.set_postfix(rec=f"{stats['recon']:.1f}", kl=f"{stats['kl']:.1f}", vel=f"{127 * vel.item() ** 0.5:.1f}")
        done = step + 1
        elapsed = before + time.perf_counter() - began
        out_of_time = bool(cfg.minutes) and (time.perf_counter() - began) > 60 * cfg.minutes
        if done % cfg.eval_every == 0 or done == cfg.steps or out_of_time:
            figures = validate(model, valid_ph, cfg)
            history.append({"step": done, "seconds": round(elapsed, 1), **stats, **figures})
            log.info("step %d (%.1f min): %s", done, elapsed / 60,
                     json.dumps({k: round(v, 4) for k, v in {**stats, **figures}.items()}))
            score = figures["val_recon"] + figures["val_kl"]
            if score < best:
                best = score
                checkpoint(done, elapsed, "best")
            checkpoint(done, elapsed)
        if out_of_time:
            break
    bar.close()
    done = step + 1 if cfg.steps > start else start
    wall = time.perf_counter() - began
    checkpoint(done, before + wall)
    return {"step": done, "minutes": (before + wall) / 60, "out": str(out), "last": history[-1] if history else stats}
