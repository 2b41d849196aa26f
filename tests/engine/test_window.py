"""The sliding window read ahead: the slide takes a cache read over the bars before it, and it is exact."""

import numpy as np
import pytest
import torch
from tiny_things import export, make_checkpoint

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.errors import ConfigError
from affetto.models.checkpoint import load_checkpoint
from affetto.music.notes import Note
from affetto.runtime.engine import Engine
from affetto.runtime.sampling import SamplingConfig

pytestmark = pytest.mark.torch

SEED = [Note(60 + i % 12, i * 0.5, 0.5, 90) for i in range(16)]


@pytest.fixture(scope="module")
def long_model(tmp_path_factory):
    """A tiny model with the shipped model's 1024 positions, so that bars fill a quarter of it slowly."""
    folder = tmp_path_factory.mktemp("long")
    checkpoint = make_checkpoint(folder, max_len=1024)
    return checkpoint, export(checkpoint, folder / "long.onnx")


@pytest.mark.parametrize("window", [None, 512, 256])
def test_the_slide_takes_the_window_read_ahead_and_it_is_exact(long_model, window):
    checkpoint, path = long_model
    model, _ = load_checkpoint(checkpoint)
    engine = Engine(path, window=window)
    assert engine.context_window == (window or 1024)
    engine.prime(SEED)
    rng = np.random.default_rng(0)
    config = SamplingConfig(guidance=1.5, candidates=2)
    read_at_slides, followed = [], []
    for _ in range(60):
        slides, read = engine.stats["slides"], engine.stats["prefill_tokens"]
        bar = engine.generate_bar_tokens(Capsule.of(Quadrant.Q1), config, rng)
        assert engine.cache.length <= engine.max_len
        followed.append(engine.cache.length - len(bar))  # the context the bar followed
        if engine.stats["slides"] > slides:
            read_at_slides.append(engine.stats["prefill_tokens"] - read)
    assert len(read_at_slides) >= 2 and engine.stats["read_ahead_tokens"] > 0
    assert read_at_slides == [0] * len(read_at_slides)  # the slid window was read in the bars before
    assert max(followed) <= engine.context_window - engine.max_bar_tokens * (window is None)
    assert min(followed[10:]) <= engine.context_window // 2  # each slide kept half the window at most
    assert engine.cache.context[:2] == (engine.vocab.bos, engine.vocab.bar)
    with torch.no_grad():
        ref, _ = model(torch.tensor([engine.cache.context] * 2), torch.tensor([[1.0, 0, 0, 0], [0.0, 0, 0, 0]]))
    np.testing.assert_allclose(engine.cache.logits, ref[:, -1].numpy(), atol=1e-4)


def test_a_new_capsule_drops_what_was_read_ahead(long_model):
    checkpoint, path = long_model
    model, _ = load_checkpoint(checkpoint)
    engine = Engine(path)
    engine.prime(SEED)
    rng = np.random.default_rng(1)
    config = SamplingConfig(guidance=1.5)
    while engine.window.ahead is None:  # play until the window is being read ahead, in Q1
        engine.generate_bar_tokens(Capsule.of(Quadrant.Q1), config, rng)
    slides = engine.stats["slides"]
    while engine.stats["slides"] == slides:  # the knob turns to Q3 before the slide
        engine.generate_bar_tokens(Capsule.of(Quadrant.Q3), config, rng)
    # what the slide kept was read in Q3, not taken from the window read in Q1
    with torch.no_grad():
        ref, _ = model(torch.tensor([engine.cache.context] * 2), torch.tensor([[0.0, 0, 1.0, 0], [0.0, 0, 0, 0]]))
    np.testing.assert_allclose(engine.cache.logits, ref[:, -1].numpy(), atol=1e-4)


@pytest.mark.parametrize("window", [0, 63, 100.0, True])
def test_a_window_too_short_or_not_a_number_of_tokens_is_refused(long_model, window):
    with pytest.raises(ConfigError, match="window"):
        Engine(long_model[1], window=window)
