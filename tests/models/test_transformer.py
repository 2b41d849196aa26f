"""The Transformer: shapes, conditioning, and the KV cache against the full forward pass."""

import pytest
import torch

from affetto.models.transformer import EmotionTransformer, ModelConfig

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def model() -> EmotionTransformer:
    torch.manual_seed(0)
    return EmotionTransformer(ModelConfig(vocab_size=40, n_layer=2, n_head=2, d_model=32, d_ff=64, max_len=64)).eval()


def step_by_step(model: EmotionTransformer, tokens: torch.Tensor, cond: torch.Tensor):
    """(the logits of ``tokens`` fed one at a time through the cache, the cache after them)."""
    past = model.empty_past(len(tokens))
    steps = []
    for t in range(tokens.shape[1]):
        logits, past = model(tokens[:, t : t + 1], cond, past)
        steps.append(logits)
    return torch.cat(steps, dim=1), past


def test_step_by_step_equals_full_sequence(model):
    tokens = torch.randint(0, 40, (2, 30))
    cond = torch.tensor([[1.0, 0, 0, 0], [0, 0, 0.5, 0.5]])
    with torch.no_grad():
        full, _ = model(tokens, cond)
        steps, past = step_by_step(model, tokens, cond)
    assert torch.allclose(steps, full, atol=1e-5)
    assert past[0][0].shape == (2, 2, 30, 16)


def test_prefill_then_chunks_equals_full_sequence(model):
    tokens = torch.randint(0, 40, (1, 25))
    cond = torch.tensor([[0, 1.0, 0, 0]])
    with torch.no_grad():
        full, _ = model(tokens, cond)
        a, past = model(tokens[:, :10], cond)
        b, past = model(tokens[:, 10:17], cond, past)
        c, _ = model(tokens[:, 17:], cond, past)
    assert torch.allclose(torch.cat([a, b, c], dim=1), full, atol=1e-5)


def test_condition_changes_the_output_and_zero_means_unconditioned(model):
    tokens = torch.randint(0, 40, (1, 8))
    with torch.no_grad():
        # Train the quadrant embeddings away from their tiny init so the effect is visible.
        model.cond.weight.normal_(0, 1.0)
        happy, _ = model(tokens, torch.tensor([[1.0, 0, 0, 0]]))
        sad, _ = model(tokens, torch.tensor([[0, 0, 1.0, 0]]))
        none, _ = model(tokens, torch.zeros(1, 4))
        model.cond.weight.zero_()
        zero_embeddings, _ = model(tokens, torch.tensor([[1.0, 0, 0, 0]]))
    assert not torch.allclose(happy, sad)
    assert torch.allclose(none, zero_embeddings)


def test_grouped_key_value_heads_cache_fewer_heads_and_start_from_the_means_of_their_group():
    from dataclasses import replace

    from affetto.models.transformer import grouped_kv_state

    torch.manual_seed(1)
    cfg = ModelConfig(vocab_size=40, n_layer=2, n_head=4, d_model=32, d_ff=64, max_len=64)
    full = EmotionTransformer(cfg).eval()
    hs = cfg.head_dim
    with torch.no_grad():  # make heads 0-1 and 2-3 share keys and values: two heads' worth, written four times
        for block in full.blocks:
            w, b = block.attn.qkv.weight, block.attn.qkv.bias
            for base in (cfg.d_model, 2 * cfg.d_model):  # the key rows, then the value rows
                for pair in (0, 2):
                    rows = slice(base + (pair + 1) * hs, base + (pair + 2) * hs)
                    w[rows] = w[base + pair * hs : base + (pair + 1) * hs]
                    b[rows] = b[base + pair * hs : base + (pair + 1) * hs]
    grouped = EmotionTransformer(replace(cfg, n_kv_head=2)).eval()
    grouped.load_state_dict(grouped_kv_state(full.state_dict(), cfg, 2))
    tokens = torch.randint(0, 40, (2, 12))
    cond = torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 0]])
    with torch.no_grad():
        expected, _ = full(tokens, cond)
        got, _ = grouped(tokens, cond)
        steps, past = step_by_step(grouped, tokens, cond)
    assert torch.allclose(got, expected, atol=1e-5)  # equal heads averaged: the same network
    assert torch.allclose(steps, got, atol=1e-5)
    assert past[0][0].shape == (2, 2, 12, hs)  # two key/value heads cached, not four
    with pytest.raises(ValueError, match="in groups"):
        grouped_kv_state(full.state_dict(), cfg, 3)


def test_config_validation():
    with pytest.raises(ValueError, match="n_kv_head"):
        ModelConfig(n_head=4, n_kv_head=3)
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(d_model=30, n_head=4)
    with pytest.raises(ValueError, match="dropout"):
        ModelConfig(dropout=1.0)
    cfg = ModelConfig(d_model=64)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
