"""Guidance distillation: one row that gives what classifier-free guidance gives from two.

Every decode step runs two rows per candidate, the capsule's and the
unconditioned one, mixed as ``u + s * (c - u)``. A *student* that takes the
guidance scale ``s`` as one more capsule channel and gives the guided
distribution from one row would run half the rows: the same weights exported
with one row cost 0.64-0.81x a step of two (README, Benchmarks, "What one
row a candidate would cost").

The student is the teacher's network with that channel added,
``g = (s - 1) / (max_scale - 1)`` in [0, 1], whose embeddings (the capsule's
projection and, with per-block capsules, each block's) start at zero: at
``s = 1`` it starts as exactly the teacher's conditioned row. It learns from
the teacher on the teacher's own training data (its checkpoint names it; a
MIDI folder can stand in): for each example a capsule (its quadrant, or a mix
of it and another, as the knob makes them), a scale drawn in [1, 2] (where the
default 1.5 lies) or in [1, max_scale],
and the loss ``KL(teacher guided || student)`` per token. With
``only_channel`` the new channel's embeddings alone learn (every other
weight stays the teacher's), so at ``s = 1`` the student stays exactly the
teacher's conditioned row. Validation reports
that KL at fixed scales. Checkpoints go to ``out/last`` (with the optimizer,
for ``--resume``) and ``out/best``; their ``distill`` section says what the
extra channel means, for the export and the engine.

Usage: ``affetto distill --out runs/distill [--teacher CKPT] [--steps N] [--resume]`` (the teacher defaults to
the shipped model's checkpoint).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch
import torch.nn.functional as F

import affetto
from affetto.errors import ConfigError
from affetto.models.checkpoint import checkpoint_paths, load_checkpoint, read_meta, save_checkpoint
from affetto.models.train import TrainConfig, cosine_lr, draw_indices, example_weights, load_data, make_batch
from affetto.models.transformer import EmotionTransformer
from affetto.runtime.session import guidance_value
from affetto.tokens.vocab import Vocabulary

log = logging.getLogger(__name__)

EVAL_SCALES = (1.5, 3.0)  # the validation KL is reported at these guidance scales


@dataclass(frozen=True)
class DistillConfig:
    teacher: str  # the teacher's checkpoint
    out: str
    steps: int = 2000
    batch: int = 8
    lr: float = 1e-4
    min_lr: float = 1e-5
    warmup: int = 100
    grad_clip: float = 1.0
    max_scale: float = 5.0  # the daemon's guidance CC reaches 5 (daemon/controls.py: GUIDANCE_RANGE)
    mix_share: float = 0.5  # examples whose capsule mixes their quadrant with another
    low_share: float = 0.5  # examples whose scale is drawn in [1, 2], where the default (1.5) lies
    dropout: float = 0.0  # the student's (its targets, the teacher's, have none)
    only_channel: bool = False  # learn the guidance channel's embeddings alone; the teacher's weights stay
    eval_every: int = 100
    eval_examples: int = 128
    seed: int = 1234
    threads: int = 0
    data: str | None = None  # a MIDI folder instead of the teacher's data (tests, user data)
    init: str | None = None  # a student's checkpoint to start from (a run continued under a new schedule)
    labels: str | None = None
    limit: int | None = None  # pieces of the corpus at most (quick runs)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DistillConfig:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def check(self) -> None:
        if self.steps < 1 or self.batch < 1 or self.eval_every < 1 or self.eval_examples < 1:
            raise ConfigError("steps, batch, eval_every and eval_examples must be >= 1")
        if not self.max_scale > 1.0:
            raise ConfigError(f"max_scale must be above 1 (no guidance), got {self.max_scale}")
        for name in ("mix_share", "low_share", "dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0 < self.min_lr <= self.lr:
            raise ConfigError(f"need 0 < min_lr <= lr, got {self.min_lr} and {self.lr}")


def student_of(teacher: EmotionTransformer, dropout: float | None = None) -> EmotionTransformer:
    """The teacher's network with one more capsule channel whose embeddings are zero (a copy; the teacher is
    left as it is), with ``dropout`` (None: the teacher's)."""
    cfg = replace(teacher.cfg, n_cond=teacher.cfg.n_cond + 1,
                  dropout=teacher.cfg.dropout if dropout is None else dropout)
    student = EmotionTransformer(cfg)
    state = {k: v.clone() for k, v in teacher.state_dict().items()}
    weight = state["cond.weight"]  # (C, n_cond)
    state["cond.weight"] = torch.cat([weight, torch.zeros(weight.shape[0], 1)], dim=1)
    if teacher.cond_layers is not None:
        per_block = state["cond_layers"]  # (L, n_cond, C)
        state["cond_layers"] = torch.cat([per_block, torch.zeros(per_block.shape[0], 1, per_block.shape[2])], dim=1)
    student.load_state_dict(state)
    return student


def keep_teacher_weights(student: EmotionTransformer, channel: int) -> None:
    """Let only the guidance ``channel``'s embeddings learn: every other weight stays the teacher's (no
    gradient), and the capsule's projections take gradients in that channel's column alone. At guidance 1
    (channel 0) the student is then exactly the teacher's conditioned row however long it learns."""
    learning = {"cond.weight": (slice(None), channel), "cond_layers": (slice(None), channel, slice(None))}
    for name, param in student.named_parameters():
        if name not in learning:
            param.requires_grad_(False)
            continue
        mask = torch.zeros_like(param)
        mask[learning[name]] = 1.0
        param.register_hook(lambda grad, mask=mask: grad * mask)


def capsules(quadrant_rows: torch.Tensor, rng: np.random.Generator, mix_share: float) -> torch.Tensor:
    """Capsules for one-hot rows ``quadrant_rows`` (B, 4): kept, or (at ``mix_share``) mixed with another
    quadrant at a random weight, as the knob between two quadrants makes them."""
    out = quadrant_rows.clone()
    for row in range(out.shape[0]):
        if rng.random() >= mix_share or not out[row].any():
            continue
        own = int(out[row].argmax())
        other = int((own + rng.integers(1, 4)) % 4)
        w = float(rng.random())
        out[row] = 0.0
        out[row, own], out[row, other] = 1.0 - w, w
    return out


def guided_log_probs(teacher: EmotionTransformer, inputs: torch.Tensor, capsule: torch.Tensor,
                     scale: torch.Tensor) -> torch.Tensor:
    """The teacher's log-probabilities after guidance, ``log_softmax(u + s * (c - u))``, (B, T, V)."""
    with torch.no_grad():
        both, _ = teacher(torch.cat([inputs, inputs]), torch.cat([capsule, torch.zeros_like(capsule)]))
        c, u = both.chunk(2)
        return F.log_softmax(u + scale[:, None, None] * (c - u), dim=-1)


def distill_loss(student: EmotionTransformer, teacher: EmotionTransformer, inputs: torch.Tensor,
                 mask: torch.Tensor, capsule: torch.Tensor, scale: torch.Tensor, max_scale: float) -> torch.Tensor:
    """Mean ``KL(teacher guided || student)`` in nats over the positions in ``mask`` (B, T)."""
    target = guided_log_probs(teacher, inputs, capsule, scale)
    channel = torch.tensor([guidance_value(s, max_scale) for s in scale.tolist()])  # as the engine feeds it
    cond = torch.cat([capsule, channel[:, None]], dim=1)
    logits, _ = student(inputs, cond)
    kl = (target.exp() * (target - F.log_softmax(logits, dim=-1))).sum(-1)  # (B, T)
    return (kl * mask).sum() / mask.sum().clamp(min=1)


def lr_at(step: int, cfg: DistillConfig) -> float:
    return cosine_lr(step, lr=cfg.lr, min_lr=cfg.min_lr, warmup=cfg.warmup, steps=cfg.steps)


@torch.no_grad()
def evaluate(student, teacher, examples, vocab: Vocabulary, train_cfg: TrainConfig, max_scale: float) -> dict:
    """Mean KL (nats per token) over ``examples`` under their own quadrants, at each of ``EVAL_SCALES``."""
    student.eval()
    out = {}
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].tokens))
    for s in EVAL_SCALES:
        total, count = 0.0, 0
        for start in range(0, len(order), 16):
            inputs, targets, cond = make_batch(examples, order[start : start + 16], vocab, None, train_cfg)
            mask = (targets != -100).float()
            scale = torch.full((inputs.shape[0],), s)
            total += float(distill_loss(student, teacher, inputs, mask, cond, scale, max_scale)) * float(mask.sum())
            count += int(mask.sum())
        out[f"kl_at_{s}"] = total / max(1, count)
    student.train()
    return out


def distill(cfg: DistillConfig, *, resume: bool = False, progress: bool = True) -> dict:
    """Distil (or resume) and return the final metadata's figures; writes ``cfg.out``."""
    cfg.check()
    out = Path(cfg.out)
    last = out / "last"
    if resume and checkpoint_paths(last)[2].exists():
        saved = DistillConfig.from_dict(read_meta(last)["distill"]["config"])
        cfg = replace(saved, steps=cfg.steps, threads=cfg.threads, out=cfg.out)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    teacher, teacher_meta = load_checkpoint(cfg.teacher)
    if not isinstance(teacher, EmotionTransformer) or teacher.cfg.n_cond != 4:
        raise ConfigError(f"{cfg.teacher}: the teacher must be a lead model with a capsule of 4 quadrants")
    for p in teacher.parameters():
        p.requires_grad_(False)
    train_cfg = TrainConfig.from_dict(teacher_meta["train"])
    train_cfg = replace(train_cfg, cond_dropout=0.0, limit=cfg.limit)  # the capsules are drawn here
    if cfg.data is not None:
        train_cfg = replace(train_cfg, data=cfg.data, labels=cfg.labels, emopia=False)
    vocab = Vocabulary.from_dict(teacher_meta["vocab"])
    data = load_data(train_cfg, vocab, progress=progress)
    if not data.train or not data.valid:
        raise ConfigError(f"need training and validation pieces; got {len(data.train)} and {len(data.valid)}")

    student = student_of(teacher, cfg.dropout)
    if cfg.init is not None and not (resume and checkpoint_paths(last)[2].exists()):  # a resume loads its last
        start, start_meta = load_checkpoint(cfg.init)
        channel = (start_meta.get("distill") or {}).get("channel") or {}
        shape = [{k: v for k, v in m.items() if k != "dropout"} for m in (start_meta["model"], student.cfg.to_dict())]
        if shape[0] != shape[1] or channel.get("max_scale") != cfg.max_scale:
            raise ConfigError(f"{cfg.init}: not a student of this teacher with max_scale {cfg.max_scale}")
        student.load_state_dict(start.state_dict())
    if cfg.only_channel:
        keep_teacher_weights(student, teacher.cfg.n_cond)
    optimizer = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=cfg.lr,
                                  betas=(0.9, 0.95), weight_decay=0.0)
    step, best = 0, float("inf")
    history: list[dict] = []
    if resume and checkpoint_paths(last)[2].exists():
        loaded, meta = load_checkpoint(last, optimizer)
        student.load_state_dict(loaded.state_dict())
        step, history = int(meta["step"]), list(meta.get("history", []))
        best = float(meta.get("best_kl", float("inf")))
        log.info("resumed from %s at step %d", last, step)
    student.train()
    weights = example_weights(data.train, train_cfg.balance, train_cfg.transition_share)
    lengths = np.array([len(e.tokens) for e in data.train])
    valid = data.valid[:: max(1, len(data.valid) // cfg.eval_examples)][: cfg.eval_examples]
    channel = {"index": teacher.cfg.n_cond, "meaning": "guidance scale s as (s - 1) / (max_scale - 1)",
               "max_scale": cfg.max_scale}
    meta_base: dict[str, Any] = {key: teacher_meta[key] for key in ("vocab", "judge", "train", "data_summary")
                                 if key in teacher_meta}
    meta_base |= {"affetto": affetto.__version__, "torch": str(torch.__version__)}

    def checkpoint(name: str, figures: dict) -> None:
        meta = {**meta_base, "step": step, "val_loss": figures["kl_at_1.5"], "best_kl": best, "history": history,
                "distill": {"config": cfg.to_dict(), "teacher": str(cfg.teacher), "channel": channel, **figures}}
        save_checkpoint(out / name, student, meta, optimizer if name == "last" else None)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc="distilling", unit="step")
    figures: dict = {}
    t0, tokens = time.perf_counter(), 0
    while step < cfg.steps:
        rng = np.random.default_rng([cfg.seed, step])
        indices = draw_indices(rng, weights, lengths, cfg.batch)
        inputs, targets, quadrants = make_batch(data.train, indices, vocab, rng, train_cfg)
        capsule = capsules(quadrants, rng, cfg.mix_share)
        low = rng.random(len(indices)) < cfg.low_share
        scale = torch.from_numpy(np.where(low, rng.uniform(1.0, 2.0, len(indices)),
                                          rng.uniform(1.0, cfg.max_scale, len(indices))).astype(np.float32))
        mask = (targets != -100).float()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss = distill_loss(student, teacher, inputs, mask, capsule, scale, cfg.max_scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), cfg.grad_clip)
        optimizer.step()
        step += 1
        tokens += int(mask.sum())
        if bar is not None:
            bar.set_postfix(kl=f"{loss.item():.4f}", tok_s=f"{tokens / max(1e-9, time.perf_counter() - t0):.0f}")
            bar.update(1)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            figures = evaluate(student, teacher, valid, vocab, train_cfg, cfg.max_scale)
            history.append({"step": step, "train_kl": loss.item(), **figures, "time": time.time(),
                            "tokens_per_s": tokens / max(1e-9, time.perf_counter() - t0)})
            if figures["kl_at_1.5"] < best:
                best = figures["kl_at_1.5"]
                checkpoint("best", figures)
            checkpoint("last", figures)
            log.info("step %d: train KL %.4f, valid KL %s", step, loss.item(),
                     ", ".join(f"{k} {v:.4f}" for k, v in figures.items()))
    if bar is not None:
        bar.close()
    result = {"step": step, **figures, "best_kl": best, "out": str(out)}
    (out / "summary.json").write_text(json.dumps({**result, "data": data.summary}, indent=1), encoding="utf-8")
    return result


@click.command("distill")
@click.option("--teacher", default="default", show_default=True,
              help="The teacher's checkpoint; default: the shipped model's (affetto/assets/affetto-default).")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="The run's folder.")
@click.option("--steps", type=click.IntRange(min=1), default=DistillConfig.steps, show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=DistillConfig.batch, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=DistillConfig.lr, show_default=True)
@click.option("--eval-every", type=click.IntRange(min=1), default=DistillConfig.eval_every, show_default=True)
@click.option("--max-scale", type=float, default=DistillConfig.max_scale, show_default=True,
              help="The largest guidance scale the student learns.")
@click.option("--threads", type=click.IntRange(min=0), default=0, help="torch threads (0: torch's choice).")
@click.option("--data", type=click.Path(exists=True, file_okay=False),
              help="A MIDI folder instead of the teacher's data.")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), help="Labels CSV for --data.")
@click.option("--limit", type=click.IntRange(min=1), help="Pieces of the corpus at most (a quick run).")
@click.option("--only-channel", is_flag=True,
              help="Learn the guidance channel's embeddings alone (the teacher's weights stay; at guidance 1 the "
                   "student is the teacher's conditioned row).")
@click.option("--init", type=click.Path(dir_okay=False),
              help="A student's checkpoint to start from (e.g. runs/distill2/best), under this run's schedule.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
def distill_command(teacher, out, steps, batch, lr, eval_every, max_scale, threads, data, labels, limit,
                    only_channel, init, resume) -> None:
    """Distil guidance into one row: a student that takes the guidance scale as a capsule channel."""
    from affetto.cli import setup_logging
    from affetto.models.checkpoint import default_checkpoint_path

    setup_logging(0)
    cfg = DistillConfig(teacher=str(default_checkpoint_path()) if teacher == "default" else teacher, out=out,
                        steps=steps, batch=batch, lr=lr, min_lr=min(DistillConfig.min_lr, lr), eval_every=eval_every,
                        max_scale=max_scale, threads=threads, data=data, labels=labels, limit=limit,
                        only_channel=only_channel, init=init)
    try:
        result = distill(cfg, resume=resume)
    except (ConfigError, OSError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(json.dumps(result, indent=1))


if __name__ == "__main__":
    distill_command()
