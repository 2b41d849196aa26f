"""The music-text model: a music encoder, a text encoder, a text decoder, an alignment MLP.

Two spaces of ``latent`` dimensions, each the unit sphere: the music space (``MusicEncoder`` of a
4-bar window) and the text space (``TextEncoder`` of a caption). The text
decoder writes a caption from a point of the text space; the alignment MLP
carries a music point into the text space, so a phrase is described by
decoding ``align(music(x))``. A small head reconstructs the window's note
statistics from its music point (the music side's reconstruction).

All three towers are the same small pre-norm Transformer block stack, with
attention written out (matmul, mask, softmax) so the ONNX graphs are plain.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from affetto.analysis.judge import PITCH_NAMES
from affetto.models.families import ModelFamily
from affetto.words.textmodel import MAX_DURATION, MAX_NOTES, METERS, N_TEMPI, PHRASE_BARS, POSITIONS

# The music statistics the music side reconstructs: name -> bins.
STATS = {"pitch_class": 12, "octave": 8, "duration": 8, "interval": 25, "beat_position": 4}
# The measured fields a point of the text space names (the attribute heads): field -> its values, in order.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "tonic": tuple(PITCH_NAMES), "mode": ("major", "minor"), "meter": METERS,
    "tempo": ("slow", "moderate", "fast"), "density": ("sparse", "flowing", "busy"),
    "register": ("low", "middle", "high"), "texture": ("single line", "two voices", "several voices"),
    "contour": ("rising", "falling", "arching", "level"), "mood": ("Q1", "Q2", "Q3", "Q4"),
}
N_VALUES = sum(len(v) for v in ATTRIBUTES.values())
DURATION_EDGES = (1, 2, 3, 4, 6, 8, 12)  # steps: bins 0..7


@dataclass(frozen=True)
class TextModelConfig:
    vocab_size: int
    d_model: int = 64
    n_head: int = 4
    n_layer: int = 2
    d_ff: int = 128
    latent: int = 48
    max_text: int = 48
    max_notes: int = MAX_NOTES
    dropout: float = 0.1
    bag: bool = False  # also pool the input embeddings (a bag of notes, of words) into a hidden layer
    profile: bool = False  # the music encoder's global token also reads the window's duration-weighted pitch classes
    summed: bool = False  # each encoder's latent and heads also read the sum of its input embeddings
    attributes: bool = False  # heads that read the measured fields back from points of the text space

    def __post_init__(self) -> None:
        if self.d_model % self.n_head:
            raise ValueError(f"d_model {self.d_model} must be a multiple of n_head {self.n_head}")
        if self.vocab_size < 5:
            raise ValueError(f"vocab_size must be at least 5, got {self.vocab_size}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TextModelConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class Block(nn.Module):
    """Pre-norm self-attention and MLP; ``mask`` (B, 1, T or 1, T) is True where attention may look."""

    def __init__(self, cfg: TextModelConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(), nn.Linear(cfg.d_ff, cfg.d_model))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q = q.view(b, t, self.n_head, d // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(b, t, self.n_head, d // self.n_head).transpose(1, 2)
        v = v.view(b, t, self.n_head, d // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.n_head)  # (B, nh, T, T)
        att = att.masked_fill(~mask.unsqueeze(1), -1e9)
        att = self.drop(torch.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).reshape(b, t, d)  # (B, T, d)
        x = x + self.drop(self.proj(y))
        return x + self.drop(self.mlp(self.ln2(x)))


def masked_mean(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean over T of (B, T, d) where ``keep`` (B, T) is True."""
    w = keep.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(1) / w.sum(1).clamp(min=1.0)


def attribute_head(cfg: TextModelConfig) -> nn.Module | None:
    """Pooled features -> every measured field's logits side by side (None without ``attributes``). It reads
    the encoder's features, not its latent: a field one word or one profile carries is learnt at once there,
    where through the shared unit-sphere latent the key's twelve tonics were not learnt at all."""
    if not cfg.attributes:
        return None
    width = 2 * cfg.d_model if cfg.bag or cfg.summed else cfg.d_model
    return nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, N_VALUES))


def head(cfg: TextModelConfig) -> nn.Module:
    """Pooled features -> a latent: one linear map, or with ``bag`` or ``summed`` (two d-wide features side
    by side, 2d) one hidden layer."""
    d = cfg.d_model
    if not (cfg.bag or cfg.summed):
        return nn.Linear(d, cfg.latent)
    return nn.Sequential(nn.Linear(2 * d, 2 * d), nn.GELU(), nn.Linear(2 * d, cfg.latent))


def pooled(cfg: TextModelConfig, stack: torch.Tensor, inputs: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The mean of the stack's output (B, T, d), and beside it with ``summed`` the sum of its input
    embeddings (a mean drowns the one word that names the key among thirty; a sum keeps it as large as
    the word is), or with ``bag`` their mean."""
    mean = masked_mean(stack, keep)
    if cfg.summed:
        return torch.cat([mean, (inputs * keep.to(inputs.dtype).unsqueeze(-1)).sum(1)], dim=-1)
    return torch.cat([mean, masked_mean(inputs, keep)], dim=-1) if cfg.bag else mean


class MusicEncoder(nn.Module):
    """notes (B, L, 4) [pitch+1, position, bar, duration], globals (B, 2) [meter, tempo] -> (B, latent)."""

    def __init__(self, cfg: TextModelConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.pitch = nn.Embedding(129, d)
        self.pitch_class = nn.Embedding(13, d)
        self.position = nn.Embedding(POSITIONS, d)
        self.bar = nn.Embedding(PHRASE_BARS * 2, d)
        self.duration = nn.Embedding(MAX_DURATION + 1, d)
        self.meter = nn.Embedding(len(METERS), d)
        self.tempo = nn.Embedding(N_TEMPI, d)
        self.profile = nn.Linear(12, d) if cfg.profile else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln = nn.LayerNorm(d)
        self.cfg = cfg
        self.out = head(cfg)
        self.attributes = attribute_head(cfg)

    def forward(self, notes: torch.Tensor, globals_: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.out(self.features(notes, globals_)), dim=-1)

    def encode(self, notes: torch.Tensor, globals_: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(the music point, the measured fields' logits side by side or None without attribute heads)."""
        f = self.features(notes, globals_)
        return F.normalize(self.out(f), dim=-1), None if self.attributes is None else self.attributes(f)

    def features(self, notes: torch.Tensor, globals_: torch.Tensor) -> torch.Tensor:
        """The pooled features of a window (what the latent and the attribute heads read)."""
        pitch = notes[..., 0]
        keep = pitch > 0  # (B, L)
        pc = torch.where(keep, (pitch - 1) % 12 + 1, torch.zeros_like(pitch))
        x = (self.pitch(pitch) + self.pitch_class(pc) + self.position(notes[..., 1]) + self.bar(notes[..., 2])
             + self.duration(notes[..., 3]))  # (B, L, d)
        g = self.meter(globals_[:, 0]) + self.tempo(globals_[:, 1])  # (B, d)
        if self.profile is not None:
            g = g + self.profile(pitch_profile(notes))
        g = g.unsqueeze(1)  # (B, 1, d)
        x = torch.cat([g, x], dim=1)
        keep = torch.cat([torch.ones_like(keep[:, :1]), keep], dim=1)  # (B, 1 + L)
        mask = keep.unsqueeze(1)  # (B, 1, 1 + L): every position sees the notes and the global token
        inputs = x
        for block in self.blocks:
            x = block(x, mask)
        return pooled(self.cfg, self.ln(x), inputs, keep)


class TextEncoder(nn.Module):
    """tokens (B, T) -> (B, latent); bidirectional over the caption."""

    def __init__(self, cfg: TextModelConfig) -> None:
        super().__init__()
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.max_text, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln = nn.LayerNorm(cfg.d_model)
        self.cfg = cfg
        self.out = head(cfg)
        self.attributes = attribute_head(cfg)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.out(self.features(tokens)), dim=-1)

    def encode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(the caption's point, the fields' logits its words name, side by side, or None without heads)."""
        f = self.features(tokens)
        return F.normalize(self.out(f), dim=-1), None if self.attributes is None else self.attributes(f)

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        keep = tokens > 0  # (B, T)
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        words = self.tok(tokens)
        x = words + self.pos(positions)[None]
        for block in self.blocks:
            x = block(x, keep.unsqueeze(1))
        return pooled(self.cfg, self.ln(x), words, keep)


class TextDecoder(nn.Module):
    """(point (B, P), tokens (B, T)) -> logits (B, T, V) of each next word; the point is a prefix token.

    The point is a latent of the text space (P = latent) or, with ``attributes``, a latent and the
    measured fields' distributions beside it (P = latent + :data:`N_VALUES`; see
    :meth:`MusicTextModel.caption_point`), so a caption names the values the encoder heard.
    """

    def __init__(self, cfg: TextModelConfig) -> None:
        super().__init__()
        self.latent = cfg.latent
        self.inp = nn.Linear(cfg.latent, cfg.d_model)
        self.values = nn.Linear(N_VALUES, cfg.d_model, bias=False) if cfg.attributes else None
        # and straight onto the words' odds: a value's words are the likelier wherever the sentence names it
        self.lexical = nn.Linear(N_VALUES, cfg.vocab_size, bias=False) if cfg.attributes else None
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.max_text + 1, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.head.weight = self.tok.weight  # tied

    def forward(self, latent: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1] + 1
        positions = torch.arange(t, device=tokens.device)
        z = self.inp(latent[:, : self.latent])
        if self.values is not None:
            z = z + self.values(latent[:, self.latent :])
        z = z.unsqueeze(1)  # (B, 1, d): the prefix, and added to every word so no word forgets it
        x = torch.cat([z, self.tok(tokens) + z], dim=1) + self.pos(positions)[None]
        causal = torch.ones(t, t, dtype=torch.bool, device=tokens.device).tril()[None]  # (1, T+1, T+1)
        for block in self.blocks:
            x = block(x, causal)
        logits = self.head(self.ln(x[:, 1:]))  # (B, T, V): position i predicts token i + 1
        if self.lexical is not None:
            logits = logits + self.lexical(latent[:, self.latent :]).unsqueeze(1)
        return logits


class MusicTextModel(nn.Module):
    def __init__(self, cfg: TextModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.music = MusicEncoder(cfg)
        self.text = TextEncoder(cfg)
        self.decoder = TextDecoder(cfg)
        self.aligner = nn.Sequential(nn.Linear(cfg.latent, 2 * cfg.latent), nn.GELU(),
                                     nn.Linear(2 * cfg.latent, cfg.latent))
        self.stats = nn.Sequential(nn.Linear(cfg.latent, 2 * cfg.latent), nn.GELU(),
                                   nn.Linear(2 * cfg.latent, sum(STATS.values())))
        self.apply(_init)
        if self.decoder.lexical is not None:
            nn.init.zeros_(self.decoder.lexical.weight)  # no lean before training finds one

    def align(self, z_music: torch.Tensor) -> torch.Tensor:
        """The alignment MLP: a music point carried into the text space (both spaces are unit spheres)."""
        return F.normalize(self.aligner(z_music), dim=-1)

    def stat_logits(self, z_music: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(zip(STATS, self.stats(z_music).split(list(STATS.values()), dim=-1)))

    def caption_point(self, latent: torch.Tensor, attribute_logits: torch.Tensor | None) -> torch.Tensor:
        """What the decoder reads: a point of the text space, and with attribute heads each field's
        distribution beside it."""
        if self.cfg.attributes:
            if attribute_logits is None:
                raise ValueError("this model's decoder reads the fields' distributions beside the latent")
            return torch.cat([latent, attribute_distributions(attribute_logits)], dim=-1)
        return latent

    def describe_point(self, notes: torch.Tensor, globals_: torch.Tensor) -> torch.Tensor:
        """A window's caption point: its aligned music point (and the fields its music heads hear)."""
        z, fields = self.music.encode(notes, globals_)
        return self.caption_point(self.align(z), fields)

    @torch.no_grad()
    def greedy(self, latent: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
        """Greedy captions (B, T) of latents, <bos> first; decoding stops when every row has ended."""
        from affetto.words.textmodel import BOS, EOS, PAD

        max_len = max_len or self.cfg.max_text
        seq = torch.full((latent.shape[0], 1), BOS, dtype=torch.long)
        done = torch.zeros(latent.shape[0], dtype=torch.bool)
        for _ in range(max_len - 1):
            logits = self.decoder(latent, seq)[:, -1]
            logits[:, [PAD, BOS, 3]] = -1e9
            nxt = torch.where(done, torch.full_like(done, PAD, dtype=torch.long), logits.argmax(-1))
            seq = torch.cat([seq, nxt[:, None]], dim=1)
            done |= nxt == EOS
            if bool(done.all()):
                break
        return seq


def _init(module: nn.Module) -> None:
    """Small normal weights (the tied word embeddings are also the decoder's output layer)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def by_field(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """(B, N_VALUES) logits side by side -> field -> (B, values) logits."""
    return dict(zip(ATTRIBUTES, logits.split([len(v) for v in ATTRIBUTES.values()], dim=-1)))


def attribute_distributions(logits: torch.Tensor) -> torch.Tensor:
    """(B, sum of values) logits of every field side by side -> each field's softmax, side by side."""
    return torch.cat([torch.softmax(part, dim=-1) for part in by_field(logits).values()], dim=-1)


def pitch_profile(notes: torch.Tensor) -> torch.Tensor:
    """(B, 12): a window's pitch classes weighted by duration (at most 8 steps each), summing to 1."""
    pitch = notes[..., 0] - 1
    weight = ((notes[..., 0] > 0).float() * notes[..., 3].float().clamp(max=8))[..., None]
    hist = (F.one_hot(pitch.clamp(min=0) % 12, 12).float() * weight).sum(1)
    return hist / hist.sum(-1, keepdim=True).clamp(min=1e-6)


def music_stats(notes: torch.Tensor) -> dict[str, torch.Tensor]:
    """Distributions of a window's notes (B, L, 4): pitch classes and octaves weighted by duration, durations,
    intervals between successive notes (in input order), positions within the beat."""
    pitch = notes[..., 0] - 1
    keep = (notes[..., 0] > 0).float()
    dur = notes[..., 3].float()
    out = {}
    weight = (keep * dur.clamp(max=8))[..., None]
    out["pitch_class"] = pitch_profile(notes)
    octave = (pitch.clamp(min=0) // 12 - 2).clamp(0, 7)
    out["octave"] = (F.one_hot(octave, 8).float() * weight).sum(1)
    edges = torch.tensor(DURATION_EDGES)
    bins = torch.bucketize(notes[..., 3].contiguous(), edges, right=False)
    out["duration"] = (F.one_hot(bins, 8).float() * keep[..., None]).sum(1)
    step = (pitch[:, 1:] - pitch[:, :-1]).clamp(-12, 12) + 12
    both = keep[:, 1:] * keep[:, :-1]
    out["interval"] = (F.one_hot(step, 25).float() * both[..., None]).sum(1)
    out["beat_position"] = (F.one_hot(notes[..., 1] % 4, 4).float() * keep[..., None]).sum(1)
    return {k: v / v.sum(-1, keepdim=True).clamp(min=1e-6) for k, v in out.items()}


def _build(cfg: dict) -> MusicTextModel:
    return MusicTextModel(TextModelConfig.from_dict(cfg))


FAMILY = ModelFamily("text", MusicTextModel, _build, tied=("decoder.head.weight",))
