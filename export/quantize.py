"""int8 weights with calibrated activation scales: every row of a step is quantised alone.

Each large MatMul of the fp32 graph (a 2-D weight initializer) becomes

    QuantizeLinear(x, a_scale, a_zero) -> MatMulIntegerToFloat(x_q, w_q, a_scale, w_scale, a_zero)

with ``w_q`` the weight in int8, one scale per output column, and ``x``'s
scale and zero point fixed at export from the values ``x`` took on
calibration sequences (uint8, asymmetric). ONNX Runtime's CPU provider runs
MatMulIntegerToFloat on the same integer kernels as its dynamic
quantisation, but no statistic is taken over the batch at run time: a row's
logits do not depend on the rows decoded beside it, so candidates drawn
side by side give the logits they give alone, as in fp32 (dynamic
quantisation shares one activation scale over the whole batch, and moved a
candidate's logits by up to 0.26 with its batchmates). The weights keep 7
bits of magnitude (-63..63): x86 processors without VNNI multiply uint8 by
int8 in pairs summed into 16 bits, which 255 x 127 x 2 would overflow and
255 x 63 x 2 does not.

A value outside its calibrated range is clipped to it; the ranges are
widened by ``MARGIN`` over what the calibration saw. A bias Add that
directly follows a quantised MatMul becomes the product's bias input.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MARGIN = 1.1  # calibrated ranges widened by this much
WEIGHT_MAX = 63  # 7 bits of magnitude (see the module docstring)
MIN_ROWS = 16  # MatMuls over fewer input features (the capsule's 4-value projections) stay fp32: nothing to gain
METHOD = ("int8 weights (7 bits of magnitude, per output column) and uint8 activations with scales calibrated "
          "at export, MatMulIntegerToFloat; rows independent")


def quantizable(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The MatMuls whose second input is a 2-D float weight over at least ``MIN_ROWS`` input features."""
    inits = {i.name: i for i in model.graph.initializer}
    out = []
    for node in model.graph.node:
        if node.op_type != "MatMul" or node.domain not in ("", "ai.onnx"):
            continue
        w = inits.get(node.input[1])
        if w is not None and len(w.dims) == 2 and w.data_type == TensorProto.FLOAT and w.dims[0] >= MIN_ROWS:
            out.append(node)
    return out


def activation_ranges(model: onnx.ModelProto, feeds: Iterable[dict[str, np.ndarray]]) -> dict[str, tuple[float, float]]:
    """The least and greatest value each quantisable MatMul's input took over ``feeds`` (runs of the fp32 graph)."""
    names = sorted({node.input[0] for node in quantizable(model)})
    if not names:
        return {}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    for name in names:
        if name not in known:
            probe.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    from affetto.export.parity import session as cpu_session

    session = cpu_session(probe.SerializeToString(), optimized=False)  # the values as the graph writes them
    lo = dict.fromkeys(names, np.inf)
    hi = dict.fromkeys(names, -np.inf)
    runs = 0
    for feed in feeds:
        for name, value in zip(names, session.run(names, feed)):
            lo[name] = min(lo[name], float(value.min()))
            hi[name] = max(hi[name], float(value.max()))
        runs += 1
    if not runs:
        raise ValueError("no calibration runs: the activation ranges need at least one")
    return {name: (lo[name], hi[name]) for name in names}


def _activation_params(lo: float, hi: float) -> tuple[np.float32, np.uint8]:
    lo, hi = min(lo * MARGIN, 0.0), max(hi * MARGIN, 0.0)  # zero stays exact
    scale = max(hi - lo, 1e-8) / 255.0
    zero = int(np.clip(round(-lo / scale), 0, 255))
    return np.float32(scale), np.uint8(zero)


def quantize_weight(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``w`` (K, N) as int8 with one scale per column: ``w ~ w_q * scale``."""
    scale = np.maximum(np.abs(w).max(axis=0), 1e-12) / WEIGHT_MAX  # (N,)
    w_q = np.clip(np.rint(w / scale), -WEIGHT_MAX, WEIGHT_MAX).astype(np.int8)
    return w_q, scale.astype(np.float32)


def _key(node: onnx.NodeProto) -> str:
    """A node's name, or its first output's where it has none: the prefix of what replaces it."""
    return node.name or node.output[0]


def _with_biases_inside(nodes: list[onnx.NodeProto], inits: dict[str, onnx.TensorProto],
                        outputs: set[str]) -> list[onnx.NodeProto]:
    """``nodes`` with each bias Add that directly follows an integer product (its other input a 1-D float
    initializer, the product read by nothing else) taken into the product as its bias input: one node less."""
    readers: dict[str, int] = {}
    for node in nodes:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    products = {node.output[0]: node for node in nodes if node.op_type == "MatMulIntegerToFloat"}
    out = []
    for node in nodes:
        product = products.get(node.input[0]) if node.op_type == "Add" and len(node.input) == 2 else None
        bias = inits.get(node.input[1]) if product is not None else None
        if (product is None or bias is None or len(bias.dims) != 1 or bias.data_type != TensorProto.FLOAT
                or readers[node.input[0]] != 1 or node.input[0] in outputs):
            out.append(node)
            continue
        while len(product.input) < 6:  # (A, B, a_scale, b_scale, a_zero_point, b_zero_point, bias)
            product.input.append("")
        product.input.append(node.input[1])
        product.output[0] = node.output[0]  # the bias is still read (by the product): its initializer stays
    return out


def quantize_int8(model: onnx.ModelProto, feeds: Iterable[dict[str, np.ndarray]]) -> onnx.ModelProto:
    """``model`` (fp32) with its large MatMuls in int8, activation scales calibrated on ``feeds``."""
    ranges = activation_ranges(model, feeds)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inits = {i.name: i for i in graph.initializer}
    targets = {_key(node) for node in quantizable(out)}
    used_weights: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            used_weights[name] = used_weights.get(name, 0) + 1
    nodes: list[onnx.NodeProto] = []
    added: list[onnx.TensorProto] = []
    quantized_inputs: dict[str, str] = {}  # an activation quantised once serves every MatMul that reads it
    for node in graph.node:
        base = _key(node)
        if base not in targets:
            nodes.append(node)
            continue
        x, w_name = node.input[0], node.input[1]
        if x not in quantized_inputs:
            a_scale, a_zero = _activation_params(*ranges[x])
            added += [numpy_helper.from_array(np.array(a_scale, np.float32), f"{base}.x_scale"),
                      numpy_helper.from_array(np.array(a_zero, np.uint8), f"{base}.x_zero")]
            nodes.append(helper.make_node("QuantizeLinear", [x, f"{base}.x_scale", f"{base}.x_zero"], [f"{base}.x_q"],
                                          name=f"{base}.quantize"))
            quantized_inputs[x] = base
        first = quantized_inputs[x]
        w_q, w_scale = quantize_weight(numpy_helper.to_array(inits[w_name]))
        added += [numpy_helper.from_array(w_q, f"{base}.w_q"), numpy_helper.from_array(w_scale, f"{base}.w_scale")]
        nodes.append(helper.make_node(
            "MatMulIntegerToFloat",
            [f"{first}.x_q", f"{base}.w_q", f"{first}.x_scale", f"{base}.w_scale", f"{first}.x_zero"],
            list(node.output), name=f"{base}.int8", domain="com.microsoft"))
        used_weights[w_name] -= 1
    nodes = _with_biases_inside(nodes, inits, {o.name for o in graph.output})
    del graph.node[:]
    graph.node.extend(nodes)
    kept = [i for i in graph.initializer if used_weights.get(i.name, 1) > 0]
    del graph.initializer[:]
    graph.initializer.extend(kept + added)
    if not any(o.domain == "com.microsoft" for o in out.opset_import):
        out.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return out
