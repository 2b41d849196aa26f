"""The Transformer: shapes, conditioning, and the KV cache against the full forward pass."""

import pytest
import torch

from affetto.models.transformer import EmotionTransformer, ModelConfig

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def model() -> EmotionTransformer:
    torch.manual_seed(0)
    return EmotionTransformer(ModelConfig(vocab_size=40, n_layer=2, n_head=2, d_model=32, d_ff=64, max_len=64)).eval()


def test_step_by_step_equals_full_sequence(model):
    tokens = torch.randint(0, 40, (2, 30))
    cond = torch.tensor([[1.0, 0, 0, 0], [0, 0, 0.5, 0.5]])
    with torch.no_grad():
        full, _ = model(tokens, cond)
        past = model.empty_past(2)
        steps = []
        for t in range(30):
            logits, past = model(tokens[:, t : t + 1], cond, past)
            steps.append(logits)
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)
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


def test_config_validation():
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(d_model=30, n_head=4)
    with pytest.raises(ValueError, match="dropout"):
        ModelConfig(dropout=1.0)
    cfg = ModelConfig(d_model=64)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
