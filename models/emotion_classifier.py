"""The learned judge: a small convolutional emotion classifier over affetto's tokens.

A second opinion beside the feature judge. It reads a phrase's tokens (the
same REMI-like stream the generator writes), embeds them, runs a few dilated
1-D convolutions and pools over time (mean and max) into four quadrant
logits. It is trained on labelled phrases of the model's training split
(with the augmentation and balanced quadrants training uses, and random
transposition), so it hears whatever separates the labels rather than the
feature judge's formulas; its own accuracy on held-out phrases says how far
to trust it.

Weights are cached as safetensors plus JSON under a key made of the
classifier config, the vocabulary and a digest of the training phrases, so a
second evaluation on the same data reuses them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from affetto.errors import ConfigError
from affetto.tokens.vocab import Vocabulary

if TYPE_CHECKING:  # evaluation imports this module; phrases are only annotations here
    from affetto.models.evaluation.data import Phrase


log = logging.getLogger(__name__)

FORMAT = "affetto-emotion-classifier"


@dataclass(frozen=True)
class ClassifierConfig:
    d_model: int = 64  # embedding and channel width
    key_filters: int = 32  # learned key templates over the pitch-class histogram
    layers: int = 3  # dilated convolutions (dilation 1, 2, 4, ...)
    kernel: int = 5
    max_tokens: int = 384  # a phrase is cut to this many tokens
    steps: int = 800  # optimisation steps (about a minute on one CPU thread)
    batch: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.01
    transpose: tuple[int, int] = (-6, 6)  # random transposition in semitones, per phrase
    time_budget: float = 120.0  # seconds; training stops early (with a warning) past this
    seed: int = 0
    version: int = 2  # bump when the architecture changes, so cached weights are not misread

    def __post_init__(self) -> None:
        for name in ("d_model", "layers", "kernel", "max_tokens", "steps", "batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0 or not self.time_budget > 0:
            raise ConfigError("lr and time_budget must be > 0")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ClassifierConfig:
        data = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "transpose" in data:
            data["transpose"] = tuple(data["transpose"])
        return cls(**data)


class EmotionClassifier(nn.Module):
    """Tokens (B, T) with padding 0 -> quadrant logits (B, 4).

    Two branches meet before the head: dilated convolutions over token
    embeddings (rhythm, density, dynamics, local shapes), and learned key
    templates slid around the phrase's pitch-class histogram with the best
    rotation kept, which hears mode whatever the key, as the Krumhansl
    profiles do, but with templates learned from the labels.
    """

    pitch_class: torch.Tensor  # a buffer (register_buffer), not a parameter

    def __init__(self, vocab: Vocabulary, cfg: ClassifierConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        pitch_class = torch.full((vocab.size,), -1, dtype=torch.long)  # token -> pitch class, -1 for others
        midi = torch.arange(vocab.n_pitches) + vocab.config.pitch_min
        pitch_class[vocab.pitch0 : vocab.vel0] = midi % 12
        self.register_buffer("pitch_class", pitch_class, persistent=False)
        self.keys = nn.Conv1d(1, cfg.key_filters, 12)
        self.emb = nn.Embedding(vocab.size, d, padding_idx=0)
        self.convs = nn.ModuleList(
            nn.Conv1d(d, d, cfg.kernel, dilation=2**i, padding=(cfg.kernel - 1) * 2**i // 2)
            for i in range(cfg.layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(cfg.layers))
        self.head = nn.Sequential(nn.Linear(2 * d + cfg.key_filters, d), nn.GELU(), nn.Linear(d, 4))

    def key_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, key_filters): each template's best match over the 12 rotations of the histogram."""
        pcs = self.pitch_class[tokens]  # (B, T)
        onehot = F.one_hot(pcs.clamp(min=0), 12).float() * (pcs >= 0).unsqueeze(-1).float()  # (B, T, 12)
        hist = onehot.sum(dim=1)  # (B, 12)
        hist = 12 * hist / hist.sum(dim=1, keepdim=True).clamp(min=1.0)  # mean 1 per pitch class
        ring = torch.cat([hist, hist[:, :11]], dim=1).unsqueeze(1)  # (B, 1, 23): circular
        return F.relu(self.keys(ring)).max(dim=-1).values  # (B, key_filters)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = (tokens != 0).unsqueeze(-1).float()  # (B, T, 1)
        x = self.emb(tokens)  # (B, T, d)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            y = conv((x * mask).transpose(1, 2)).transpose(1, 2)  # (B, T, d)
            x = norm(x + F.gelu(y))
        count = mask.sum(dim=1).clamp(min=1.0)  # (B, 1)
        mean = (x * mask).sum(dim=1) / count  # (B, d)
        top = x.masked_fill(mask == 0, -1e4).max(dim=1).values  # (B, d)
        return self.head(torch.cat([mean, top, self.key_features(tokens)], dim=-1))  # (B, 4)


# ---- batches ------------------------------------------------------------------------
def _batch(phrases: Sequence[Phrase], indices: Sequence[int] | np.ndarray, max_tokens: int) -> torch.Tensor:
    length = max(1, min(max_tokens, max(len(phrases[i].tokens) for i in indices)))
    out = np.zeros((len(indices), length), dtype=np.int64)  # 0 = PAD
    for row, i in enumerate(indices):
        toks = phrases[i].tokens[:length]
        out[row, : len(toks)] = toks
    return torch.from_numpy(out)


def _transpose(tokens: torch.Tensor, vocab: Vocabulary, rng: np.random.Generator,
               span: tuple[int, int]) -> None:
    """Shift every row's pitch tokens by one random interval that keeps them in range (in place)."""
    lo_p, hi_p = vocab.pitch0, vocab.vel0 - 1
    for row in range(tokens.shape[0]):
        pitches = (tokens[row] >= lo_p) & (tokens[row] <= hi_p)
        if not bool(pitches.any()):
            continue
        low = max(span[0], lo_p - int(tokens[row][pitches].min()))
        high = min(span[1], hi_p - int(tokens[row][pitches].max()))
        if low <= high:
            tokens[row][pitches] += int(rng.integers(low, high + 1))


# ---- training, caching, prediction ---------------------------------------------------------
def data_digest(phrases: Sequence[Phrase], cfg: ClassifierConfig, vocab: Vocabulary, extra: dict) -> str:
    """A key for the cache: the config, the vocabulary, ``extra`` and every phrase's tokens and label."""
    h = hashlib.sha1(json.dumps([cfg.to_dict(), vocab.to_dict(), extra], sort_keys=True).encode())
    for p in phrases:
        h.update(np.int64(p.label).tobytes())
        h.update(p.tokens.astype(np.int16).tobytes())
    return h.hexdigest()[:16]


def train_classifier(phrases: Sequence[Phrase], vocab: Vocabulary, cfg: ClassifierConfig = ClassifierConfig(),
                     *, progress: bool = False) -> tuple[EmotionClassifier, dict]:
    """Train on labelled phrases with quadrant-balanced batches; returns the model and a summary."""
    labelled = [p for p in phrases if 0 <= p.label < 4]
    if not labelled:
        raise ConfigError("the learned judge needs labelled training phrases; none were given")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = EmotionClassifier(vocab, cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    labels = np.array([p.label for p in labelled])
    counts = np.bincount(labels, minlength=4).astype(float)
    weights = np.where(counts[labels] > 0, 1.0 / np.maximum(counts[labels], 1), 0.0)
    weights /= weights.sum()
    lengths = np.array([len(p.tokens) for p in labelled])
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, desc="learned judge", unit="step", leave=False)
    model.train()
    t0, step, loss_value = time.perf_counter(), 0, float("nan")
    while step < cfg.steps:
        pool = rng.choice(len(labelled), size=4 * cfg.batch, p=weights)
        pool = pool[np.argsort(lengths[pool], kind="stable")]  # similar lengths pad less
        k = int(rng.integers(0, 4))
        idx = pool[k * cfg.batch : (k + 1) * cfg.batch]
        tokens = _batch(labelled, idx, cfg.max_tokens)
        _transpose(tokens, vocab, rng, cfg.transpose)
        for group in optimizer.param_groups:  # cosine decay to a tenth
            group["lr"] = cfg.lr * (0.1 + 0.45 * (1 + np.cos(np.pi * step / cfg.steps)))
        loss = F.cross_entropy(model(tokens), torch.from_numpy(labels[idx]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        loss_value = loss.item()
        if bar is not None:
            bar.set_postfix(loss=f"{loss_value:.3f}")
            bar.update(1)
        if time.perf_counter() - t0 > cfg.time_budget:
            log.warning("learned judge: stopped at step %d of %d (time budget %.0f s)",
                        step, cfg.steps, cfg.time_budget)
            break
    if bar is not None:
        bar.close()
    model.eval()
    summary = {"steps": step, "train_loss": loss_value, "seconds": time.perf_counter() - t0,
               "phrases": len(labelled), "labels": {f"Q{q + 1}": int(c) for q, c in enumerate(counts)}}
    return model, summary


def save_classifier(stem: Path, model: EmotionClassifier, meta: dict) -> None:
    from safetensors.torch import save_model

    stem.parent.mkdir(parents=True, exist_ok=True)
    tmp = stem.with_name(stem.name + ".tmp.safetensors")
    save_model(model, str(tmp))
    os.replace(tmp, stem.with_suffix(".safetensors"))
    full = {"format": FORMAT, "config": model.cfg.to_dict(), **meta}
    stem.with_suffix(".json").write_text(json.dumps(full, indent=1, sort_keys=True), encoding="utf-8")


def load_classifier(stem: Path, vocab: Vocabulary) -> tuple[EmotionClassifier, dict] | None:
    """The cached classifier at ``stem`` (.safetensors + .json), or None when absent or unreadable."""
    from safetensors.torch import load_model

    weights, meta_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    if not weights.exists() or not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            return None
        model = EmotionClassifier(vocab, ClassifierConfig.from_dict(meta["config"]))
        load_model(model, str(weights))
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        log.warning("%s: cached learned judge unreadable (%s); training afresh", weights, err)
        return None
    model.eval()
    return model, meta


def trained_classifier(phrases: Sequence[Phrase], vocab: Vocabulary, cfg: ClassifierConfig, cache_dir: Path,
                       extra: dict, *, progress: bool = False) -> tuple[EmotionClassifier, dict]:
    """The classifier for these phrases: from the cache when there, else trained and cached."""
    digest = data_digest(phrases, cfg, vocab, extra)
    stem = Path(cache_dir) / f"learned-judge-{digest}"
    cached = load_classifier(stem, vocab)
    if cached is not None:
        model, meta = cached
        return model, {**meta.get("training", {}), "cached": True, "path": str(stem) + ".safetensors"}
    model, summary = train_classifier(phrases, vocab, cfg, progress=progress)
    save_classifier(stem, model, {"training": summary, "data": extra, "digest": digest})
    return model, {**summary, "cached": False, "path": str(stem) + ".safetensors"}


@torch.no_grad()
def predict(model: EmotionClassifier, phrases: Sequence[Phrase], batch: int = 128) -> np.ndarray:
    """(N, 4) quadrant probabilities of the phrases."""
    model.eval()
    out = np.zeros((len(phrases), 4), dtype=np.float32)
    order = np.argsort([len(p.tokens) for p in phrases], kind="stable")
    for start in range(0, len(order), batch):
        idx = order[start : start + batch]
        probs = torch.softmax(model(_batch(phrases, idx, model.cfg.max_tokens)), dim=-1)
        out[idx] = probs.numpy()
    return out
