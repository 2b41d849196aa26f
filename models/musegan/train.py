"""Training of the chorale MuseGAN: WGAN-GP with condition dropout and track-conditional rows.

Each generator step follows ``n_critic`` critic steps. In every batch a share
of the rows (``melody_rate``) gets the real soprano as the given track and the
rest is free generation; the capsule is dropped (all zero) at
``cond_dropout``. Besides the adversarial loss, the conditioned rows may carry
a reconstruction term (binary cross-entropy of the three written voices
against Bach's, summed over pitches), as pix2pix pairs an L1 term with its
GAN, and a voice-leading term (the expected parallel fifths and octaves
against the given soprano); both weights at 0 is the plain MuseGAN objective.

Checkpoints are safetensors (generator, critic, both optimizers) plus one
JSON with every config, the step and the last validation figures;
``resume=True`` continues from ``OUT/last``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch.nn import functional as F

from affetto.errors import ModelFileError

from .data import PhraseConfig, Phrases, build_splits, load_chorales, sample_batch
from .model import Critic, GanConfig, Generator, gradient_penalty, latents

log = logging.getLogger(__name__)

FORMAT = "affetto-ensemble-checkpoint"


@dataclass(frozen=True)
class EnsembleTrainConfig:
    out: str = "runs/ensemble"
    steps: int = 3000  # generator steps
    batch: int = 32
    lr_g: float = 1e-3
    lr_d: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.9)
    n_critic: int = 5
    gp_weight: float = 10.0
    recon_weight: float = 1.0
    voice_leading_weight: float = 0.0  # expected parallel 5ths/8ves against a given soprano, per bar
    melody_rate: float = 0.5  # share of rows that are given the soprano
    cond_dropout: float = 0.2
    eval_every: int = 100
    minutes: float = 0.0  # stop (with a checkpoint) after this much wall time; 0: no limit
    seed: int = 1234
    threads: int = 1
    limit: int | None = None  # chorale files parsed (quick runs)
    model: GanConfig = field(default_factory=GanConfig)
    phrases: PhraseConfig = field(default_factory=PhraseConfig)

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "n_critic", "eval_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an int >= 1, got {getattr(self, name)!r}")
        for name in ("melody_rate", "cond_dropout"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.lr_g <= 0 or self.lr_d <= 0 or min(self.gp_weight, self.recon_weight, self.voice_leading_weight) < 0:
            raise ValueError("learning rates must be > 0 and loss weights >= 0")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EnsembleTrainConfig:
        d = dict(d)
        d["model"] = GanConfig.from_dict(d.get("model", {}))
        d["phrases"] = PhraseConfig(**d.get("phrases", {}))
        d["betas"] = tuple(d.get("betas", (0.5, 0.9)))
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


# ---- checkpoints ---------------------------------------------------------------------
def _paths(path: str | Path) -> dict[str, Path]:
    path = Path(path)
    if path.is_dir():
        path = path / "last"
    stem = path.with_suffix("") if path.suffix in (".json", ".safetensors") else path
    return {k: stem.with_name(f"{stem.name}.{k}") for k in
            ("generator.safetensors", "critic.safetensors", "optim.safetensors", "json")}


def _replace(write, target: Path) -> None:
    tmp = target.with_name(target.name + ".tmp")
    write(tmp)
    os.replace(tmp, target)


def save_checkpoint(path: str | Path, gen: Generator, critic: Critic, meta: dict[str, Any],
                    opts: dict[str, torch.optim.Optimizer] | None = None) -> None:
    p = _paths(path)
    p["json"].parent.mkdir(parents=True, exist_ok=True)
    _replace(lambda t: save_model(gen, str(t)), p["generator.safetensors"])
    _replace(lambda t: save_model(critic, str(t)), p["critic.safetensors"])
    full = {"format": FORMAT, "family": "ensemble", "model": gen.cfg.to_dict(), **meta}
    if opts:
        tensors, groups = {}, {}
        for name, opt in opts.items():
            state = opt.state_dict()
            for index, values in state["state"].items():
                for key, value in values.items():
                    t = value if torch.is_tensor(value) else torch.tensor(value)
                    tensors[f"{name}.{index}.{key}"] = t.detach().cpu().contiguous()
            groups[name] = state["param_groups"]
        _replace(lambda t: save_file(tensors, str(t)), p["optim.safetensors"])
        full["optimizer_groups"] = groups
    _replace(lambda t: t.write_text(json.dumps(full, indent=1, sort_keys=True), encoding="utf-8"), p["json"])


def load_checkpoint(path: str | Path, opts: dict[str, torch.optim.Optimizer] | None = None,
                    critic: bool = False) -> tuple[Generator, Critic | None, dict[str, Any]]:
    """Generator (eval mode), the critic if asked, and the metadata; fills ``opts`` if given."""
    p = _paths(path)
    try:
        meta = json.loads(p["json"].read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ModelFileError(f"{p['json']}: no ensemble checkpoint here") from err
    except json.JSONDecodeError as err:
        raise ModelFileError(f"{p['json']}: checkpoint metadata is not valid JSON ({err})") from err
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{p['json']}: not an ensemble checkpoint")
    cfg = GanConfig.from_dict(meta["model"])
    gen = Generator(cfg)
    disc = Critic(cfg) if critic or opts else None
    try:
        load_model(gen, str(p["generator.safetensors"]))
        if disc is not None:
            load_model(disc, str(p["critic.safetensors"]))
    except (OSError, RuntimeError, ValueError) as err:
        raise ModelFileError(f"{p['generator.safetensors']}: cannot load weights ({err})") from err
    if opts:
        tensors = load_file(str(p["optim.safetensors"]))
        for name, opt in opts.items():
            state: dict[int, dict[str, torch.Tensor]] = {}
            for key, t in tensors.items():
                owner, index, field_name = key.split(".", 2)
                if owner == name:
                    state.setdefault(int(index), {})[field_name] = t
            opt.load_state_dict({"state": state, "param_groups": meta["optimizer_groups"][name]})
    gen.eval()
    return gen, disc, meta


# ---- training --------------------------------------------------------------------------
def _rows(roll: np.ndarray, cond: np.ndarray, triple: np.ndarray, cfg: EnsembleTrainConfig,
          rng: np.random.Generator) -> dict[str, torch.Tensor]:
    b = len(roll)
    cond = cond * (rng.random((b, 1)) >= cfg.cond_dropout)
    has = (rng.random((b, 1)) < cfg.melody_rate).astype(np.float32)
    return {
        "real": torch.from_numpy(roll),
        "capsule": torch.from_numpy(cond.astype(np.float32)),
        "triple": torch.from_numpy(triple),
        "melody": torch.from_numpy(roll[:, 0]),
        "has_melody": torch.from_numpy(has),
    }


def generate_rows(gen: Generator, rows: dict[str, torch.Tensor], g: torch.Generator | None = None) -> torch.Tensor:
    z = latents(rows["real"].shape[0], gen.cfg, g)
    return gen(**z, capsule=rows["capsule"], triple=rows["triple"], melody=rows["melody"],
               has_melody=rows["has_melody"])


def recon_loss(fake: torch.Tensor, real: torch.Tensor, has: torch.Tensor) -> torch.Tensor:
    """BCE of the written voices (tracks 1..) against the real ones, summed over pitch, on conditioned rows."""
    bce = F.binary_cross_entropy(fake[:, 1:].clamp(1e-6, 1 - 1e-6), real[:, 1:], reduction="none").sum(-1)
    w = has.view(-1, 1, 1, 1)
    return (bce * w).sum() / (w.sum() * bce[0].numel()).clamp(min=1)


PARALLEL_OFFSETS = (7, 12, 19, 24, 31, 36)  # a fifth or an octave (compound) under the melody


def parallel_penalty(fake: torch.Tensor, melody: torch.Tensor, has: torch.Tensor) -> torch.Tensor:
    """Expected parallel fifths and octaves of the written voices against a given soprano, per bar.

    Where the soprano moves from one pitch to another, a voice that sits the
    same fifth or octave under it before and after moves in parallel; with
    independent per-step probabilities the expected count is the product of
    the two probabilities, summed over steps, offsets and voices.
    """
    b, t, bars, steps, p = fake.shape
    sop = melody.reshape(b, bars * steps, p)  # (B, S, P)
    voices = fake[:, 1:].reshape(b, t - 1, bars * steps, p)  # (B, T-1, S, P)
    sounding = sop.sum(-1) > 0  # (B, S)
    moves = (sop[:, 1:] != sop[:, :-1]).any(-1) & sounding[:, 1:] & sounding[:, :-1]  # (B, S-1)
    total = torch.zeros(b)
    for d in PARALLEL_OFFSETS:
        below = F.pad(sop[..., d:], (0, d))  # (B, S, P): below[s, q] = sop[s, q + d]
        at = (voices * below.unsqueeze(1)).sum(-1)  # (B, T-1, S): the voice sits d under the melody
        total = total + (at[..., :-1] * at[..., 1:] * moves.unsqueeze(1)).sum((1, 2))
    w = has.view(-1)
    return (total * w).sum() / w.sum().clamp(min=1) / bars


def validate(gen: Generator, ph: Phrases, median: float, cfg: EnsembleTrainConfig) -> dict[str, float]:
    """Reconstruction BCE and simple roll figures on fixed validation phrases, harmonising their sopranos."""
    from affetto.ensemble import binarise

    rng = np.random.default_rng(0)
    roll, cond, triple = sample_batch(ph, 128, rng, gen.cfg.bars, median, transpose=False)
    rows = {"real": torch.from_numpy(roll), "capsule": torch.from_numpy(cond), "triple": torch.from_numpy(triple),
            "melody": torch.from_numpy(roll[:, 0]), "has_melody": torch.ones(len(roll), 1)}
    gen.eval()
    with torch.no_grad():
        fake = generate_rows(gen, rows, torch.Generator().manual_seed(0))
    gen.train()
    binary = binarise(fake.numpy())
    sounding = binary[:, 1:].any(-1)  # (B, 3, bars, 16)
    return {
        "val_recon": float(recon_loss(fake, rows["real"], rows["has_melody"])),
        "empty_bars": float((~sounding.any(-1)).mean()),
        "sounding_steps": float(sounding.mean()),
        "real_sounding_steps": float(roll[:, 1:].any(-1).mean()),
    }


def train(cfg: EnsembleTrainConfig, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    from tqdm import tqdm

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    chorales = load_chorales(limit=cfg.limit, progress=progress)
    splits = build_splits(chorales, cfg.phrases)
    train_ph, valid_ph = splits["train"], splits["valid"]
    if len(train_ph) == 0:
        raise ValueError("no training phrases")
    median = float(np.median(train_ph.density))
    summary = {
        "source": "music21 corpus: Bach four-part chorales (4/4 and 3/4), 12 transpositions, parallel modes",
        "chorales": len(chorales),
        "triple_meter_chorales": int(sum(c.triple for c in chorales)),
        "phrases": {k: len(v) for k, v in splits.items()},
        "arousal_density_median": median,
        "major_share": {k: float((v.valence > 0).mean()) if len(v) else 0.0 for k, v in splits.items()},
    }
    log.info("data: %s", summary)

    gen, critic = Generator(cfg.model), Critic(cfg.model)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(critic.parameters(), lr=cfg.lr_d, betas=cfg.betas)
    out = Path(cfg.out)
    start, history, before = 0, [], 0.0  # before: training seconds of earlier runs
    if resume and _paths(out)["json"].exists():
        loaded, loaded_critic, meta = load_checkpoint(out, {"g": opt_g, "d": opt_d})
        gen.load_state_dict(loaded.state_dict())
        critic.load_state_dict(loaded_critic.state_dict())
        start, history, before = meta["step"], meta.get("history", []), meta.get("train_seconds", 0.0)
        rng = np.random.default_rng(cfg.seed + start)
        torch.manual_seed(cfg.seed + start)
        log.info("resumed at step %d", start)
    gen.train()
    critic.train()

    def checkpoint(step: int, seconds: float) -> None:
        meta = {"train": cfg.to_dict(), "step": step, "history": history, "train_seconds": seconds,
                "data_summary": summary}
        save_checkpoint(out / "last", gen, critic, meta, {"g": opt_g, "d": opt_d})

    began = time.perf_counter()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="ensemble", disable=not progress)
    step = start
    stats: dict[str, float] = {}
    for step in bar:
        for _ in range(cfg.n_critic):
            rows = _rows(*sample_batch(train_ph, cfg.batch, rng, cfg.model.bars, median), cfg, rng)
            with torch.no_grad():
                fake = generate_rows(gen, rows)
            real_score = critic(rows["real"], rows["capsule"], rows["triple"]).mean()
            fake_score = critic(fake, rows["capsule"], rows["triple"]).mean()
            gp = gradient_penalty(critic, rows["real"], fake, rows["capsule"], rows["triple"])
            d_loss = fake_score - real_score + cfg.gp_weight * gp
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        rows = _rows(*sample_batch(train_ph, cfg.batch, rng, cfg.model.bars, median), cfg, rng)
        fake = generate_rows(gen, rows)
        adv = -critic(fake, rows["capsule"], rows["triple"]).mean()
        rec = recon_loss(fake, rows["real"], rows["has_melody"])
        par = parallel_penalty(fake, rows["melody"], rows["has_melody"])
        g_loss = adv + cfg.recon_weight * rec + cfg.voice_leading_weight * par
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        stats = {"wasserstein": (real_score - fake_score).item(), "gp": gp.item(), "g_adv": adv.item(),
                 "recon": rec.item(), "parallels": par.item()}
        bar.set_postfix(w=f"{stats['wasserstein']:.2f}", gp=f"{stats['gp']:.3f}", rec=f"{stats['recon']:.3f}")
        elapsed = before + time.perf_counter() - began
        done = step + 1
        out_of_time = cfg.minutes and (time.perf_counter() - began) > 60 * cfg.minutes
        if done % cfg.eval_every == 0 or done == cfg.steps or out_of_time:
            figures = validate(gen, valid_ph, median, cfg) if len(valid_ph) else {}
            rate = (done - start) * cfg.batch * (cfg.n_critic + 1) / max(time.perf_counter() - began, 1e-9)
            history.append({"step": done, "seconds": round(elapsed, 1), **stats, **figures})
            log.info("step %d (%.1f min, %.0f phrases/s): %s", done, elapsed / 60, rate,
                     json.dumps({k: round(v, 4) for k, v in {**stats, **figures}.items()}))
            checkpoint(done, elapsed)
        if out_of_time:
            break
    bar.close()
    done = step + 1 if cfg.steps > start else start
    wall = time.perf_counter() - began
    checkpoint(done, before + wall)
    rate = (done - start) * cfg.batch * (cfg.n_critic + 1) / max(wall, 1e-9)
    return {"step": done, "minutes": (before + wall) / 60, "run_minutes": wall / 60, "phrases_per_second": rate,
            "out": str(out), "last": history[-1] if history else stats}
