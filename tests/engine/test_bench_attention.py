"""bench_attention's two ways of writing the attention give the same output as each other, on the shapes
of a model with a key/value head per query head and of one whose query heads share one."""

import numpy as np
import pytest

from affetto.bench.bench_attention import Cell, gqa_graph, matmul_graph, run, session, shape_of

pytestmark = pytest.mark.torch


@pytest.mark.parametrize("fixture", ["tiny_model", "tiny_gqa_model"])
@pytest.mark.parametrize("width", [1, 3])
def test_matmul_attention_is_group_query_attention(request, fixture, width):
    shape = shape_of(request.getfixturevalue(fixture))
    gqa, mm = session(gqa_graph(shape)), session(matmul_graph(shape))
    for ctx in (1, 17, shape["max_len"] - width):
        cell = Cell(shape, gqa, mm, ctx, width, np.random.default_rng(ctx))
        assert cell.difference() < 1e-5
        gqa_out = cell.gqa_io.copy_outputs_to_cpu()[0]
        assert np.abs(gqa_out).max() > 0.01  # the comparison is not of zeros
    with pytest.raises(ValueError, match="positions"):
        Cell(shape, gqa, mm, shape["max_len"], width, np.random.default_rng(0))


def test_the_run_prints_its_cells_and_ratios(tiny_gqa_model):
    lines: list[str] = []
    results = run(tiny_gqa_model, repeat=1, contexts=(8, 32), echo=lines.append)
    assert results["shape"]["kv_heads"] < results["shape"]["heads"]
    assert results["max_difference"] < 1e-5
    assert set(results["ms_p50"]) == {f"{k}|c{c}|w{w}" for k in ("gqa", "matmul") for c in (8, 32) for w in (1, 3)}
    assert all(v > 0 for v in results["ms_p50"].values())
    assert any("MatMuls / GroupQueryAttention, ctx 32, 3 cand." in line for line in lines)
