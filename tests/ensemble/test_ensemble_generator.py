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


def test_the_voice_leading_term_counts_expected_parallels_between_voices():
    from affetto.models.musegan.train import parallel_penalty

    melody = torch.zeros(1, 4, 16, 64)
    melody[0, 0, :8, 40] = 1.0  # the soprano steps up a tone at step 8
    melody[0, 0, 8:, 42] = 1.0
    fake = torch.zeros(1, 4, 4, 16, 64)
    fake[0, 0] = melody[0]
    fake[0, 3, 0, :8, 28] = 1.0  # the bass an octave under, moving with it: one parallel octave
    fake[0, 3, 0, 8:, 30] = 1.0
    assert float(parallel_penalty(fake)) == pytest.approx(1 / 4)  # per bar of the phrase
    fake[0, 3, 0, 8:, 30], fake[0, 3, 0, 8:, 26] = 0.0, 1.0  # contrary motion instead
    assert float(parallel_penalty(fake)) == 0.0
    fake[0, 2, 0, :8, 33] = 0.5  # a tenor that half sits a fifth under the melody, then moves with it
    fake[0, 2, 0, 8:, 35] = 0.5
    assert float(parallel_penalty(fake)) == pytest.approx(0.25 / 4)
    fake[0, 1, 0, :8, 26] = 1.0  # an alto a twelfth over the bass... in contrary motion: nothing new
    fake[0, 1, 0, 8:, 33] = 1.0  # (28 -> 26 under 26 -> 33)
    assert float(parallel_penalty(fake)) == pytest.approx(0.25 / 4)


def test_the_voice_leading_term_counts_written_pairs_and_held_notes_are_not_parallels():
    from affetto.models.musegan.train import parallel_penalty

    fake = torch.zeros(2, 4, 4, 16, 64)
    fake[0, 1, 1, :4, 30], fake[0, 1, 1, 4:, 32] = 1.0, 1.0  # alto and tenor a unison, stepping together
    fake[0, 2, 1, :4, 30], fake[0, 2, 1, 4:, 32] = 1.0, 1.0
    fake[1, 1, 1, :, 37], fake[1, 2, 1, :, 30] = 1.0, 1.0  # a fifth held through the bar: no motion
    assert float(parallel_penalty(fake)) == pytest.approx((1 / 4 + 0) / 2)  # mean over the rows
    assert float(parallel_penalty(fake, torch.tensor([[0.0], [1.0]]))) == 0.0  # rows weighted


def _chord_roll(pcs_per_beat, busy=False, bars=4):
    """Lower voices (1, 3, bars, 16, 64) holding the given pitch classes, one chord per beat (or per eighth)."""
    from affetto.models.musegan.data import LOW

    roll = torch.zeros(1, 3, bars, 16, 64)
    for bar in range(bars):
        for beat in range(4):
            pcs = pcs_per_beat[(bar * 4 + beat) % len(pcs_per_beat)]
            for v, pc in enumerate(pcs):
                pitch = 48 - 12 * (v == 2) + pc - LOW  # alto and tenor around C3..B3, bass an octave lower
                if busy:  # two eighths on the beat: a new note half way
                    roll[0, v, bar, 4 * beat : 4 * beat + 2, pitch] = 1.0
                    roll[0, v, bar, 4 * beat + 2 : 4 * beat + 4, pitch + 12] = 1.0
                else:
                    roll[0, v, bar, 4 * beat : 4 * beat + 4, pitch] = 1.0
    return roll


def test_the_emotion_classifier_sees_no_key_and_counts_onsets():
    from affetto.models.musegan.model import EmotionClassifier

    torch.manual_seed(0)
    clf = EmotionClassifier(tiny_config()).eval()
    major = [(4, 7, 0), (5, 9, 2), (7, 11, 7), (4, 7, 0)]  # I ii... in C: pitch classes per voice
    roll = _chord_roll(major)
    up = torch.roll(roll, 3, dims=-1)  # the same phrase three semitones higher
    triple = torch.zeros(1, 1)
    with torch.no_grad():
        a, b = clf(roll, triple), clf(up, triple)
        c = clf(_chord_roll(major, busy=True), triple)
    assert torch.allclose(a, b, atol=1e-5)  # transposition changes nothing
    assert not torch.allclose(a, c, atol=1e-3)  # more notes does


def _trained_classifier(major, minor):
    """A tiny classifier trained on two real phrases (the same chords in C major and C minor, in random keys)."""
    from affetto.models.musegan.model import EmotionClassifier
    from affetto.models.musegan.train import emotion_loss

    torch.manual_seed(0)
    silent = torch.zeros(2, 1, 4, 16, 64)  # the soprano: the classifier never looks at it
    labels = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # major and calm, minor and calm
    clf = EmotionClassifier(tiny_config())
    opt = torch.optim.Adam(clf.parameters(), 1e-2)
    for _ in range(100):
        shift = int(torch.randint(0, 12, ()))
        real = torch.cat([silent, torch.roll(torch.cat([major, minor]), shift, dims=-1)], 1)
        loss = emotion_loss(clf, real, labels, torch.zeros(2, 1), torch.ones(2, 1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.1
    for p in clf.parameters():
        p.requires_grad_(False)
    return clf


MAJOR_CHORDS = [(4, 7, 0), (5, 9, 5), (7, 11, 7), (4, 7, 0)]  # pitch classes of alto, tenor, bass per beat
MINOR_CHORDS = [(3, 7, 0), (5, 8, 5), (7, 11, 7), (3, 7, 0)]


def test_the_emotion_term_pulls_a_draw_and_its_opposite_apart_the_way_the_capsule_asks():
    """Written voices that mix the major and the minor phrase by a weight per draw: descending the pairwise
    term, the happy draw ends more major than its opposite (sad) draw, and the sad draw more minor than its
    opposite (happy) draw, although all four began the same."""
    from affetto.models.musegan.train import contrast_loss

    major, minor = _chord_roll(MAJOR_CHORDS), _chord_roll(MINOR_CHORDS)
    clf = _trained_classifier(major, minor)
    silent = torch.zeros(2, 1, 4, 16, 64)
    mix = torch.zeros(2, 2, requires_grad=True)  # (draw, row): how much of the major phrase (sigmoid)
    opt = torch.optim.SGD([mix], lr=0.5)
    capsule = torch.eye(4)[[0, 2]]  # happy, sad
    triple = torch.zeros(2, 1)

    def voices(w):
        w = torch.sigmoid(w).view(2, 1, 1, 1, 1)
        return torch.cat([silent, w * major + (1 - w) * minor], 1)

    first = None
    for _ in range(30):
        loss = contrast_loss(clf, voices(mix[0]), voices(mix[1]), capsule, triple, torch.ones(2, 1))
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first == pytest.approx(float(torch.log(torch.tensor(2.0))), abs=1e-5)  # equal draws: log 2
    end = torch.sigmoid(mix).detach()  # (draw, row)
    assert end[0, 0] > end[1, 0] + 0.3  # happy asked: more major than the same row asked sad
    assert end[0, 1] < end[1, 1] - 0.3  # sad asked: more minor than the same row asked happy


def test_the_emotion_term_hears_the_roll_as_the_runtime_plays_it():
    from affetto.ensemble.engine import binarise
    from affetto.models.musegan.train import heard

    torch.manual_seed(0)
    probs = (torch.rand(2, 3, 4, 16, 64) * 0.0156).requires_grad_(True)  # sums near 0.5: some steps sound
    played = heard(probs)
    assert torch.equal(played.detach().bool(), torch.from_numpy(binarise(probs.detach().numpy())))
    assert 0 < int(played.detach().sum()) < 2 * 3 * 4 * 16  # some steps sound, some do not
    (grad,) = torch.autograd.grad((played * torch.arange(64.0)).sum(), probs)
    assert torch.equal(grad, torch.arange(64.0).expand_as(grad))  # the gradient passes straight through


def test_the_emotion_term_reaches_the_generator_only_on_rows_that_ask():
    from affetto.models.musegan.model import EmotionClassifier
    from affetto.models.musegan.train import OPPOSITE, capsule_target, contrast_loss

    assert capsule_target(torch.eye(4)).tolist() == [[1, 1], [0, 1], [0, 0], [1, 0]]  # Q1..Q4: (major, busy)
    assert capsule_target(torch.eye(4)[:, OPPOSITE]).tolist() == [[0, 0], [1, 0], [1, 1], [0, 1]]
    torch.manual_seed(0)
    gen, clf = Generator(tiny_config()), EmotionClassifier(tiny_config())
    x = inputs(batch=2, has=1.0)
    fake = gen(**x)
    opposite = gen(**{**x, "capsule": x["capsule"][:, OPPOSITE]})
    asked = torch.tensor([[1.0], [0.0]])  # the second row's capsule was dropped
    loss = contrast_loss(clf, fake, opposite, x["capsule"], x["triple"], asked)
    grad, grad_opp = torch.autograd.grad(loss, [fake, opposite])
    assert float(grad[0, 1:].abs().sum()) > 0 and float(grad_opp[0, 1:].abs().sum()) > 0  # the written voices
    assert float(grad[0, 0].abs().sum()) == 0  # never the soprano
    assert float(grad[1].abs().sum()) == 0 and float(grad_opp[1].abs().sum()) == 0  # nothing from the other row
    gen.zero_grad()
    contrast_loss(clf, gen(**x), gen(**{**x, "capsule": x["capsule"][:, OPPOSITE]}), x["capsule"], x["triple"],
                  asked).backward()
    assert float(gen.head_trunk.grad[1:].abs().sum()) > 0 and float(gen.head_trunk.grad[0].abs().sum()) == 0
    assert float(gen.cond.weight.grad[:, :4].abs().sum()) > 0  # the capsule's way in learns from it
