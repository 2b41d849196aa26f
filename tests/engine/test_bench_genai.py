"""bench_genai's variants of our graph run through ONNX Runtime: the graph with GroupQueryAttention gives the
engine's logits, the int8 KV cache agrees with fp32, the GQA graph reads a quarter of the cache."""

import numpy as np
import pytest

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.bench.bench_genai import GraphCell, gqa_graph, gqa_reference, int8_kv_graph, prompt_length, weight_bytes
from affetto.runtime.engine import Engine
from affetto.runtime.session import UNCONDITIONED

pytestmark = pytest.mark.torch

ROWS = (Capsule.of(Quadrant.Q1).weights, UNCONDITIONED)


def _walk(engine: Engine, n: int, seed: int) -> list[int]:
    return engine.vocab.random_walk(n, np.random.default_rng(seed))


def _engine_logits(engine: Engine, walk: list[int]) -> np.ndarray:
    engine.cache.condition(ROWS)
    engine.cache.reset(walk)
    engine.cache.prefill()
    return engine.cache.logits.copy()  # (rows, vocab) at the last token


@pytest.fixture
def reference(tiny_model, tiny_checkpoint, tmp_path):
    """The tiny model written with GroupQueryAttention (the engine's file has the MatMul attention)."""
    return gqa_reference(tiny_model, tmp_path / "gqa-attention.onnx", tiny_checkpoint)


def test_graph_cell_runs_the_engines_graph_as_the_engine_does(tiny_model, reference):
    engine = Engine(tiny_model)
    with pytest.raises(ValueError, match="GroupQueryAttention"):
        GraphCell(tiny_model, 40, 4, vocab=engine.vocab.size, walk=[], slots=64)
    walk = _walk(engine, 40, 0)
    cell = GraphCell(reference, len(walk), 4, vocab=engine.vocab.size, walk=walk, slots=64)
    whole = cell.forward(walk, 0)  # (rows, S, vocab)
    np.testing.assert_allclose(whole[:, -1], _engine_logits(engine, walk), atol=1e-4)
    # one token after the prompt, through the cache the prefill left
    step = cell.forward([walk[-1]], len(walk))
    engine.cache.feed([walk[-1]])
    np.testing.assert_allclose(step[:, 0], engine.cache.logits, atol=1e-4)


def test_int8_kv_cache_agrees_with_fp32_and_stores_int8(tiny_model, reference, tmp_path):
    engine = Engine(tiny_model)
    calibration = []
    for seed in (1, 2):
        _engine_logits(engine, _walk(engine, 120, seed))
        calibration.append([b[:, :, :120].copy() for b in engine.cache.host_buffers()])
    kv8 = int8_kv_graph(reference, tmp_path / "kv8.onnx", calibration)
    walk = _walk(engine, 100, 3)
    fp32 = GraphCell(reference, len(walk), 1, vocab=engine.vocab.size, walk=walk, slots=128).forward(walk, 0)
    cell = GraphCell(kv8, len(walk), 1, vocab=engine.vocab.size, walk=walk, slots=128)
    quantised = cell.forward(walk, 0)
    assert cell.buffers[0].dtype == np.int8 and np.abs(cell.buffers[0][0, :, :100]).max() > 0
    assert not np.array_equal(quantised, fp32)  # the cache really is quantised ...
    assert (quantised.argmax(-1) == fp32.argmax(-1)).mean() >= 0.9  # ... and still picks the same tokens
    assert np.abs(quantised - fp32).max() < 0.5


def test_gqa_graph_keeps_one_kv_head_per_row(tiny_model, reference, tmp_path):
    engine = Engine(tiny_model)
    gqa = gqa_graph(reference, tmp_path / "gqa.onnx")
    walk = _walk(engine, 30, 4)
    cell = GraphCell(gqa, len(walk), 1, vocab=engine.vocab.size, walk=walk, slots=64)
    logits = cell.forward(walk, 0)
    full = GraphCell(reference, len(walk), 1, vocab=engine.vocab.size, walk=walk, slots=64)
    assert cell.buffers[0].shape[1] == cell.rows  # one key head per row ...
    assert full.buffers[0].shape[1] == cell.rows * int(engine.manifest["model"]["n_head"])  # ... of n_head
    assert np.isfinite(logits).all()


def test_the_floor_counts_the_weights_a_step_reads(tiny_model):
    n = weight_bytes(tiny_model)
    m = Engine(tiny_model).manifest["model"]
    d, ff = int(m["d_model"]), int(m.get("d_ff", 4 * int(m["d_model"])))
    per_layer = d * 3 * d + d * d + 2 * d * ff  # qkv, proj, mlp (biases and norms are 1-D)
    assert n >= 4 * int(m["n_layer"]) * per_layer
    assert prompt_length(1000, 64, 1024) == 959 and prompt_length(100, 64, 1024) == 100


def test_the_engine_cell_draws_greedily_from_two_rows_mixed_or_one_row(tiny_model, tmp_path):
    """The engine cell's tokens are the greedy ones of the guided distribution: two rows mixed by the guidance
    scale, or a guidance-distilled model's one row as it comes (the scale is in its capsule)."""
    from tiny_things import export, make_distilled_checkpoint

    from affetto.bench.bench_genai import EngineCell
    from affetto.runtime.sampling import guide

    one_row = export(make_distilled_checkpoint(tmp_path), tmp_path / "one-row.onnx")
    for path in (tiny_model, one_row):
        cell = EngineCell(path, 20, 8)
        assert len(cell.run()) == 8
        fresh = EngineCell(path, 20, 8)
        fresh.cache.reset(fresh.walk)
        fresh.cache.prefill()
        expected = []
        for _ in range(8):
            logits = fresh.cache.logits
            mixed = guide(logits[0], logits[1], 1.5, np.empty_like(logits[0])) if len(logits) == 2 else logits[0]
            expected.append(int(np.argmax(mixed)))
            fresh.cache.feed([expected[-1]])
        assert cell.cache.rows == (2 if path == tiny_model else 1)
        assert cell.tokens == expected
