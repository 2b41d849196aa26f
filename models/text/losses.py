"""The four parts of the music-text loss, and the caption-from-music term.

- text reconstruction: the decoder rewrites a caption from its own text point
  (cross-entropy per word, padding ignored);
- music reconstruction: the music point predicts its window's note statistics
  (cross-entropy against each distribution of :func:`~affetto.models.text.model.music_stats`);
- alignment: an MLP carries the music point into the text space, L2 to the
  caption's text point (held fixed there: the text space is shaped by its own
  reconstruction and by GTP, not pulled towards the music, which in a first
  try collapsed both spaces to a point and left the decoder a plain language
  model);
- group topology preservation (GTP): within a batch, each item's softmax over
  its cosine similarities to the others (itself left out) is a distribution in
  each space; the symmetric KL between the music space's and the text space's
  distributions, averaged over the batch, keeps phrases that are close in
  music close in words;
- captioning: the decoder writes the caption from the aligned music point
  (what ``describe`` does at run time).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from affetto.models.text.model import MusicTextModel, by_field, music_stats
from affetto.words.textmodel import BOS, PAD, UNK


@dataclass(frozen=True)
class LossConfig:
    text: float = 1.0
    music: float = 1.0
    align: float = 1.0
    gtp: float = 1.0  # 0: trained without GTP
    caption: float = 1.0
    attributes: float = 0.0  # the measured fields read back from the caption's point and the phrase's aligned point
    tau: float = 0.1  # temperature of the similarity distributions of GTP
    word_dropout: float = 0.25  # share of the decoder's input words hidden (<unk>), so it must read its latent

    def to_dict(self) -> dict:
        return asdict(self)


def similarity_distribution(z: torch.Tensor, tau: float) -> torch.Tensor:
    """(B, B) rows: softmax over cosine similarities / tau to the other items; the diagonal is 0."""
    z = F.normalize(z, dim=-1)
    sims = z @ z.T / tau
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    return torch.softmax(sims.masked_fill(eye, float("-inf")), dim=-1)


def gtp_loss(z_a: torch.Tensor, z_b: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """Symmetric KL between the within-batch similarity distributions of two spaces (mean over rows)."""
    if len(z_a) < 3:
        raise ValueError("GTP needs a batch of at least 3 (2 others per row)")
    p = similarity_distribution(z_a, tau)
    q = similarity_distribution(z_b, tau)
    off = ~torch.eye(len(z_a), dtype=torch.bool, device=z_a.device)
    logp = torch.log(p.clamp(min=1e-12))
    logq = torch.log(q.clamp(min=1e-12))
    kl_pq = ((p * (logp - logq)) * off).sum(-1)
    kl_qp = ((q * (logq - logp)) * off).sum(-1)
    return 0.5 * (kl_pq + kl_qp).mean()


def alignment_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared L2 distance per item (summed over dimensions), mean over the batch."""
    return ((predicted - target) ** 2).sum(-1).mean()


def caption_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each next word: logits (B, T, V) at position i predict tokens[:, i + 1]."""
    target = tokens[:, 1:]
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=PAD)


def stats_loss(logits: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy of each predicted distribution against the window's own, summed over statistics."""
    return sum((-(target[k] * F.log_softmax(logits[k], dim=-1)).sum(-1).mean() for k in target),
               torch.zeros(()))


def drop_words(tokens: torch.Tensor, rate: float) -> torch.Tensor:
    """The decoder's input with a share of its words (never <bos> or padding) replaced by <unk>."""
    if rate <= 0:
        return tokens
    hide = (torch.rand(tokens.shape) < rate) & (tokens != PAD) & (tokens != BOS)
    return tokens.masked_fill(hide, UNK)


def attribute_loss(logits: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy of each measured field, summed over fields (a label of -1 is not counted)."""
    return sum((F.cross_entropy(logits[k], labels[k], ignore_index=-1) for k in labels), torch.zeros(()))


def total_loss(model: MusicTextModel, notes: torch.Tensor, globals_: torch.Tensor, tokens: torch.Tensor,
               cfg: LossConfig, labels: dict[str, torch.Tensor] | None = None
               ) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted sum and each part (as floats) on one batch; ``labels`` (field -> (B,) value indices)
    for the attribute heads when ``cfg.attributes`` > 0."""
    z_music, heard = model.music.encode(notes, globals_)
    z_text, named = model.text.encode(tokens)
    aligned = model.align(z_music)
    dropped = drop_words(tokens, cfg.word_dropout if model.training else 0.0)
    parts = {
        "text": caption_loss(model.decoder(model.caption_point(z_text, named), dropped), tokens),
        "music": stats_loss(model.stat_logits(z_music), music_stats(notes)),
        "align": alignment_loss(aligned, z_text.detach()),
        "caption": caption_loss(model.decoder(model.caption_point(aligned, heard), dropped), tokens),
    }
    if cfg.gtp > 0:
        parts["gtp"] = gtp_loss(z_music, z_text, cfg.tau)
    if cfg.attributes > 0:
        if labels is None or heard is None or named is None:
            raise ValueError("the attribute loss needs the fields' labels and a model with attribute heads")
        parts["attributes"] = 0.5 * (attribute_loss(by_field(named), labels) + attribute_loss(by_field(heard), labels))
    total = sum((getattr(cfg, name) * value for name, value in parts.items()), torch.zeros(()))
    return total, {name: float(value.detach()) for name, value in parts.items()}
