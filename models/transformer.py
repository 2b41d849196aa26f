"""A decoder-only Transformer over affetto's tokens, conditioned on an emotion capsule.

The capsule (weights over Q1..Q4, or all zero for "unconditioned") mixes four
learned quadrant embeddings; the mix is added to every position together with
the token and position embeddings. Training drops the capsule to zero at a
rate so the runtime can apply classifier-free guidance.

The key/value cache is explicit: ``forward`` takes per-layer past keys and
values and returns the present ones, so the ONNX export has one input and one
output per layer and tensor (``past_key_values.{i}.key`` -> ``present.{i}.key``).

Size: the daemon must produce a dense 4/4 bar (~70 tokens) at 120 BPM in
<= 100 ms with guidance (batch 2) on one CPU thread, i.e. ~1.4 ms per step.
Per-step cost is mostly reading the weights, so the default is ~3.3M
parameters (4 layers, width 256), whose fp32 weights (13 MB) stay in cache.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

KV = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 154
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 256
    d_ff: int = 1024
    max_len: int = 1024  # positions; the engine slides the context at bar lines before this
    dropout: float = 0.1
    n_cond: int = 4  # quadrants
    cond_layers: bool = False  # also add the capsule's own embedding before every block
    n_kv_head: int = 0  # key/value heads (grouped-query attention); 0: one per query head

    def __post_init__(self) -> None:
        if self.d_model % self.n_head:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})")
        if self.n_kv_head < 0 or self.n_head % self.kv_heads:
            raise ValueError(f"n_kv_head ({self.n_kv_head}) must divide n_head ({self.n_head}), or be 0")
        for name in ("vocab_size", "n_layer", "n_head", "d_model", "d_ff", "max_len", "n_cond"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def kv_heads(self) -> int:
        """Key/value heads: ``n_kv_head``, or ``n_head`` when that is 0. Query head h reads key/value head
        ``h // (n_head // kv_heads)``."""
        return self.n_kv_head or self.n_head

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class SelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_head, self.head_dim, self.kv_heads = cfg.n_head, cfg.head_dim, cfg.kv_heads
        self.qkv = nn.Linear(cfg.d_model, cfg.d_model + 2 * cfg.kv_heads * cfg.head_dim)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x: torch.Tensor, past: KV | None) -> tuple[torch.Tensor, KV]:
        B, T, C = x.shape
        kv = self.kv_heads * self.head_dim
        q, k, v = self.qkv(x).split([C, kv, kv], dim=2)  # (B, T, C), (B, T, kv), (B, T, kv)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)  # (B, nkv, T, hs)
        v = v.view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)  # (B, nkv, T, hs)
        grouped = self.kv_heads != self.n_head  # each key/value head serves n_head // kv_heads query heads
        if past is not None:
            k = torch.cat([past[0], k], dim=2)  # (B, nkv, P+T, hs)
            v = torch.cat([past[1], v], dim=2)  # (B, nkv, P+T, hs)
            P = k.shape[2] - T
            # Query i (absolute position P+i) sees keys 0..P+i.
            rows = torch.arange(T, device=x.device).unsqueeze(1) + P  # (T, 1)
            cols = torch.arange(k.shape[2], device=x.device).unsqueeze(0)  # (1, P+T)
            mask = cols <= rows  # (T, P+T)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=grouped)  # (B, nh, T, hs)
        else:
            # No dropout on the attention weights: with it, PyTorch's CPU attention falls back to the
            # unfused path, measured 5x slower for forward + backward at T=512 (the residual dropout stays).
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=grouped)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        return self.proj(y), (k, v)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(), nn.Linear(cfg.d_ff, cfg.d_model)
        )
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, past: KV | None) -> tuple[torch.Tensor, KV]:
        a, present = self.attn(self.ln1(x), past)
        x = x + self.drop(a)
        x = x + self.drop(self.mlp(self.ln2(x)))
        return x, present


class EmotionTransformer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.max_len, cfg.d_model)
        self.cond = nn.Linear(cfg.n_cond, cfg.d_model, bias=False)  # one embedding per quadrant
        # Per-block capsule embeddings (zero at first, so a model trained without them starts unchanged).
        self.cond_layers = nn.Parameter(torch.zeros(cfg.n_layer, cfg.n_cond, cfg.d_model)) if cfg.cond_layers else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.head.weight = self.tok.weight  # tied
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(
        self,
        tokens: torch.Tensor,  # (B, T) int64
        cond: torch.Tensor,  # (B, 4) float32 capsule; zeros = unconditioned
        past: list[KV] | None = None,  # per layer (B, nh, P, hs) keys and values
    ) -> tuple[torch.Tensor, list[KV]]:
        _B, T = tokens.shape
        offset = past[0][0].shape[2] if past is not None else 0
        positions = torch.arange(offset, offset + T, device=tokens.device)  # (T,)
        x = self.tok(tokens) + self.pos(positions) + self.cond(cond).unsqueeze(1)  # (B, T, C)
        x = self.drop(x)
        presents = []
        per_block = torch.einsum("bk,lkd->lbd", cond, self.cond_layers) if self.cond_layers is not None else None
        for i, block in enumerate(self.blocks):
            if per_block is not None:
                x = x + per_block[i].unsqueeze(1)
            x, present = block(x, past[i] if past is not None else None)
            presents.append(present)
        logits = self.head(self.ln_f(x))  # (B, T, V)
        return logits, presents

    def empty_past(self, batch: int, device: torch.device | str = "cpu") -> list[KV]:
        """A zero-length cache, so the first call can take the same path as later ones."""
        shape = (batch, self.cfg.kv_heads, 0, self.cfg.head_dim)
        return [(torch.zeros(shape, device=device), torch.zeros(shape, device=device)) for _ in self.blocks]


def grouped_kv_state(state: dict[str, torch.Tensor], cfg: ModelConfig, kv_heads: int) -> dict[str, torch.Tensor]:
    """``state`` (a model of ``cfg``) with ``kv_heads`` key/value heads, each the mean of the group of heads it
    replaces (grouped-query attention's uptraining start: Ainslie et al. 2023); the rest is unchanged."""
    if kv_heads < 1 or cfg.kv_heads % kv_heads:
        raise ValueError(f"{kv_heads} key/value heads cannot replace {cfg.kv_heads} in groups")
    C, hs, group = cfg.d_model, cfg.head_dim, cfg.kv_heads // kv_heads
    out = dict(state)
    for i in range(cfg.n_layer):
        for kind in ("weight", "bias"):
            name = f"blocks.{i}.attn.qkv.{kind}"
            w = state[name]  # (C + 2 * kv * hs, ...) rows: queries, keys, values
            q, k, v = w.split([C, cfg.kv_heads * hs, cfg.kv_heads * hs], dim=0)
            pooled = [t.reshape(kv_heads, group, hs, *t.shape[1:]).mean(1).reshape(kv_heads * hs, *t.shape[1:])
                      for t in (k, v)]
            out[name] = torch.cat([q, *pooled], dim=0)
    return out
