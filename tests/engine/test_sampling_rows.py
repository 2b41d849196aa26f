"""Sampling all rows of a step at once draws the tokens that drawing them one by one does."""

import numpy as np
import pytest

from affetto.runtime.sampling import SamplingConfig, guide, sample, sample_rows


def _one_row(logits: np.ndarray, allowed: np.ndarray, config: SamplingConfig, rng: np.random.Generator) -> int:
    """The per-row sampler the decoder used before rows were drawn together (the reference)."""
    logits[~allowed] = -np.inf
    if config.greedy:
        return int(np.argmax(logits))
    if config.temperature != 1.0:
        logits /= config.temperature
    if config.top_k and config.top_k < logits.size:
        kth = np.partition(logits, -config.top_k)[-config.top_k]
        logits[logits < kth] = -np.inf
    logits -= logits.max()
    probs = np.exp(logits, out=logits)
    probs /= probs.sum()
    if config.top_p < 1.0:
        order = np.argsort(-probs)
        cumulative = np.cumsum(probs[order])
        keep = order[: int(np.searchsorted(cumulative, config.top_p)) + 1]
        kept = probs[keep]
        return int(keep[_draw(kept / kept.sum(), rng)])
    return _draw(probs, rng)


def _draw(probs: np.ndarray, rng: np.random.Generator) -> int:
    index = min(int(np.searchsorted(np.cumsum(probs), rng.random(), side="right")), probs.size - 1)
    while probs[index] == 0 and index > 0:
        index -= 1
    return index


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


def test_the_one_row_sampler_is_the_first_row_of_many():
    logits = np.array([0.0, 1.0, 9.0, 2.0], np.float32)
    allowed = np.array([True, True, False, True])
    rng = np.random.default_rng(0)
    assert {sample(logits.copy(), allowed, SamplingConfig(), rng) for _ in range(200)} == {0, 1, 3}
