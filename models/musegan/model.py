"""MuseGAN for four chorale voices: generator, melody encoder and WGAN-GP critic.

The generator follows the hybrid model of Dong et al. (2018), "MuseGAN":
four kinds of latent input,

- *chords*  ``z_chords [B, Z]``: shared by all tracks, made per bar by a temporal network;
- *style*   ``z_style [B, Z]``: shared by all tracks, fixed over the phrase;
- *melody*  ``z_melody [B, T, Z]``: per track, made per bar by that track's temporal network;
- *groove*  ``z_groove [B, T, Z]``: per track, fixed over the phrase;

and a bar generator of transposed convolutions (one trunk shared by the
tracks, a head per track) that turns each (track, bar) input into a
16-step x 64-pitch roll of probabilities.

Conditioning: the emotion capsule (4 quadrant weights, all zero =
unconditioned) and a 3/4 flag, embedded and fed to every bar; and
*track-conditional* generation: a given soprano line, encoded per bar by a
conv encoder (a vector per bar and a full-resolution feature map that the
heads see beside the trunk's), whose track the generator then keeps as given.
``has_melody = 0`` with a zero roll is free generation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from affetto.models.families import ModelFamily
from affetto.models.musegan.data import BAR_STEPS, LOW, PITCHES, TRACKS


@dataclass(frozen=True)
class GanConfig:
    tracks: int = len(TRACKS)  # soprano, alto, tenor, bass
    bars: int = 4  # bars per phrase
    steps: int = BAR_STEPS  # sixteenth steps per bar
    pitches: int = PITCHES
    z_dim: int = 32  # size of each latent (chords, style, melody, groove)
    cond_dim: int = 32  # embedding of capsule + meter + has-melody
    enc_dim: int = 64  # melody encoder: vector per bar
    enc_maps: int = 4  # melody encoder: full-resolution feature maps (beside the roll itself)
    trunk: int = 128  # widest channel count of the bar generator
    head_maps: int = 4  # channels per pitch the trunk hands to each track's head
    critic: int = 16  # critic width

    def __post_init__(self) -> None:
        if self.steps != 16 or self.pitches % 64:
            raise ValueError(f"the bar generator makes 16 steps x 64k pitches, got {self.steps} x {self.pitches}")
        if self.bars != 4:
            raise ValueError(f"the temporal networks make 4 bars, got {self.bars}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GanConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class TemporalNet(nn.Module):
    """A phrase-level latent [B, Z] -> one latent per bar [B, 4, Z] (transposed convs in time)."""

    def __init__(self, z: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ConvTranspose1d(z, 2 * z, 2, stride=2), nn.GroupNorm(4, 2 * z), nn.LeakyReLU(0.2),
            nn.ConvTranspose1d(2 * z, z, 2, stride=2), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.unsqueeze(-1)).transpose(1, 2)  # (B, Z, 1) -> (B, Z, 4) -> (B, 4, Z)


class MelodyEncoder(nn.Module):
    """A roll [B, bars, 16, P] -> per-bar vectors [B, bars, E] and feature maps [B, bars, 16, (M+1)*P]."""

    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        m = cfg.enc_maps
        self.maps = nn.Sequential(nn.Conv2d(1, m, (3, 13), padding=(1, 6)), nn.LeakyReLU(0.2))  # (M, 16, P)
        self.down = nn.Sequential(
            nn.Conv2d(m, 16, (4, 4), stride=(4, 4)), nn.LeakyReLU(0.2),  # (16, 4, P/4)
            nn.Conv2d(16, 32, (4, 4), stride=(4, 4)), nn.LeakyReLU(0.2),  # (32, 1, P/16)
        )
        self.vec = nn.Linear(32 * (cfg.pitches // 16), cfg.enc_dim)

    def forward(self, roll: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, bars, steps, pitches = roll.shape
        x = roll.reshape(b * bars, 1, steps, pitches)  # (B*bars, 1, 16, P)
        maps = self.maps(x)  # (B*bars, M, 16, P)
        vec = self.vec(self.down(maps).flatten(1))  # (B*bars, E)
        full = torch.cat([x, maps], 1).permute(0, 2, 1, 3)  # (B*bars, 16, M+1, P): the roll itself and its maps
        return vec.reshape(b, bars, -1), full.reshape(b, bars, steps, -1)


class Generator(nn.Module):
    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        self.cfg = cfg
        z, t, p = cfg.z_dim, cfg.tracks, cfg.pitches
        self.chords_time = TemporalNet(z)
        self.melody_time = nn.ModuleList(TemporalNet(z) for _ in range(t))
        self.cond = nn.Linear(4 + 2, cfg.cond_dim)  # capsule, triple, has_melody
        self.track_emb = nn.Parameter(torch.randn(t, 8) * 0.1)
        self.encoder = MelodyEncoder(cfg)
        width = 4 * z + cfg.cond_dim + cfg.enc_dim + 8
        c = cfg.trunk
        self.fc = nn.Linear(width, c * 4)
        self.fc_norm = nn.GroupNorm(8, c)
        self.time_up = nn.Sequential(
            nn.ConvTranspose2d(c, c // 2, (2, 1), stride=(2, 1)), nn.GroupNorm(8, c // 2), nn.ReLU(),  # (c/2, 8, 1)
            nn.ConvTranspose2d(c // 2, c // 4, (2, 1), stride=(2, 1)), nn.GroupNorm(8, c // 4), nn.ReLU(),  # 16, 1
        )
        # Transposed convolutions along pitch whose kernel equals their stride (1x8, then 1x(P/8)):
        # written as Linear layers over the channels, which is the same map and far faster on a CPU.
        self.pitch_up1 = nn.Linear(c // 4, 8 * (c // 8))  # 1 pitch -> 8 blocks of c/8 channels
        self.pitch_up2 = nn.Linear(c // 8, (p // 8) * cfg.head_maps)  # 1 block -> P/8 pitches of H channels
        # One head per track: a dense map from (trunk maps, melody maps) at every pitch to the track's pitches.
        self.head_trunk = nn.Parameter(torch.randn(t, p * cfg.head_maps, p) * (p * cfg.head_maps) ** -0.5)
        self.head_melody = nn.Parameter(torch.randn(t, p * (cfg.enc_maps + 1), p) * 0.01)
        self.head_bias = nn.Parameter(torch.full((t, 1, p), -2.0))

    def forward(
        self,
        z_chords: torch.Tensor,  # (B, Z)
        z_style: torch.Tensor,  # (B, Z)
        z_melody: torch.Tensor,  # (B, T, Z)
        z_groove: torch.Tensor,  # (B, T, Z)
        capsule: torch.Tensor,  # (B, 4)
        triple: torch.Tensor,  # (B, 1)
        melody: torch.Tensor,  # (B, bars, 16, P): the given soprano, zeros when none
        has_melody: torch.Tensor,  # (B, 1)
    ) -> torch.Tensor:
        """Probabilities (B, T, bars, 16, P); track 0 is ``melody`` where ``has_melody`` is 1."""
        cfg = self.cfg
        b, t, bars, steps, p = z_chords.shape[0], cfg.tracks, cfg.bars, cfg.steps, cfg.pitches
        melody = melody * has_melody.view(b, 1, 1, 1)
        chords = self.chords_time(z_chords)  # (B, bars, Z)
        melodies = torch.stack([net(z_melody[:, i]) for i, net in enumerate(self.melody_time)], 1)  # (B, T, bars, Z)
        cond = F.leaky_relu(self.cond(torch.cat([capsule, triple, has_melody], 1)), 0.2)  # (B, C)
        enc_vec, enc_full = self.encoder(melody)  # (B, bars, E), (B, bars, 16, (M+1)*P)
        per_bar = torch.cat([
            chords.unsqueeze(1).expand(b, t, bars, -1),
            z_style.view(b, 1, 1, -1).expand(b, t, bars, -1),
            melodies,
            z_groove.unsqueeze(2).expand(b, t, bars, -1),
            cond.view(b, 1, 1, -1).expand(b, t, bars, -1),
            enc_vec.unsqueeze(1).expand(b, t, bars, -1),
            self.track_emb.view(1, t, 1, -1).expand(b, t, bars, -1),
        ], -1)  # (B, T, bars, W)
        x = self.fc(per_bar).reshape(b * t * bars, cfg.trunk, 4, 1)  # (B*T*bars, c, 4 steps, 1 pitch)
        x = self.time_up(F.relu(self.fc_norm(x)))  # (B*T*bars, c/4, 16, 1)
        x = x.squeeze(3).transpose(1, 2)  # (B*T*bars, 16, c/4)
        x = F.relu(self.pitch_up1(x)).reshape(b * t * bars, steps, 8, cfg.trunk // 8)  # (N, 16, 8 blocks, c/8)
        x = F.relu(self.pitch_up2(x))  # (N, 16, 8 blocks, P/8 * H): pitch = block * P/8 + offset
        x = x.reshape(b, t, bars * steps, p * cfg.head_maps).transpose(0, 1)  # (T, B, bars*16, P*H)
        logits = torch.matmul(x.reshape(t, b * bars * steps, -1), self.head_trunk)  # (T, B*bars*16, P)
        mel = enc_full.reshape(1, b * bars * steps, -1)  # (1, B*bars*16, (M+1)*P)
        logits = logits + torch.matmul(mel, self.head_melody) + self.head_bias  # (T, B*bars*16, P)
        logits = logits.reshape(t, b, bars, steps, p).transpose(0, 1)  # (B, T, bars, 16, P)
        probs = torch.sigmoid(logits) * step_mask(triple, steps).view(b, 1, 1, steps, 1)
        keep = has_melody.view(b, 1, 1, 1)
        soprano = keep * melody + (1 - keep) * probs[:, 0]  # (B, bars, 16, P)
        return torch.cat([soprano.unsqueeze(1), probs[:, 1:]], 1)


def step_mask(triple: torch.Tensor, steps: int = BAR_STEPS) -> torch.Tensor:
    """(B, 16): 1 on the steps a bar has; a 3/4 bar (triple = 1) has the first 12."""
    beat4 = (torch.arange(steps, device=triple.device) >= 12).to(triple.dtype)  # (16,)
    return 1 - triple * beat4.view(1, -1)


class Critic(nn.Module):
    """A phrase [B, T, bars, 16, P] -> a score [B]; the condition enters by projection."""

    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.critic
        self.convs = nn.Sequential(
            nn.Conv2d(cfg.tracks, c, (1, 12), stride=(1, 4), padding=(0, 4)), nn.LeakyReLU(0.2),  # (c, 64, P/4)
            nn.Conv2d(c, 2 * c, (4, 3), stride=(2, 2), padding=(1, 1)), nn.LeakyReLU(0.2),  # (2c, 32, P/8)
            nn.Conv2d(2 * c, 4 * c, (4, 3), stride=(2, 2), padding=(1, 1)), nn.LeakyReLU(0.2),  # (4c, 16, P/16)
            nn.Conv2d(4 * c, 4 * c, (4, 1), stride=(4, 1)), nn.LeakyReLU(0.2),  # (4c, 4 bars, P/16)
        )
        feat = 4 * c * cfg.bars * (cfg.pitches // 16)
        self.fc = nn.Sequential(nn.Linear(feat, 128), nn.LeakyReLU(0.2))
        self.out = nn.Linear(128, 1)
        self.embed = nn.Linear(5, 128, bias=False)  # capsule + triple, projected onto the features

    def forward(self, roll: torch.Tensor, capsule: torch.Tensor, triple: torch.Tensor) -> torch.Tensor:
        b, t, bars, steps, pitches = roll.shape
        x = roll.reshape(b, t, bars * steps, pitches)  # (B, T, 64 steps, P): tracks as channels
        h = self.fc(self.convs(x).flatten(1))  # (B, 128)
        cond = self.embed(torch.cat([capsule, triple], 1))  # (B, 128)
        return self.out(h).squeeze(1) + (h * cond).sum(1)


class EmotionClassifier(nn.Module):
    """The written voices alone (alto, tenor, bass) -> logits [B, 2]: major (valence > 0), busy (arousal > 0).

    The auxiliary classifier of an AC-GAN (Odena et al., 2017), restricted to
    the accompaniment: the given soprano already carries the mode, so a judge
    that saw it would let the generator ignore the capsule. Valence is read
    from per-beat chroma with a convolution around the circle of pitch
    classes and a max over the 12 rotations (a key-profile match that does
    not care about the key); arousal from the expected onsets per beat of
    each voice. Trained on real rows only; the generator is asked to make its
    voices read as the capsule says.
    """

    fold: torch.Tensor  # a buffer (register_buffer), not a parameter

    def __init__(self, cfg: GanConfig, width: int = 32) -> None:
        super().__init__()
        voices, w = cfg.tracks - 1, width
        fold = torch.zeros(cfg.pitches, 12)
        fold[torch.arange(cfg.pitches), (torch.arange(cfg.pitches) + LOW) % 12] = 1.0
        self.register_buffer("fold", fold, persistent=False)  # (P, 12): pitch -> pitch class
        self.beat = nn.Conv2d(voices, w, (1, 12))  # one beat's chroma against 12-wide profiles
        self.bar = nn.Conv2d(w, w, (4, 1), stride=(4, 1))  # 4 beats -> a bar, per rotation
        self.fc = nn.Sequential(nn.Linear(w + voices + 1, w), nn.LeakyReLU(0.2), nn.Linear(w, 2))

    def forward(self, lower: torch.Tensor, triple: torch.Tensor) -> torch.Tensor:
        b, v, bars, steps, p = lower.shape
        x = lower.reshape(b, v, bars * steps, p)  # (B, V, S, P)
        chroma = torch.matmul(x, self.fold)  # (B, V, S, 12)
        beats = chroma.reshape(b, v, bars * steps // 4, 4, 12).mean(3)  # (B, V, beats, 12)
        ring = torch.cat([beats, beats[..., :11]], -1)  # (B, V, beats, 23): the circle unrolled
        h = F.leaky_relu(self.beat(ring), 0.2)  # (B, W, beats, 12 rotations)
        h = F.leaky_relu(self.bar(h), 0.2)  # (B, W, bars, 12)
        h = h.mean(2).amax(-1)  # (B, W): over bars, then the best rotation
        before = F.pad(x[:, :, :-1], (0, 0, 1, 0))  # (B, V, S, P): the step before (silence before the first)
        onsets = (x * (1 - before)).sum(-1).sum(-1)  # (B, V): expected note starts
        per_beat = onsets / (bars * (4 - triple)).view(b, 1)  # (B, V): a 3/4 bar has 3 beats
        return self.fc(torch.cat([h, per_beat, triple], 1))  # (B, 2)


def gradient_penalty(critic: Critic, real: torch.Tensor, fake: torch.Tensor, capsule: torch.Tensor,
                     triple: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of (||grad critic(x)||_2 - 1)^2 at points x between real and fake (Gulrajani et al., 2017)."""
    if alpha is None:
        alpha = torch.rand(real.shape[0], 1, 1, 1, 1, device=real.device)
    x = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    score = critic(x, capsule, triple)
    (grad,) = torch.autograd.grad(score.sum(), x, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def latents(batch: int, cfg: GanConfig, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Standard-normal latents of the four kinds."""
    def n(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    return {
        "z_chords": n(batch, cfg.z_dim),
        "z_style": n(batch, cfg.z_dim),
        "z_melody": n(batch, cfg.tracks, cfg.z_dim),
        "z_groove": n(batch, cfg.tracks, cfg.z_dim),
    }


def _build(cfg: dict) -> Generator:
    return Generator(GanConfig.from_dict(cfg))


# What a checkpoint of the ensemble family builds (affetto.models.checkpoint); the critic and the
# emotion classifier are trained beside the generator and saved as parts of the same checkpoint.
FAMILY = ModelFamily("ensemble", Generator, _build, part="generator")
