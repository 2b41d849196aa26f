"""The loss parts: GTP's symmetric KL against a hand computation in numpy, the alignment and caption losses."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the losses are PyTorch")

from affetto.models.text.losses import alignment_loss, caption_loss, drop_words, gtp_loss  # noqa: E402


def hand_gtp(a: np.ndarray, b: np.ndarray, tau: float) -> float:
    """Row by row, as the definition reads: softmax over the others' cosines / tau, then symmetric KL."""
    def rows(z: np.ndarray) -> list[np.ndarray]:
        z = z / np.linalg.norm(z, axis=1, keepdims=True)
        out = []
        for i in range(len(z)):
            others = [j for j in range(len(z)) if j != i]
            s = np.array([z[i] @ z[j] for j in others]) / tau
            e = np.exp(s - s.max())
            out.append(e / e.sum())
        return out

    total = 0.0
    for p, q in zip(rows(a), rows(b)):
        total += 0.5 * (np.sum(p * np.log(p / q)) + np.sum(q * np.log(q / p)))
    return total / len(a)


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_gtp_matches_a_hand_computation(tau):
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(5, 4)), rng.normal(size=(5, 6))  # the two spaces may differ in width
    got = float(gtp_loss(torch.tensor(a), torch.tensor(b), tau))
    assert got == pytest.approx(hand_gtp(a, b, tau), rel=1e-6)
    assert got > 0


def test_gtp_is_zero_for_spaces_of_one_shape_and_symmetric():
    rng = np.random.default_rng(4)
    a = torch.tensor(rng.normal(size=(6, 5)))
    rotation = torch.linalg.qr(torch.tensor(rng.normal(size=(5, 5))))[0]
    assert float(gtp_loss(a, 3.0 * a @ rotation)) == pytest.approx(0.0, abs=1e-9)  # same similarities
    b = torch.tensor(rng.normal(size=(6, 3)))
    assert float(gtp_loss(a, b)) == pytest.approx(float(gtp_loss(b, a)), rel=1e-9)


def test_gtp_pulls_the_similarities_together():
    torch.manual_seed(0)
    a = torch.randn(8, 4)
    b = torch.randn(8, 4, requires_grad=True)
    before = gtp_loss(a, b).item()
    opt = torch.optim.SGD([b], lr=0.5)
    for _ in range(50):
        opt.zero_grad()
        gtp_loss(a, b).backward()
        opt.step()
    assert gtp_loss(a, b).item() < 0.5 * before


def test_gtp_needs_three_items():
    with pytest.raises(ValueError, match="at least 3"):
        gtp_loss(torch.randn(2, 4), torch.randn(2, 4))


def test_alignment_loss_is_the_mean_squared_l2_distance():
    p = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    t = torch.tensor([[1.0, 0.0], [3.0, 4.0]])
    assert float(alignment_loss(p, t)) == pytest.approx((4.0 + 25.0) / 2)


def test_caption_loss_ignores_padding_and_reads_the_next_word():
    vocab = 6
    tokens = torch.tensor([[1, 4, 5, 2, 0, 0]])
    logits = torch.full((1, 6, vocab), -20.0)
    for i in range(3):  # position i predicts token i + 1
        logits[0, i, tokens[0, i + 1]] = 20.0
    logits[0, 3:, 3] = 20.0  # wrong guesses after <eos>: padding, ignored
    assert float(caption_loss(logits, tokens)) < 1e-6
    logits[0, 0] = 0.0  # the first word now uniform
    assert float(caption_loss(logits, tokens)) == pytest.approx(np.log(vocab) / 3, rel=1e-4)


def test_word_dropout_hides_words_never_bos_or_padding():
    torch.manual_seed(0)
    tokens = torch.tensor([[1] + [7] * 40 + [2] + [0] * 5] * 4)
    dropped = drop_words(tokens, 0.5)
    assert (dropped[:, 0] == 1).all() and (dropped[:, -5:] == 0).all()
    hidden = (dropped == 3).float().mean().item() * tokens.numel() / (tokens != 0).sum().item()
    assert 0.3 < hidden < 0.6


def test_attribute_loss_is_each_fields_cross_entropy_and_skips_unlisted_values():
    from affetto.models.text.losses import attribute_loss

    logits = {"mode": torch.tensor([[2.0, 0.0], [0.0, 1.0], [5.0, -5.0]]),
              "tonic": torch.tensor([[0.0, 3.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])}
    labels = {"mode": torch.tensor([0, 0, -1]), "tonic": torch.tensor([1, 2, -1])}

    def ce(row, k):
        return float(-torch.log_softmax(row, -1)[k])

    hand = (ce(logits["mode"][0], 0) + ce(logits["mode"][1], 0)) / 2 + \
        (ce(logits["tonic"][0], 1) + ce(logits["tonic"][1], 2)) / 2  # the third window names nothing listed
    assert float(attribute_loss(logits, labels)) == pytest.approx(hand, rel=1e-6)
