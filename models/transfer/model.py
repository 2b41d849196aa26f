"""The transfer family: a conditional VAE over 1-4 bar phrases and a performance decoder.

Shapes (``B`` phrases of ``bars`` bars of ``S`` steps, ``P`` = 88 pitches, ``Z`` per bar):

- encoder: roll ``[B, bars, S, 2, P]`` (onset, frame) + the source's condition -> ``mean, logvar
  [B, bars, S / k, Z]``: a latent per ``k = z_steps`` steps (an eighth note by default);
- decoder: ``z [B, bars, S / k, Z]`` + a condition -> logits ``[B, bars, S, 2, P]``, every step at once;
- performer: note features ``[B, N, 7]`` + capsule ``[B, 4]`` -> velocity ``[B, N]`` in (0, 1] (x 127).

A condition is ``cond [B, 6]`` (capsule weights, then major/minor weights; soft, so
that strength can mix two of them), ``density, poly [B, bars]`` (the vocabulary's
DENS and POLY bins of each bar) and ``meter [B]`` (the index of the vocabulary's
METER). Each step of the encoder and decoder sees its step in the bar, its bar,
the meter and its bar's attributes; attention runs over the whole phrase, so
the bars are written together (non-autoregressive: one pass per phrase).

Why a latent per eighth note rather than per bar: a first run with one
32-dimensional latent per bar left the decoder near the data's marginals
after 400 steps (reconstruction onset F1 0.002): on two CPU cores and in
half an hour, a local latent is what the decoder learns to read. Every bar
length of the vocabulary's meters is a whole number of eighths.

Both Transformers are written out here (pre-norm blocks, plain attention), so
the ONNX export is a plain graph of matmuls.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from affetto.models.families import ModelFamily
from affetto.transfer.model import MAX_BAR_STEPS, MAX_BARS, METERS, N_DENSITY, N_FEATURES, N_POLY, PITCHES


@dataclass(frozen=True)
class TransferConfig:
    pitches: int = PITCHES
    max_bars: int = MAX_BARS
    max_bar_steps: int = MAX_BAR_STEPS
    n_meters: int = len(METERS)
    n_density: int = N_DENSITY
    n_poly: int = N_POLY
    d_model: int = 128
    n_head: int = 4
    enc_layers: int = 2
    dec_layers: int = 3
    z_dim: int = 8  # per latent
    z_steps: int = 2  # grid steps per latent: an eighth note
    perf_d: int = 64
    perf_layers: int = 2
    dropout: float = 0.1

    def __post_init__(self) -> None:
        for name in ("pitches", "max_bars", "max_bar_steps", "n_meters", "d_model", "n_head", "enc_layers",
                     "dec_layers", "z_dim", "z_steps", "perf_d", "perf_layers"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an int >= 1, got {getattr(self, name)!r}")
        if self.d_model % self.n_head or self.perf_d % self.n_head:
            raise ValueError(f"d_model ({self.d_model}) and perf_d ({self.perf_d}) must divide by n_head")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TransferConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class Block(nn.Module):
    """Pre-norm self-attention and MLP, with an optional key mask."""

    def __init__(self, d: int, n_head: int, dropout: float) -> None:
        super().__init__()
        self.n_head = n_head
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        b, t, c = x.shape
        h = self.n_head
        q, k, v = self.qkv(self.norm1(x)).split(c, dim=2)  # each (B, T, C)
        q = q.reshape(b, t, h, c // h).transpose(1, 2)  # (B, h, T, hs)
        k = k.reshape(b, t, h, c // h).transpose(1, 2)  # (B, h, T, hs)
        v = v.reshape(b, t, h, c // h).transpose(1, 2)  # (B, h, T, hs)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(c // h))  # (B, h, T, T)
        if bias is not None:
            att = att + bias  # (B, 1, 1, T): 0 for keys to see, -1e9 for padding
        y = self.drop(att.softmax(-1)) @ v  # (B, h, T, hs)
        x = x + self.drop(self.proj(y.transpose(1, 2).reshape(b, t, c)))
        return x + self.drop(self.mlp(self.norm2(x)))


class Context(nn.Module):
    """What every step of a phrase knows besides its notes: step, bar, meter, condition, bar attributes."""

    def __init__(self, cfg: TransferConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.step = nn.Embedding(cfg.max_bar_steps, d)
        self.bar = nn.Embedding(cfg.max_bars, d)
        self.meter = nn.Embedding(cfg.n_meters, d)
        self.density = nn.Embedding(cfg.n_density, d)
        self.poly = nn.Embedding(cfg.n_poly, d)
        self.cond = nn.Linear(6, d)

    def forward(self, bars: int, steps: int, cond: torch.Tensor, density: torch.Tensor, poly: torch.Tensor,
                meter: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """(B, bars, S, d)."""
        step_ids = torch.arange(steps, device=like.device)
        bar_ids = torch.arange(bars, device=like.device)
        per_step = self.step(step_ids)[None, None]  # (1, 1, S, d)
        per_bar = (self.bar(bar_ids)[None] + self.density(density) + self.poly(poly))[:, :, None]  # (B, bars, 1, d)
        per_phrase = (self.meter(meter) + self.cond(cond))[:, None, None]  # (B, 1, 1, d)
        return per_step + per_bar + per_phrase


class PhraseEncoder(nn.Module):
    def __init__(self, cfg: TransferConfig) -> None:
        super().__init__()
        self.inp = nn.Linear(2 * cfg.pitches, cfg.d_model)
        self.context = Context(cfg)
        self.blocks = nn.ModuleList(Block(cfg.d_model, cfg.n_head, cfg.dropout) for _ in range(cfg.enc_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.stats = nn.Linear(cfg.d_model, 2 * cfg.z_dim)
        self.z_steps = cfg.z_steps

    def forward(self, roll: torch.Tensor, cond: torch.Tensor, density: torch.Tensor, poly: torch.Tensor,
                meter: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, bars, steps = roll.shape[0], roll.shape[1], roll.shape[2]
        x = self.inp(roll.flatten(3))  # (B, bars, S, d)
        x = x + self.context(bars, steps, cond, density, poly, meter, x)
        x = x.reshape(b, bars * steps, -1)  # (B, T, d)
        for block in self.blocks:
            x = block(x)
        k = self.z_steps
        pooled = self.norm(x).reshape(b, bars, steps // k, k, -1).mean(3)  # (B, bars, S/k, d)
        mean, logvar = self.stats(pooled).chunk(2, dim=-1)  # each (B, bars, S/k, Z)
        return mean, logvar.clamp(-10.0, 6.0)


class PhraseDecoder(nn.Module):
    def __init__(self, cfg: TransferConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.z = nn.Linear(cfg.z_dim, cfg.d_model)
        self.context = Context(cfg)
        self.blocks = nn.ModuleList(Block(cfg.d_model, cfg.n_head, cfg.dropout) for _ in range(cfg.dec_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, 2 * cfg.pitches)

    def forward(self, z: torch.Tensor, steps: int, cond: torch.Tensor, density: torch.Tensor, poly: torch.Tensor,
                meter: torch.Tensor) -> torch.Tensor:
        b, bars, segments = z.shape[0], z.shape[1], z.shape[2]
        zz = self.z(z)[:, :, :, None]  # (B, bars, S/k, 1, d)
        zz = zz.expand(b, bars, segments, self.cfg.z_steps, zz.shape[-1]).reshape(b, bars, steps, -1)  # (B, bars, S, d)
        x = zz + self.context(bars, steps, cond, density, poly, meter, zz)  # (B, bars, S, d)
        x = x.reshape(b, bars * steps, -1)  # (B, T, d)
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.norm(x))  # (B, T, 2P)
        return logits.reshape(b, bars, steps, 2, self.cfg.pitches)


class Performer(nn.Module):
    """ToneNet's performance decoder, small: a velocity per note from the notes and the emotion."""

    SIZES = (PITCHES, MAX_BAR_STEPS, MAX_BARS, 8, 8, 8, len(METERS))  # one embedding per feature column

    def __init__(self, cfg: TransferConfig) -> None:
        super().__init__()
        d = cfg.perf_d
        if len(self.SIZES) != N_FEATURES:
            raise ValueError("one embedding per note feature")
        self.features = nn.ModuleList(nn.Embedding(n, d) for n in self.SIZES)
        self.cond = nn.Linear(4, d)
        self.blocks = nn.ModuleList(Block(d, cfg.n_head, cfg.dropout) for _ in range(cfg.perf_layers))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 1)

    def forward(self, notes: torch.Tensor, mask: torch.Tensor, capsule: torch.Tensor) -> torch.Tensor:
        x = self.cond(capsule)[:, None]  # (B, 1, d)
        for i, emb in enumerate(self.features):
            x = x + emb(notes[:, :, i])  # (B, N, d)
        bias = ((1.0 - mask) * -1e9)[:, None, None]  # (B, 1, 1, N)
        for block in self.blocks:
            x = block(x, bias)
        return torch.sigmoid(self.head(self.norm(x))[..., 0])  # (B, N)


class TransferModel(nn.Module):
    """Encoder, decoder and performer of the transfer family (one checkpoint, one ONNX graph)."""

    def __init__(self, cfg: TransferConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = PhraseEncoder(cfg)
        self.decoder = PhraseDecoder(cfg)
        self.performer = Performer(cfg)

    def forward(self, roll: torch.Tensor, src_cond: torch.Tensor, tgt_cond: torch.Tensor, src_density: torch.Tensor,
                src_poly: torch.Tensor, tgt_density: torch.Tensor, tgt_poly: torch.Tensor, meter: torch.Tensor,
                eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits [B, bars, S, 2, P], mean, logvar) with ``z = mean + exp(logvar / 2) * eps``, [B, bars, S/k, Z]."""
        mean, logvar = self.encoder(roll, src_cond, src_density, src_poly, meter)
        z = mean + torch.exp(0.5 * logvar) * eps
        logits = self.decoder(z, roll.shape[2], tgt_cond, tgt_density, tgt_poly, meter)
        return logits, mean, logvar


# ---- losses -------------------------------------------------------------------------------
def kl_per_dim(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) per element (nats)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)


def kl_free_bits(mean: torch.Tensor, logvar: torch.Tensor, free_bits: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(KL per phrase with free bits, plain KL per phrase) of ``(B, ..., Z)`` posteriors.

    Free bits (Kingma et al. 2016): each latent dimension's KL, averaged over
    the batch and the latents of a phrase, counts as at least ``free_bits``
    nats per latent, so the optimiser gains nothing by pushing a dimension
    below it and the code stays in use.
    """
    kl = kl_per_dim(mean, logvar)  # (B, ..., Z)
    batch, z = kl.shape[0], kl.shape[-1]
    latents = kl[0].numel() // z  # latents per phrase
    per_dim = kl.reshape(batch, -1, z).mean((0, 1))  # (Z,)
    return torch.clamp(per_dim, min=free_bits).sum() * latents, kl.sum() / batch


def recon_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of onset and frame cells, summed per phrase, averaged over the batch."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / logits.shape[0]


def active_units(means: torch.Tensor, threshold: float = 0.01) -> int:
    """Latent dimensions whose posterior mean varies over phrases (Burda et al.'s activity), of (N, bars, Z)."""
    return int((means.reshape(-1, means.shape[-1]).var(0) > threshold).sum())


def _build(cfg: dict) -> TransferModel:
    return TransferModel(TransferConfig.from_dict(cfg))


FAMILY = ModelFamily("transfer", TransferModel, _build)
