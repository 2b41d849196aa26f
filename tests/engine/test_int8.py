"""int8 weights with activation scales calibrated at export (affetto.export.quantize)."""

import numpy as np
import onnx
import pytest

from affetto.errors import ConfigError
from affetto.export.quantize import WEIGHT_MAX, quantizable, quantize_weight
from affetto.manifest import read_manifest
from affetto.runtime.assets import DEFAULT_INT8_NAME, DEFAULT_MODEL_NAME, default_model_path


def test_the_shipped_lead_model_runs_in_int8_on_the_cpu_and_in_fp32_on_a_gpu():
    assert default_model_path().name == DEFAULT_INT8_NAME
    assert default_model_path(provider="cpu").name == DEFAULT_INT8_NAME
    assert default_model_path(provider="cuda").name == DEFAULT_MODEL_NAME
    assert default_model_path("fp32").name == DEFAULT_MODEL_NAME
    assert default_model_path("int8", provider="cuda").name == DEFAULT_INT8_NAME
    with pytest.raises(ConfigError, match="precision must be one of auto, fp32, int8"):
        default_model_path("fp16")
    int8, fp32 = read_manifest(default_model_path("int8")), read_manifest(default_model_path("fp32"))
    assert (int8["dtype"], fp32["dtype"]) == ("int8", "fp32")
    # the CPU's model is the fp32 model's guidance-distilled student: the same vocabulary and training data,
    # one row whose capsule carries the guidance scale
    assert int8["vocab"] == fp32["vocab"] and int8["training"]["data"] == fp32["training"]["data"]
    assert int8["distillation"]["teacher"] == DEFAULT_MODEL_NAME.removesuffix(".onnx")
    assert (int8["kv_cache"]["rows"], fp32["kv_cache"]["rows"]) == (1, 2)
    assert int8["conditioning"]["guidance_channel"]["index"] == 4
    assert int8["quantization"]["top1_agreement"] >= 0.98
    assert (int8["kv_cache"]["dtype"], fp32["kv_cache"].get("dtype", "float32")) == ("int8", "float32")
    assert int8["kv_cache"]["top1_agreement"] >= 0.98  # decoding through its int8 cache, against fp32


@pytest.mark.torch
def test_the_shipped_int8_model_is_its_shipped_checkpoint_in_int8():
    import torch

    from affetto.export.export import grammar_walks
    from affetto.models.checkpoint import load_checkpoint
    from affetto.runtime.assets import DISTILLED_CHECKPOINT, asset_path
    from affetto.runtime.engine import Engine
    from affetto.tokens.vocab import Vocabulary

    model, meta = load_checkpoint(asset_path(DISTILLED_CHECKPOINT))
    engine = Engine(default_model_path("int8"))
    assert meta["model"] == engine.manifest["model"]
    seqs, cond = grammar_walks(Vocabulary.from_dict(meta["vocab"]), 2, 96, seed=11)
    same = total = 0
    for seq, c in zip(seqs, cond):
        capsule = (*map(float, c), 0.125)  # guidance 1.5
        engine.cache.condition((capsule,))
        engine.cache.reset([int(t) for t in seq])
        engine.cache.prefill()
        with torch.no_grad():
            logits, _ = model(torch.tensor(seq[None]), torch.tensor([capsule]))
        same += int(engine.cache.logits[0].argmax() == int(logits[0, -1].argmax()))
        total += 1
        assert np.abs(engine.cache.logits[0] - logits[0, -1].numpy()).max() < 1.0  # int8's error, not another model
    assert same == total


@pytest.mark.torch
def test_weights_keep_seven_bits_and_one_scale_per_column():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(48, 5)).astype(np.float32) * np.array([0.01, 0.1, 1, 10, 100], np.float32)
    w_q, scale = quantize_weight(w)
    assert w_q.dtype == np.int8 and scale.shape == (5,)
    assert np.abs(w_q).max() == WEIGHT_MAX  # each column's largest weight reaches the top, none passes it
    assert np.all(np.abs(w_q.astype(np.float32) * scale - w) <= scale / 2 + 1e-6)


@pytest.mark.torch
def test_the_int8_export_quantises_every_large_matmul_once_and_leaves_no_dynamic_statistic(tiny_model,
                                                                                           tiny_int8_model):
    fp32, int8 = onnx.load(tiny_model), onnx.load(tiny_int8_model)
    ops = [node.op_type for node in int8.graph.node]
    assert ops.count("MatMulIntegerToFloat") == len(quantizable(fp32)) > 0
    assert "DynamicQuantizeLinear" not in ops and "MatMulInteger" not in ops
    # an activation read by several MatMuls is quantised once
    assert ops.count("QuantizeLinear") == len({node.input[0] for node in quantizable(fp32)})
    assert ops.count("MatMul") == len([n for n in fp32.graph.node if n.op_type == "MatMul"]) - len(quantizable(fp32))
    manifest = read_manifest(tiny_int8_model)
    assert manifest["dtype"] == "int8"
    assert "calibrated" in manifest["quantization"]["method"]
    assert manifest["quantization"]["top1_agreement"] >= 0.9


@pytest.mark.torch
def test_a_bias_after_an_integer_product_rides_inside_it(tiny_model, tiny_int8_model):
    """The bias Adds that follow the large MatMuls of the fp32 graph (the queries', keys' and values', the
    attention's output, the MLP's last, the head's) are the integer products' bias inputs in int8: no Add
    reads an integer product's output with a bias, and the int8 graph has as many fewer Adds."""
    fp32, int8 = onnx.load(tiny_model), onnx.load(tiny_int8_model)
    weights = {i.name for i in fp32.graph.initializer}
    matmuls = {node.output[0] for node in quantizable(fp32)}
    biases = [n for n in fp32.graph.node if n.op_type == "Add" and n.input[0] in matmuls and n.input[1] in weights]
    assert len(biases) >= 4  # one a layer's queries, keys and values at least, and the head's
    products = [n for n in int8.graph.node if n.op_type == "MatMulIntegerToFloat"]
    with_bias = [n for n in products if len(n.input) == 7 and n.input[6]]
    assert len(with_bias) == len(biases)
    outputs = {n.output[0] for n in products}
    assert not [n for n in int8.graph.node if n.op_type == "Add" and n.input[0] in outputs]
    count = [sum(n.op_type == "Add" for n in g.graph.node) for g in (fp32, int8)]
    assert count[1] == count[0] - len(biases)


def test_the_lead_graph_normalises_rows_with_instance_normalization(tiny_model):
    """Layer norms are InstanceNormalization over each row (their weights folded into the linear layers they
    feed): ONNX Runtime's LayerNormalization costs about ten times as much a row."""
    graph = onnx.load(tiny_model).graph
    manifest = read_manifest(tiny_model)
    ops = [node.op_type for node in graph.node]
    assert ops.count("InstanceNormalization") == 2 * manifest["model"]["n_layer"] + 1
    assert "LayerNormalization" not in ops and "SkipLayerNormalization" not in ops
