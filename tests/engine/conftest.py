"""Tiny models built here, exported through the real exporter, run by real ONNX Runtime."""

from pathlib import Path

import pytest

pytest.importorskip("torch", reason="export needs the train extra")

from tiny_things import export, make_checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tiny_checkpoint) -> Path:
    return export(tiny_checkpoint, tmp_path_factory.mktemp("onnx") / "tiny.onnx")


@pytest.fixture(scope="session")
def tiny_gqa_model(tmp_path_factory) -> Path:
    """A tiny checkpoint with one key/value head for its two query heads (grouped-query attention), exported."""
    checkpoint = make_checkpoint(tmp_path_factory.mktemp("ckpt-gqa"), n_kv_head=1, cond_layers=True)
    return export(checkpoint, tmp_path_factory.mktemp("onnx") / "tiny-gqa.onnx")


@pytest.fixture(scope="session")
def tiny_gqa_op_model(tmp_path_factory, tiny_checkpoint) -> Path:
    """The tiny checkpoint exported with GroupQueryAttention (the cache layout of files exported before the
    MatMul attention)."""
    from affetto.export.export import export_checkpoint, grammar_walks
    from affetto.tokens.vocab import Vocabulary

    out = tmp_path_factory.mktemp("onnx") / "tiny-gqa-op.onnx"
    export_checkpoint(tiny_checkpoint, out, attention="gqa", sequences=grammar_walks(Vocabulary(), 2, 40))
    return out


@pytest.fixture(scope="session")
def tiny_kv8_model(tmp_path_factory, tiny_checkpoint) -> Path:
    """The tiny checkpoint exported with its KV cache in int8 (the MatMul attention's; scales calibrated on grammar
    walks)."""
    from affetto.export.export import export_checkpoint, grammar_walks
    from affetto.tokens.vocab import Vocabulary

    out = tmp_path_factory.mktemp("onnx") / "tiny-kv8.onnx"
    export_checkpoint(tiny_checkpoint, out, kv_int8=True, sequences=grammar_walks(Vocabulary(), 4, 64))
    return out


@pytest.fixture(scope="session")
def tiny_kv8_gqa_model(tmp_path_factory, tiny_checkpoint) -> Path:
    """The tiny checkpoint exported with GroupQueryAttention's int8 KV cache."""
    from affetto.export.export import export_checkpoint, grammar_walks
    from affetto.tokens.vocab import Vocabulary

    out = tmp_path_factory.mktemp("onnx") / "tiny-kv8-gqa.onnx"
    export_checkpoint(tiny_checkpoint, out, kv_int8=True, attention="gqa", sequences=grammar_walks(Vocabulary(), 4, 64))
    return out


@pytest.fixture(scope="session")
def tiny_int8_model(tmp_path_factory, tiny_checkpoint) -> Path:
    """The tiny checkpoint exported with int8 weights (activation scales calibrated at export)."""
    from affetto.export.export import export_checkpoint, grammar_walks
    from affetto.tokens.vocab import Vocabulary

    out = tmp_path_factory.mktemp("onnx") / "tiny-int8.onnx"
    export_checkpoint(tiny_checkpoint, out, int8=True, sequences=grammar_walks(Vocabulary(), 4, 64))
    return out
