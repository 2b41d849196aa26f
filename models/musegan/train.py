"""Training of the chorale MuseGAN: WGAN-GP with condition dropout and track-conditional rows.

Each generator step follows ``n_critic`` critic steps. In every batch a share
of the rows (``melody_rate``) gets the real soprano as the given track and the
rest is free generation; the capsule is dropped (all zero) at
``cond_dropout``. Besides the adversarial loss, the conditioned rows may carry
a reconstruction term (binary cross-entropy of the three written voices
against Bach's, summed over pitches), as pix2pix pairs an L1 term with its
GAN, and a voice-leading term (the expected parallel fifths and octaves
between any two voices); both weights at 0 is the plain MuseGAN objective.

The emotion term (after AC-GAN's auxiliary classifier): a small classifier
that sees only the written voices (alto, tenor, bass) learns from real rows
whether a phrase is major and busy. Every row whose capsule is not dropped
is also drawn with the opposite capsule (happy <-> sad, tense <-> calm), the
same latents and the same melody, and the term asks the classifier's two
logits to differ between the two draws in the direction the capsules say
(a pairwise logistic loss): the given soprano already carries the mode, so
only a difference between the two draws under one melody shows that the
capsule was used, and an ambiguous accompaniment does not lower the term.
The opposite draws have no reconstruction term (the data have no such pair)
and the critic judges them unconditioned. The pairwise term leaves the
level free (both draws may drift to major together); ``emotion_level_weight``
adds the plain BCE of each draw, as heard, against what it was asked.

Checkpoints go through :mod:`affetto.models.checkpoint`, as the lead's do:
safetensors for the generator (the ensemble family's model), the critic, the
emotion classifier (parts beside it) and the three optimizers, plus one JSON
with every config, the step and the last validation figures;
``resume=True`` continues from ``OUT/last``, and a checkpoint made before the
classifier existed resumes with a fresh one.
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
from torch.nn import functional as F

from affetto.models.checkpoint import checkpoint_paths, load_checkpoint, load_part, save_checkpoint
from affetto.models.musegan.data import PhraseConfig, Phrases, build_splits, load_chorales, sample_batch
from affetto.models.musegan.model import Critic, EmotionClassifier, GanConfig, Generator, gradient_penalty, latents

log = logging.getLogger(__name__)


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
    voice_leading_weight: float = 0.0  # expected parallel 5ths/8ves between any two voices, per bar
    emotion_weight: float = 0.0  # the written voices of a draw and its opposite classified apart, as asked
    emotion_level_weight: float = 0.0  # each of the two draws classified as what it was asked (BCE), heard
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
        if self.lr_g <= 0 or self.lr_d <= 0 or min(self.gp_weight, self.recon_weight, self.voice_leading_weight,
                                                  self.emotion_weight, self.emotion_level_weight) < 0:
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


# ---- training --------------------------------------------------------------------------
OPPOSITE = (2, 3, 0, 1)  # Q1 happy <-> Q3 sad, Q2 tense <-> Q4 calm: the other valence and the other arousal


def _rows(roll: np.ndarray, cond: np.ndarray, triple: np.ndarray, cfg: EnsembleTrainConfig,
          rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """A batch's rows: the real phrases, the data's own (major, busy) ``labels`` for the classifier, and
    the ``capsule`` the generator is asked for (dropped at ``cond_dropout``)."""
    b = len(roll)
    labels = np.stack([cond[:, 0] + cond[:, 3], cond[:, 0] + cond[:, 1]], 1)  # (B, 2): major, busy
    cond = cond * (rng.random((b, 1)) >= cfg.cond_dropout)
    has = (rng.random((b, 1)) < cfg.melody_rate).astype(np.float32)
    return {
        "real": torch.from_numpy(roll),
        "labels": torch.from_numpy(labels.astype(np.float32)),
        "capsule": torch.from_numpy(cond.astype(np.float32)),
        "triple": torch.from_numpy(triple),
        "melody": torch.from_numpy(roll[:, 0]),
        "has_melody": torch.from_numpy(has),
    }


def generate_rows(gen: Generator, rows: dict[str, torch.Tensor], g: torch.Generator | None = None,
                  z: dict[str, torch.Tensor] | None = None, capsule: torch.Tensor | None = None) -> torch.Tensor:
    z = latents(rows["real"].shape[0], gen.cfg, g) if z is None else z
    return gen(**z, capsule=rows["capsule"] if capsule is None else capsule, triple=rows["triple"],
               melody=rows["melody"], has_melody=rows["has_melody"])


def recon_loss(fake: torch.Tensor, real: torch.Tensor, has: torch.Tensor) -> torch.Tensor:
    """BCE of the written voices (tracks 1..) against the real ones, summed over pitch, on conditioned rows."""
    bce = F.binary_cross_entropy(fake[:, 1:].clamp(1e-6, 1 - 1e-6), real[:, 1:], reduction="none").sum(-1)
    w = has.view(-1, 1, 1, 1)
    return (bce * w).sum() / (w.sum() * bce[0].numel()).clamp(min=1)


PARALLEL_OFFSETS = (0, 7, 12, 19, 24, 31, 36)  # a unison, fifth or octave (compound) between two voices


def parallel_penalty(fake: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Expected parallel unisons, fifths and octaves between any two voices, per bar (mean over rows).

    For voices a over b and an interval d, ``x[s, q] = a[s, q] * b[s, q - d]``
    is the chance that they sit d apart with a on q at step s; with
    independent per-step probabilities the chance that they do so at s and
    at s + 1 on different pitches (both moved, the same way) is
    ``sum(x[s]) * sum(x[s+1]) - x[s] . x[s+1]``, summed over steps, offsets
    and the six pairs. ``weight`` (B, 1) weighs the rows (all 1 by default).
    """
    b, t, bars, steps, p = fake.shape
    v = fake.reshape(b, t, bars * steps, p)  # (B, T, S, P)
    total = fake.new_zeros(b)
    for hi in range(t):
        for lo in range(hi + 1, t):
            for d in PARALLEL_OFFSETS:
                x = v[:, hi, :, d:] * v[:, lo, :, : p - d]  # (B, S, P-d): hi on q + d, lo on q
                both = x.sum(-1)  # (B, S)
                moved = both[:, :-1] * both[:, 1:] - (x[:, :-1] * x[:, 1:]).sum(-1)  # (B, S-1)
                total = total + moved.sum(1)
    w = torch.ones(b, device=fake.device) if weight is None else weight.view(-1)
    return (total * w).sum() / w.sum().clamp(min=1) / bars


def emotion_loss(emotion: EmotionClassifier, roll: torch.Tensor, target: torch.Tensor, triple: torch.Tensor,
                 weight: torch.Tensor) -> torch.Tensor:
    """BCE of the classifier's (major, busy) logits on the written voices against ``target``, on rows of weight 1."""
    logits = emotion(roll[:, 1:], triple)  # (B, 2)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(1)  # (B,)
    w = weight.view(-1)
    return (bce * w).sum() / w.sum().clamp(min=1)


def heard(probs: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """The roll as the runtime plays it (``affetto.ensemble.engine.binarise``: per step and voice the top pitch, if
    the probabilities sum to ``threshold``), with the gradient of ``probs`` (a straight-through estimator)."""
    top = F.one_hot(probs.argmax(-1), probs.shape[-1]).to(probs.dtype)  # (..., P)
    hard = top * (probs.sum(-1, keepdim=True) >= threshold).to(probs.dtype)
    return probs + (hard - probs).detach()


def contrast_loss(emotion: EmotionClassifier, fake: torch.Tensor, opposite: torch.Tensor, capsule: torch.Tensor,
                  triple: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Pairwise logistic loss: the classifier's (major, busy) logits of ``fake`` minus those of ``opposite``
    (the same row drawn with the opposite capsule) should have the signs ``capsule`` asks for; rows of weight 1.
    The classifier hears both draws as they will be played (:func:`heard`), so that differences below the
    threshold, which no one would hear, do not count."""
    diff = emotion(heard(fake[:, 1:]), triple) - emotion(heard(opposite[:, 1:]), triple)  # (B, 2)
    sign = 2 * capsule_target(capsule) - 1  # (B, 2): +1 major / busy asked, -1 minor / calm
    loss = F.softplus(-sign * diff).mean(1)  # (B,)
    w = weight.view(-1)
    return (loss * w).sum() / w.sum().clamp(min=1)


def capsule_target(capsule: torch.Tensor) -> torch.Tensor:
    """(B, 4) quadrant weights -> (B, 2): the asked-for share of major (Q1 + Q4) and busy (Q1 + Q2)."""
    return torch.stack([capsule[:, 0] + capsule[:, 3], capsule[:, 0] + capsule[:, 1]], 1)


def validate(gen: Generator, ph: Phrases, median: float, cfg: EnsembleTrainConfig,
             emotion: EmotionClassifier | None = None) -> dict[str, float]:
    """Reconstruction BCE and simple roll figures on fixed validation phrases, harmonising their sopranos;
    the same sopranos asked to be happy, sad and calm (minor-triad share of beats, inner-voice onsets per
    beat, and the share of melodies with more minor triads when sad than when happy)."""
    from affetto.analysis.voicing import chord_shares, inner_activity, lines
    from affetto.ensemble.engine import binarise
    from affetto.models.musegan.data import LOW

    rng = np.random.default_rng(0)
    roll, cond, triple = sample_batch(ph, 128, rng, gen.cfg.bars, median, transpose=False)
    rows = {"real": torch.from_numpy(roll), "capsule": torch.from_numpy(cond), "triple": torch.from_numpy(triple),
            "melody": torch.from_numpy(roll[:, 0]), "has_melody": torch.ones(len(roll), 1)}
    gen.eval()
    moods = {}
    with torch.no_grad():
        fake = generate_rows(gen, rows, torch.Generator().manual_seed(0))
        for name, q in (("happy", 0), ("sad", 2), ("calm", 3)):
            asked = {**rows, "capsule": torch.eye(4)[q].expand(len(roll), 4).contiguous()}
            moods[name] = lines(binarise(generate_rows(gen, asked, torch.Generator().manual_seed(0)).numpy()),
                                triple, LOW)
    gen.train()
    binary = binarise(fake.numpy())
    sounding = binary[:, 1:].any(-1)  # (B, 3, bars, 16)
    minor = {name: np.array([chord_shares(ln)[0] for ln in v]) for name, v in moods.items()}
    major = {name: np.array([chord_shares(ln)[1] for ln in v]) for name, v in moods.items()}
    busy = {name: np.array([inner_activity(ln) for ln in v]) for name, v in moods.items()}
    figures = {
        "val_recon": float(recon_loss(fake, rows["real"], rows["has_melody"])),
        "empty_bars": float((~sounding.any(-1)).mean()),
        "sounding_steps": float(sounding.mean()),
        "real_sounding_steps": float(roll[:, 1:].any(-1).mean()),
        "val_parallels": float(parallel_penalty(fake)),
        "minor_happy": float(minor["happy"].mean()),
        "minor_sad": float(minor["sad"].mean()),
        "major_happy": float(major["happy"].mean()),
        "major_sad": float(major["sad"].mean()),
        "sad_more_minor": float((minor["sad"] > minor["happy"]).mean()),
        "inner_happy": float(busy["happy"].mean()),
        "inner_calm": float(busy["calm"].mean()),
    }
    if emotion is not None:
        with torch.no_grad():
            labels = torch.from_numpy(np.stack([cond[:, 0] + cond[:, 3], cond[:, 0] + cond[:, 1]], 1))
            real_logits = emotion(rows["real"][:, 1:], rows["triple"])
        figures["emotion_real_accuracy"] = float(((real_logits > 0).float() == labels).float().mean())
    return figures


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

    gen, critic, emotion = Generator(cfg.model), Critic(cfg.model), EmotionClassifier(cfg.model)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(critic.parameters(), lr=cfg.lr_d, betas=cfg.betas)
    opt_e = torch.optim.Adam(emotion.parameters(), lr=cfg.lr_d, betas=(0.9, 0.999))
    opts = {"g": opt_g, "d": opt_d, "e": opt_e}
    out = Path(cfg.out)
    start, history, before = 0, [], 0.0  # before: training seconds of earlier runs
    if resume and checkpoint_paths(out)[2].exists():
        loaded, meta = load_checkpoint(out, parts={"critic": critic}, optimizers=opts)
        gen.load_state_dict(loaded.state_dict())
        if not load_part(out, "emotion", emotion):
            log.info("the checkpoint has no emotion classifier: a fresh one")
        start, history, before = meta["step"], meta.get("history", []), meta.get("train_seconds", 0.0)
        rng = np.random.default_rng(cfg.seed + start)
        torch.manual_seed(cfg.seed + start)
        log.info("resumed at step %d", start)
    gen.train()
    critic.train()
    emotion.train()

    def checkpoint(step: int, seconds: float) -> None:
        meta = {"train": cfg.to_dict(), "step": step, "history": history, "train_seconds": seconds,
                "data_summary": summary}
        save_checkpoint(out / "last", gen, meta, parts={"critic": critic, "emotion": emotion}, optimizers=opts)

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
            e_loss = emotion_loss(emotion, rows["real"], rows["labels"], rows["triple"], torch.ones(cfg.batch, 1))
            opt_e.zero_grad(set_to_none=True)
            e_loss.backward()
            opt_e.step()
        rows = _rows(*sample_batch(train_ph, cfg.batch, rng, cfg.model.bars, median), cfg, rng)
        z = latents(cfg.batch, cfg.model)
        fake = generate_rows(gen, rows, z=z)
        adv = -critic(fake, rows["capsule"], rows["triple"]).mean()
        rec = recon_loss(fake, rows["real"], rows["has_melody"])
        par = parallel_penalty(fake)
        emo = torch.zeros(())
        if cfg.emotion_weight or cfg.emotion_level_weight:  # the same rows asked the opposite: judged
            # unconditioned, no recon term
            asked = (rows["capsule"].sum(1, keepdim=True) > 0).float()  # (B, 1): the capsule was not dropped
            opposite = generate_rows(gen, rows, z=z, capsule=rows["capsule"][:, OPPOSITE])
            adv = (adv - critic(opposite, torch.zeros_like(rows["capsule"]), rows["triple"]).mean()) / 2
            par = (par + parallel_penalty(opposite)) / 2
            emo = contrast_loss(emotion, fake, opposite, rows["capsule"], rows["triple"], asked)
            level = (emotion_loss(emotion, heard(fake), capsule_target(rows["capsule"]), rows["triple"], asked)
                     + emotion_loss(emotion, heard(opposite), capsule_target(rows["capsule"][:, OPPOSITE]),
                                    rows["triple"], asked)) / 2
        else:
            level = torch.zeros(())
        g_loss = (adv + cfg.recon_weight * rec + cfg.voice_leading_weight * par + cfg.emotion_weight * emo
                  + cfg.emotion_level_weight * level)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        stats = {"wasserstein": (real_score - fake_score).item(), "gp": gp.item(), "g_adv": adv.item(),
                 "recon": rec.item(), "parallels": par.item(), "emotion_real": e_loss.item(),
                 "emotion_fake": emo.item(), "emotion_level": level.item()}
        bar.set_postfix(w=f"{stats['wasserstein']:.2f}", gp=f"{stats['gp']:.3f}", rec=f"{stats['recon']:.3f}",
                        emo=f"{stats['emotion_fake']:.3f}")
        elapsed = before + time.perf_counter() - began
        done = step + 1
        out_of_time = cfg.minutes and (time.perf_counter() - began) > 60 * cfg.minutes
        if done % cfg.eval_every == 0 or done == cfg.steps or out_of_time:
            figures = validate(gen, valid_ph, median, cfg, emotion) if len(valid_ph) else {}
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
