"""Write the ONNX graph of an :class:`EmotionTransformer` from its trained weights.

Why not ``torch.onnx.export``: the exporters write the cache as ``Concat``
of past and new keys, so every decode step copies the whole cache and the
cost per token grows with the context. This module writes the same network
node by node around ONNX Runtime's fused ``com.microsoft.GroupQueryAttention``,
whose past and present buffers can be one preallocated tensor of
``max_len`` positions (bound once with IOBinding): a step writes its new keys
in place and reads only what it attends to. The PyTorch model stays the
reference: :mod:`affetto.export.parity` checks the graph against it.

Inputs and outputs (named dynamic dimensions in brackets)::

    tokens                       int64   [batch, sequence]
    cond                         float32 [batch, 4]
    seqlens_k                    int32   [batch]           total length - 1 per row
    total_sequence_length        int32   []                past + sequence
    past_key_values.{i}.key      float32 [batch, heads, max_sequence, head_size]
    past_key_values.{i}.value    (same)
 -> logits                       float32 [batch, sequence, vocab]
    present.{i}.key / .value     float32 [batch, heads, max_sequence, head_size]

The past buffers may also be passed at their used length (``past_sequence``);
the presents then come back one ``sequence`` longer, which the parity checks
use to compare with PyTorch's concatenating cache.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from affetto.models.transformer import EmotionTransformer

OPSET = 20  # LayerNormalization (17) and Gelu (20)
IR_VERSION = 10  # readable by ONNX Runtime 1.18 and newer
MS_DOMAIN = "com.microsoft"


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def weight(self, name: str, array: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, domain: str = "", name: str = "", **attrs):
        self._n += 1
        base = name or f"{op_type.lower()}_{self._n}"
        outputs = [f"{base}_out{i}" if n_out > 1 else f"{base}_out" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=base, domain=domain, **attrs))
        return outputs if n_out > 1 else outputs[0]

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray | None, name: str) -> str:
        w = self.weight(f"{name}.weight_t", weight.T)  # (in, out) so MatMul needs no Transpose
        y = self.op("MatMul", [x, w], name=f"{name}.matmul")
        if bias is not None:
            y = self.op("Add", [y, self.weight(f"{name}.bias", bias)], name=f"{name}.add")
        return y

    def layer_norm(self, x: str, sd: dict, name: str) -> str:
        return self.op(
            "LayerNormalization",
            [x, self.weight(f"{name}.weight", sd[f"{name}.weight"]), self.weight(f"{name}.bias", sd[f"{name}.bias"])],
            name=name, axis=-1, epsilon=1e-5,
        )


def build_graph(model: EmotionTransformer, metadata: dict[str, str] | None = None) -> onnx.ModelProto:
    """The ONNX model of ``model`` (fp32) with the I/O contract in the module docstring."""
    cfg = model.cfg
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    b = _Builder()
    H, hs, C = cfg.n_head, cfg.head_dim, cfg.d_model

    # Rows total - sequence ... total - 1 of the position table, as one Slice with 1-D bounds.
    seq_len = b.op("Slice", [b.op("Shape", ["tokens"], name="tokens_shape"), b.weight("c1", np.array([1], np.int64)),
                             b.weight("c2", np.array([2], np.int64))], name="seq_len")  # (1,)
    total = b.op("Reshape", [b.op("Cast", ["total_sequence_length"], name="total_i64", to=TensorProto.INT64),
                             b.weight("shape1", np.array([1], np.int64))], name="total_1d")  # (1,)
    start = b.op("Sub", [total, seq_len], name="past_len")  # (1,)

    tok = b.op("Gather", [b.weight("tok.weight", sd["tok.weight"]), "tokens"], name="tok_embed")  # (B, S, C)
    pos_table = b.weight("pos.weight", sd["pos.weight"])
    pos = b.op("Slice", [pos_table, start, total, b.weight("c0", np.array([0], np.int64))], name="pos_embed")  # (S, C)
    cond = b.op("MatMul", ["cond", b.weight("cond.weight_t", sd["cond.weight"].T)], name="cond_embed")  # (B, C)
    cond = b.op("Unsqueeze", [cond, b.weight("axis1", np.array([1], np.int64))], name="cond_unsq")  # (B, 1, C)
    x = b.op("Add", [b.op("Add", [tok, pos], name="embed_add"), cond], name="embed")  # (B, S, C)

    split_sizes = b.weight("qkv_split", np.array([C, C, C], np.int64))
    outputs_kv = []
    for i in range(cfg.n_layer):
        p = f"blocks.{i}"
        if cfg.cond_layers:
            c = b.op("MatMul", ["cond", b.weight(f"cond_layers.{i}", sd["cond_layers"][i])], name=f"{p}.cond")
            c = b.op("Unsqueeze", [c, "axis1"], name=f"{p}.cond_unsq")  # (B, 1, C)
            x = b.op("Add", [x, c], name=f"{p}.cond_add")
        h = b.layer_norm(x, sd, f"{p}.ln1")
        qkv = b.linear(h, sd[f"{p}.attn.qkv.weight"], sd[f"{p}.attn.qkv.bias"], f"{p}.attn.qkv")  # (B, S, 3C)
        q, k, v = b.op("Split", [qkv, split_sizes], n_out=3, name=f"{p}.attn.split", axis=-1)  # (B, S, C) each
        attn, present_k, present_v = (
            f"{p}.attn.gqa_out",
            f"present.{i}.key",
            f"present.{i}.value",
        )
        b.nodes.append(
            helper.make_node(
                "GroupQueryAttention",
                [q, k, v, f"past_key_values.{i}.key", f"past_key_values.{i}.value", "seqlens_k",
                 "total_sequence_length"],
                [attn, present_k, present_v],
                name=f"{p}.attn.gqa",
                domain=MS_DOMAIN,
                num_heads=H,
                kv_num_heads=H,
                scale=float(1.0 / np.sqrt(hs)),
            )
        )
        outputs_kv += [present_k, present_v]
        a = b.linear(attn, sd[f"{p}.attn.proj.weight"], sd[f"{p}.attn.proj.bias"], f"{p}.attn.proj")
        x = b.op("Add", [x, a], name=f"{p}.res1")
        h = b.layer_norm(x, sd, f"{p}.ln2")
        h = b.linear(h, sd[f"{p}.mlp.0.weight"], sd[f"{p}.mlp.0.bias"], f"{p}.mlp.0")
        h = b.op("Gelu", [h], name=f"{p}.mlp.gelu")
        h = b.linear(h, sd[f"{p}.mlp.2.weight"], sd[f"{p}.mlp.2.bias"], f"{p}.mlp.2")
        x = b.op("Add", [x, h], name=f"{p}.res2")
    x = b.layer_norm(x, sd, "ln_f")
    logits = b.op("MatMul", [x, b.weight("head.weight_t", sd["tok.weight"].T)], name="head")
    b.nodes.append(helper.make_node("Identity", [logits], ["logits"], name="logits_out"))

    f32, i64, i32 = TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32
    kv_shape = ["batch", H, "max_sequence", hs]
    inputs = [
        helper.make_tensor_value_info("tokens", i64, ["batch", "sequence"]),
        helper.make_tensor_value_info("cond", f32, ["batch", cfg.n_cond]),
        helper.make_tensor_value_info("seqlens_k", i32, ["batch"]),
        helper.make_tensor_value_info("total_sequence_length", i32, []),
    ]
    outputs = [helper.make_tensor_value_info("logits", f32, ["batch", "sequence", cfg.vocab_size])]
    for i in range(cfg.n_layer):
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(f"past_key_values.{i}.{kind}", f32, kv_shape))
            present_shape = ["batch", H, "present_sequence", hs]
            outputs.append(helper.make_tensor_value_info(f"present.{i}.{kind}", f32, present_shape))
    graph = helper.make_graph(b.nodes, "affetto", inputs, outputs, initializer=b.inits)
    onnx_model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)],
        ir_version=IR_VERSION,
        producer_name="affetto",
    )
    for key, value in (metadata or {}).items():
        onnx_model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    return onnx_model
