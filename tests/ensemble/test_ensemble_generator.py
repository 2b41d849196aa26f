"""The generator's shapes and the roles of its latents; track-conditional generation; the critic's gradient penalty."""

import pytest
import torch
from conftest import tiny_config

from affetto.models.musegan.model import Critic, Generator, gradient_penalty, latents

pytestmark = pytest.mark.torch


def inputs(batch=2, has=0.0, triple=0.0, seed=0):
    cfg = tiny_config()
    g = torch.Generator().manual_seed(seed)
    return {
        **latents(batch, cfg, g),
        "capsule": torch.eye(4)[:batch],
        "triple": torch.full((batch, 1), triple),
        "melody": (torch.rand(batch, cfg.bars, cfg.steps, cfg.pitches, generator=g) > 0.95).float(),
        "has_melody": torch.full((batch, 1), has),
    }


def run(gen, x):
    with torch.no_grad():
        return gen(**x)


def changed_tracks(a, b):
    return [bool((a[:, t] - b[:, t]).abs().max() > 1e-6) for t in range(a.shape[1])]


def test_shapes_and_range(tiny_generator):
    out = run(tiny_generator, inputs(batch=3))
    assert out.shape == (3, 4, 4, 16, 64)
    assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_style_and_chords_change_every_track(tiny_generator):
    x = inputs()
    base = run(tiny_generator, x)
    for name in ("z_style", "z_chords"):
        y = dict(x, **{name: x[name] + 1.0})
        assert changed_tracks(base, run(tiny_generator, y)) == [True] * 4, name


def test_groove_and_melody_latents_change_only_their_track(tiny_generator):
    x = inputs()
    base = run(tiny_generator, x)
    for name in ("z_groove", "z_melody"):
        z = x[name].clone()
        z[:, 2] += 1.0
        assert changed_tracks(base, run(tiny_generator, dict(x, **{name: z}))) == [False, False, True, False], name


def test_melody_latent_varies_by_bar(tiny_generator):
    per_bar = tiny_generator.melody_time[1](torch.randn(2, tiny_config().z_dim))
    assert per_bar.shape == (2, 4, tiny_config().z_dim)
    assert not torch.allclose(per_bar[:, 0], per_bar[:, 1])


def test_track_conditional_generation_keeps_the_given_track(tiny_generator):
    x = inputs(has=1.0)
    out = run(tiny_generator, x)
    assert torch.equal(out[:, 0], x["melody"])
    other = dict(x, melody=torch.roll(x["melody"], 5, dims=-1))
    assert changed_tracks(out, run(tiny_generator, other))[1:] == [True] * 3  # the voices listen to it


def test_free_generation_ignores_a_melody_it_is_not_given(tiny_generator):
    x = inputs(has=0.0)
    other = dict(x, melody=torch.roll(x["melody"], 5, dims=-1))
    assert torch.equal(run(tiny_generator, x), run(tiny_generator, other))


def test_the_capsule_reaches_every_track(tiny_generator):
    x = inputs()
    y = dict(x, capsule=torch.zeros_like(x["capsule"]))
    assert changed_tracks(run(tiny_generator, x), run(tiny_generator, y)) == [True] * 4


def test_three_four_bars_leave_the_fourth_beat_silent(tiny_generator):
    out = run(tiny_generator, inputs(triple=1.0))
    assert float(out[..., 12:, :].abs().max()) == 0.0
    assert float(out[:, 1:, :, :12].max()) > 0.0


class Linear(torch.nn.Module):
    """critic(x) = <w, x>: its gradient is w everywhere, so the penalty is (||w|| - 1)^2."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x, capsule, triple):
        return (x * self.w).flatten(1).sum(1)


def test_gradient_penalty_of_a_known_critic():
    shape = (4, 4, 16, 64)
    w = torch.zeros(shape)
    w[0, 0, 0, :4] = 1.0  # ||w|| = 2
    real, fake = torch.rand(3, *shape), torch.rand(3, *shape)
    cond, triple = torch.zeros(3, 4), torch.zeros(3, 1)
    assert float(gradient_penalty(Linear(w), real, fake, cond, triple).detach()) == pytest.approx(1.0)
    w = w / 2  # ||w|| = 1: no penalty
    assert float(gradient_penalty(Linear(w), real, fake, cond, triple).detach()) == pytest.approx(0.0, abs=1e-10)


def test_gradient_penalty_on_a_tiny_critic_is_finite_positive_and_depends_on_the_critic():
    cfg = tiny_config()
    real = (torch.rand(2, 4, 4, 16, 64) > 0.9).float()
    fake = torch.rand(2, 4, 4, 16, 64)
    cond, triple = torch.eye(4)[:2], torch.zeros(2, 1)
    alpha = torch.full((2, 1, 1, 1, 1), 0.3)
    values = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        critic = Critic(cfg)
        gp = gradient_penalty(critic, real, fake, cond, triple, alpha)
        assert torch.isfinite(gp) and float(gp.detach()) >= 0
        gp.backward()  # the penalty trains the critic: it has gradients for its weights
        assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in critic.parameters())
        values.append(float(gp.detach()))
    assert values[0] != pytest.approx(values[1])


def test_a_generator_step_reaches_every_part():
    cfg = tiny_config()
    torch.manual_seed(0)
    gen, critic = Generator(cfg), Critic(cfg)
    x = inputs(batch=2, has=0.0)
    x["has_melody"] = torch.tensor([[1.0], [0.0]])
    critic(gen(**x), x["capsule"], x["triple"]).mean().backward()
    silent = [name for name, p in gen.named_parameters() if p.grad is None or float(p.grad.abs().sum()) == 0]
    assert silent == []


def test_the_voice_leading_term_counts_expected_parallels_against_the_soprano():
    from affetto.models.musegan.train import parallel_penalty

    melody = torch.zeros(1, 4, 16, 64)
    melody[0, 0, :8, 40] = 1.0  # the soprano steps up a tone at step 8
    melody[0, 0, 8:, 42] = 1.0
    fake = torch.zeros(1, 4, 4, 16, 64)
    fake[0, 0] = melody[0]
    fake[0, 3, 0, :8, 28] = 1.0  # the bass an octave under, moving with it: one parallel octave
    fake[0, 3, 0, 8:, 30] = 1.0
    has = torch.ones(1, 1)
    assert float(parallel_penalty(fake, melody, has)) == pytest.approx(1 / 4)  # per bar of the phrase
    fake[0, 3, 0, 8:, 30], fake[0, 3, 0, 8:, 26] = 0.0, 1.0  # contrary motion instead
    assert float(parallel_penalty(fake, melody, has)) == 0.0
    fake[0, 2, 0, :8, 33] = 0.5  # a tenor that half sits a fifth under the melody, then moves with it
    fake[0, 2, 0, 8:, 35] = 0.5
    assert float(parallel_penalty(fake, melody, has)) == pytest.approx(0.25 / 4)
