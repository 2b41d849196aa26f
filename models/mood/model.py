"""The mood recogniser's network: a phrase's roll and summary -> quadrant logits, valence and arousal.

Three branches meet before the head:

- key templates slid around the phrase's pitch-class histogram (summed from
  the roll, so duration-weighted), the best of the 12 rotations kept: mode
  whatever the key, with templates learned from the labels;
- dilated 1-D convolutions over the roll's steps (rhythm, onsets, dynamics,
  register, where the beats fall), pooled over the phrase's steps (mean and max);
- the phrase summary (density, loudness, spread of dynamics, texture) through
  one layer.

The head gives four quadrant logits and, through tanh, valence and arousal.
Small on purpose (about 20k weights): it runs per phrase at bar lines.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from affetto.errors import ConfigError
from affetto.models.families import ModelFamily
from affetto.words.mood import PITCH_CLASSES, ROLL_CHANNELS, SUMMARY_SIZE


@dataclass(frozen=True)
class MoodConfig:
    width: int = 32  # channels of the convolutions and the head
    key_filters: int = 24  # learned key templates
    layers: int = 3  # dilated convolutions (dilation 1, 2, 4)
    kernel: int = 3
    summary_width: int = 16
    version: int = 1  # bump when the architecture changes

    def __post_init__(self) -> None:
        for name in ("width", "key_filters", "layers", "kernel", "summary_width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an int >= 1, got {value!r}")
        if self.kernel % 2 == 0:
            raise ConfigError(f"kernel must be odd, got {self.kernel}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> MoodConfig:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class MoodNet(nn.Module):
    """roll (B, C, T), mask (B, T), summary (B, S) -> logits (B, 4), va (B, 2)."""

    def __init__(self, cfg: MoodConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.width
        self.keys = nn.Conv1d(1, cfg.key_filters, PITCH_CLASSES)
        self.inp = nn.Conv1d(ROLL_CHANNELS, d, 1)
        self.convs = nn.ModuleList(
            nn.Conv1d(d, d, cfg.kernel, dilation=2**i, padding=(cfg.kernel - 1) * 2**i // 2)
            for i in range(cfg.layers)
        )
        self.summary = nn.Sequential(nn.Linear(SUMMARY_SIZE, cfg.summary_width), nn.GELU())
        self.head = nn.Sequential(nn.Linear(2 * d + cfg.key_filters + cfg.summary_width, d), nn.GELU(),
                                  nn.Linear(d, 6))

    def key_features(self, roll: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, key_filters): each template's best match over the 12 rotations of the histogram."""
        hist = (roll[:, :PITCH_CLASSES] * mask.unsqueeze(1)).sum(dim=2)  # (B, 12)
        hist = PITCH_CLASSES * hist / hist.sum(dim=1, keepdim=True).clamp(min=1.0)  # mean 1 per pitch class
        ring = torch.cat([hist, hist[:, : PITCH_CLASSES - 1]], dim=1).unsqueeze(1)  # (B, 1, 23): circular
        return F.relu(self.keys(ring)).max(dim=-1).values  # (B, key_filters)

    def forward(self, roll: torch.Tensor, mask: torch.Tensor,
                summary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = mask.unsqueeze(1)  # (B, 1, T)
        x = self.inp(roll) * m  # (B, d, T)
        for conv in self.convs:
            x = (x + F.gelu(conv(x))) * m  # (B, d, T)
        count = m.sum(dim=2).clamp(min=1.0)  # (B, 1)
        mean = x.sum(dim=2) / count  # (B, d)
        top = (x - 1e4 * (1 - m)).max(dim=2).values  # (B, d)
        out = self.head(torch.cat([mean, top, self.key_features(roll, mask), self.summary(summary)], dim=-1))
        return out[:, :4], torch.tanh(out[:, 4:])  # (B, 4), (B, 2)


def _build(cfg: dict) -> MoodNet:
    return MoodNet(MoodConfig.from_dict(cfg))


# What a checkpoint of the mood family builds (affetto.models.checkpoint).
FAMILY = ModelFamily("mood", MoodNet, _build)
