"""Sampling all rows of a step at once draws the tokens that drawing them one by one does."""

import numpy as np
import pytest

from affetto.runtime.sampling import SamplingConfig, guide, sample, sample_rows


def _one_row(logits: np.ndarray, allowed: np.ndarray, config: SamplingConfig, rng: np.random.Generator) -> int:
    """One row drawn on its own, written out in one dimension (the reference): softmax weights, top-k, the
    nucleus (the most likely tokens until they reach top_p of the total, ties with the last kept), and the
    inverse CDF of one uniform number over the kept weights in vocabulary order."""
    logits = np.where(allowed, logits, -np.inf).astype(np.float32)
    if config.greedy:
        return int(np.argmax(logits))
    if config.temperature != 1.0:
        logits /= np.float32(config.temperature)
    if config.top_k and config.top_k < logits.size:
        kth = np.sort(logits)[-config.top_k]
        logits[logits < kth] = -np.inf
    weights = np.exp(logits - logits.max())
    if config.top_p < 1.0:
        reach = np.cumsum(np.sort(weights)[::-1])
        cut = int(np.flatnonzero(reach >= config.top_p * reach[-1])[0])
        weights[weights < np.sort(weights)[::-1][cut]] = 0.0
    total = np.cumsum(weights)
    return int(np.flatnonzero(total > rng.random() * total[-1])[0])


CONFIGS = [
    SamplingConfig(),
    SamplingConfig(top_p=0.95),
    SamplingConfig(temperature=0.7, top_p=0.9),
    SamplingConfig(temperature=1.4, top_k=12),
    SamplingConfig(top_k=5, top_p=0.8),
    SamplingConfig(top_p=0.01),
    SamplingConfig(greedy=True),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"T{c.temperature}-k{c.top_k}-p{c.top_p}-g{c.greedy}")
def test_rows_together_draw_the_tokens_of_rows_one_by_one(config):
    data = np.random.default_rng(7)
    size, drawn = 204, []
    for step in range(300):
        rows = int(data.integers(1, 9))
        logits = (data.standard_normal((rows, size)) * data.uniform(0.5, 6)).astype(np.float32)
        allowed = data.random((rows, size)) < data.uniform(0.02, 0.9)
        allowed[np.arange(rows), data.integers(0, size, rows)] = True  # at least one token a row
        together = sample_rows(logits.copy(), allowed, config, np.random.default_rng(step))
        rng = np.random.default_rng(step)
        alone = [_one_row(logits[r].copy(), allowed[r], config, rng) for r in range(rows)]
        assert together.tolist() == alone
        assert allowed[np.arange(rows), together].all()
        drawn += alone
    assert len(set(drawn)) > 50  # the draws spread over the vocabulary: the comparison is not of constants


def test_a_row_keeps_the_generator_where_one_by_one_leaves_it():
    logits = np.random.default_rng(0).standard_normal((3, 50)).astype(np.float32)
    allowed = np.ones((3, 50), bool)
    a, b = np.random.default_rng(1), np.random.default_rng(1)
    sample_rows(logits.copy(), allowed, SamplingConfig(top_p=0.9), a)
    for r in range(3):
        _one_row(logits[r].copy(), allowed[r], SamplingConfig(top_p=0.9), b)
    assert a.random() == b.random()


def test_guidance_over_rows_is_guidance_per_row():
    data = np.random.default_rng(3)
    cond, uncond = data.standard_normal((2, 4, 30)).astype(np.float32)
    together = guide(cond, uncond, 1.5, np.empty((4, 30), np.float32))
    for r in range(4):
        np.testing.assert_array_equal(together[r], guide(cond[r], uncond[r], 1.5, np.empty(30, np.float32)))


def _expected(logits: np.ndarray, allowed: np.ndarray, config: SamplingConfig) -> np.ndarray:
    """The distribution a sampler should draw from, in float64: softmax at the temperature over the allowed
    tokens, the top k of them, then the smallest set of most likely tokens that reaches top_p."""
    z = np.where(allowed, logits.astype(np.float64) / config.temperature, -np.inf)
    if config.top_k:
        z[np.argsort(-z)[config.top_k:]] = -np.inf
    p = np.exp(z - z.max())
    p /= p.sum()
    order = np.argsort(-p)
    keep = order[: int(np.searchsorted(np.cumsum(p[order]), config.top_p)) + 1]
    out = np.zeros_like(p)
    out[keep] = p[keep] / p[keep].sum()
    return out


ASKED = [SamplingConfig(), SamplingConfig(top_p=0.9), SamplingConfig(temperature=0.6, top_p=0.95),
         SamplingConfig(top_k=4)]


@pytest.mark.parametrize("config", ASKED, ids=lambda c: f"T{c.temperature}-k{c.top_k}-p{c.top_p}")
def test_draws_follow_the_distribution_asked_for(config):
    data = np.random.default_rng(11)
    logits = (data.standard_normal(40) * 1.5).astype(np.float32)
    allowed = data.random(40) < 0.7
    expected = _expected(logits, allowed, config)
    n, rng = 20_000, np.random.default_rng(5)
    rows = np.tile(logits, (n // 100, 1)), np.tile(allowed, (n // 100, 1))
    counts = np.bincount(np.concatenate([sample_rows(rows[0].copy(), rows[1], config, rng) for _ in range(100)]),
                         minlength=40)
    assert counts[expected == 0].sum() == 0  # nothing outside the nucleus, nothing masked
    sd = np.sqrt(n * expected * (1 - expected))
    assert (np.abs(counts - n * expected) <= 4.5 * sd + 1).all(), (counts, np.round(n * expected))


def test_the_one_row_sampler_is_the_first_row_of_many():
    logits = np.array([0.0, 1.0, 9.0, 2.0], np.float32)
    allowed = np.array([True, True, False, True])
    rng = np.random.default_rng(0)
    assert {sample(logits.copy(), allowed, SamplingConfig(), rng) for _ in range(200)} == {0, 1, 3}
