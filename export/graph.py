"""Write the ONNX graph of an :class:`EmotionTransformer` from its trained weights.

Why not ``torch.onnx.export``: the exporters write the cache as ``Concat``
of past and new keys, so every decode step copies the whole cache and the
cost per token grows with the context. This module writes the same network
node by node around ONNX Runtime's fused ``com.microsoft.GroupQueryAttention``,
whose past and present buffers can be one preallocated tensor of
``max_len`` positions (bound once with IOBinding): a step writes its new keys
in place and reads only what it attends to. Residual sums ride in
``SkipLayerNormalization`` and the MLP's first bias in ``BiasGelu``, and the
capsule's per-block embeddings come from one MatMul: 71 nodes where the
plain writing had 95, a few per cent a step at short contexts. The PyTorch
model stays the reference: :mod:`affetto.export.parity` checks the graph
against it.

The two rows of classifier-free guidance (the conditioned and the
unconditioned one) run as one batch of ``ROWS`` through the network, and as
the two halves of the attention heads of a single sequence through
``GroupQueryAttention`` (row r's head h is head ``r * heads + h``): the op
takes a multi-token step on top of a cache only at batch 1, and the engine
feeds its candidate bars as several tokens per step, side by side in the
sequence, all reading the one cache of the phrase before them.
``attention_bias`` hides from each token the keys of the other candidates
(0 where it may look, -inf elsewhere; the causal mask still applies), and
``position_ids`` gives each token its position in its own bar, so that the
candidates' tokens of one step share a position.

Inputs and outputs (named dynamic dimensions in brackets; R = ``ROWS``,
H = heads)::

    tokens                       int64   [R, sequence]
    cond                         float32 [R, 4]             one capsule per row
    position_ids                 int64   [1, sequence]      the rows share positions
    attention_bias               float32 [1, 1, sequence, total_sequence_length]
    seqlens_k                    int32   [1]                total length - 1
    total_sequence_length        int32   []                 past + sequence
    past_key_values.{i}.key      float32 [1, R * KV, max_sequence, head_size]   KV: key/value heads
    past_key_values.{i}.value    (same)
 -> logits                       float32 [R, sequence, vocab]
    present.{i}.key / .value     float32 [1, R * KV, max_sequence, head_size]

The past buffers may also be passed at their used length (``past_sequence``);
the presents then come back one ``sequence`` longer, which the parity checks
use to compare with PyTorch's concatenating cache. ``max_sequence`` counts
cache slots, not positions: candidates' tokens take a slot each.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from affetto.models.transformer import EmotionTransformer

OPSET = 20  # LayerNormalization (17) and Gelu (20)
IR_VERSION = 10  # readable by ONNX Runtime 1.18 and newer
MS_DOMAIN = "com.microsoft"
ROWS = 2  # the conditioned and the unconditioned row of classifier-free guidance


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
    KV = cfg.kv_heads  # key/value heads per row (grouped-query attention when fewer than H)

    R, L = ROWS, cfg.n_layer
    # The hidden states are (S, R, C) throughout: a step's queries, keys and values are then already the
    # (1, S, R*C) sequence of R*H heads the attention takes, with no copy. Every bias after a MatMul and
    # every residual sum rides in a fused op (SkipLayerNormalization, BiasGelu): the graph's cost at short
    # contexts is mostly its count of nodes.
    tok_table = b.weight("tok.weight", sd["tok.weight"])
    tokens = b.op("Transpose", ["tokens"], name="tokens_t", perm=[1, 0])  # (S, R)
    tok = b.op("Gather", [tok_table, tokens], name="tok_embed")  # (S, R, C)
    positions = b.op("Reshape", ["position_ids", b.weight("column", np.array([-1, 1], np.int64))],
                     name="positions")  # (S, 1)
    pos = b.op("Gather", [b.weight("pos.weight", sd["pos.weight"]), positions], name="pos_embed")  # (S, 1, C)
    # The capsule's embedding and its per-block embeddings are linear in it: the first block's joins the
    # input embedding's weight, the others come from one MatMul, (R, C) each, broadcast over S.
    cond_w = sd["cond.weight"].T + (sd["cond_layers"][0] if cfg.cond_layers else 0.0)
    cond = b.op("MatMul", ["cond", b.weight("cond.weight_t", cond_w)], name="cond_embed")  # (R, C)
    x = b.op("Add", [b.op("Add", [tok, pos], name="embed_add"), cond], name="embed")  # (S, R, C)
    per_block: list[str | None] = [None] * L
    if cfg.cond_layers and L > 1:
        later = np.concatenate(list(sd["cond_layers"][1:]), axis=1)  # (4, (L - 1) * C)
        c = b.op("MatMul", ["cond", b.weight("cond_layers_t", later)], name="cond_layers")  # (R, (L-1) C)
        split = b.op("Split", [c, b.weight("cond_split", np.full(L - 1, C, np.int64))], n_out=L - 1,
                     name="cond_layers_split", axis=-1)
        per_block[1:] = [split] if L == 2 else split

    def skip_norm(x: str, skip: str, bias: str | None, ln: str) -> tuple[str, str]:
        """LayerNorm ``ln`` of x + skip (+ bias), and that sum."""
        base = f"{ln}.skip"
        outs = [f"{base}_out", "", "", f"{base}_sum"]
        inputs = [x, skip, b.weight(f"{ln}.weight", sd[f"{ln}.weight"]), b.weight(f"{ln}.bias", sd[f"{ln}.bias"])]
        if bias is not None:
            inputs.append(bias)
        b.nodes.append(helper.make_node("SkipLayerNormalization", inputs, outs, name=base, domain=MS_DOMAIN,
                                        epsilon=1e-5))
        return outs[0], outs[3]

    split_sizes = b.weight("qkv_split", np.array([C, KV * hs, KV * hs], np.int64))
    heads_shape = b.weight("heads_shape", np.array([1, -1, R * C], np.int64))  # (S, R, C) -> (1, S, R*C)
    kv_heads_shape = b.weight("kv_heads_shape", np.array([1, -1, R * KV * hs], np.int64))  # (S, R, KV*hs) -> (1, S, ..)
    rows_shape = b.weight("rows_shape", np.array([-1, R, C], np.int64))  # (1, S, R*C) -> (S, R, C)
    outputs_kv = []
    pending: tuple[str, str] | None = None  # the last block's MLP output and its bias, not yet added to x
    for i in range(L):
        p = f"blocks.{i}"
        if pending is None:
            h = b.layer_norm(x, sd, f"{p}.ln1")
        else:
            skip = pending[0] if per_block[i] is None else b.op("Add", [pending[0], per_block[i]],
                                                                  name=f"{p}.cond_add")
            h, x = skip_norm(x, skip, pending[1], f"{p}.ln1")
        qkv = b.linear(h, sd[f"{p}.attn.qkv.weight"], sd[f"{p}.attn.qkv.bias"], f"{p}.attn.qkv")  # (S, R, 3C)
        q, k, v = b.op("Split", [qkv, split_sizes], n_out=3, name=f"{p}.attn.split", axis=-1)  # (S, R, C|KV*hs)
        q, k, v = (b.op("Reshape", [t, shape], name=f"{p}.attn.{n}_heads")  # (1, S, R*C | R*KV*hs)
                   for t, n, shape in ((q, "q", heads_shape), (k, "k", kv_heads_shape), (v, "v", kv_heads_shape)))
        attn, present_k, present_v = (
            f"{p}.attn.gqa_out",
            f"present.{i}.key",
            f"present.{i}.value",
        )
        b.nodes.append(
            helper.make_node(
                "GroupQueryAttention",
                [q, k, v, f"past_key_values.{i}.key", f"past_key_values.{i}.value", "seqlens_k",
                 "total_sequence_length", "", "", "", "attention_bias"],
                [attn, present_k, present_v],
                name=f"{p}.attn.gqa",
                domain=MS_DOMAIN,
                num_heads=R * H,
                kv_num_heads=R * KV,  # row r's query head h reads its key/value head r*KV + h // (H // KV)
                scale=float(1.0 / np.sqrt(hs)),
            )
        )
        outputs_kv += [present_k, present_v]
        attn = b.op("Reshape", [attn, rows_shape], name=f"{p}.attn.rows")  # (S, R, C)
        a = b.linear(attn, sd[f"{p}.attn.proj.weight"], None, f"{p}.attn.proj")
        h, x = skip_norm(x, a, b.weight(f"{p}.attn.proj.bias", sd[f"{p}.attn.proj.bias"]), f"{p}.ln2")
        h = b.linear(h, sd[f"{p}.mlp.0.weight"], None, f"{p}.mlp.0")
        h = b.op("BiasGelu", [h, b.weight(f"{p}.mlp.0.bias", sd[f"{p}.mlp.0.bias"])], domain=MS_DOMAIN,
                 name=f"{p}.mlp.gelu")
        h = b.linear(h, sd[f"{p}.mlp.2.weight"], None, f"{p}.mlp.2")
        pending = (h, b.weight(f"{p}.mlp.2.bias", sd[f"{p}.mlp.2.bias"]))
    assert pending is not None
    x, _ = skip_norm(x, pending[0], pending[1], "ln_f")
    logits = b.op("MatMul", [x, b.weight("head.weight_t", sd["tok.weight"].T)], name="head")  # (S, R, V)
    b.nodes.append(helper.make_node("Transpose", [logits], ["logits"], name="logits_out", perm=[1, 0, 2]))

    f32, i64, i32 = TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32
    kv_shape = [1, ROWS * KV, "max_sequence", hs]
    inputs = [
        helper.make_tensor_value_info("tokens", i64, [ROWS, "sequence"]),
        helper.make_tensor_value_info("cond", f32, [ROWS, cfg.n_cond]),
        helper.make_tensor_value_info("position_ids", i64, [1, "sequence"]),
        helper.make_tensor_value_info("attention_bias", f32, [1, 1, "sequence", "total_sequence_length"]),
        helper.make_tensor_value_info("seqlens_k", i32, [1]),
        helper.make_tensor_value_info("total_sequence_length", i32, []),
    ]
    outputs = [helper.make_tensor_value_info("logits", f32, [ROWS, "sequence", cfg.vocab_size])]
    for i in range(cfg.n_layer):
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(f"past_key_values.{i}.{kind}", f32, kv_shape))
            present_shape = [1, ROWS * KV, "present_sequence", hs]
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


def with_int8_kv(model: onnx.ModelProto, scales: list[tuple[np.ndarray, np.ndarray]]) -> onnx.ModelProto:
    """``model`` with its KV cache in int8: GroupQueryAttention quantises keys and values as it writes them
    and reads them back without a float copy of the cache.

    ``scales`` holds, per layer, the key and the value scale per channel, shaped (R * KV * head_size,):
    a channel's largest magnitude over 127 (see :func:`affetto.export.export.calibrate_kv`). The cache
    inputs and outputs become int8; nothing else in the contract changes.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())  # a copy: the fp32 graph stays as it was
    graph = model.graph
    attention = [node for node in graph.node if node.op_type == "GroupQueryAttention"]
    if len(attention) != len(scales):
        raise ValueError(f"{len(scales)} layers of scales for a graph of {len(attention)} attention layers")
    for layer, (node, (k_scale, v_scale)) in enumerate(zip(attention, scales)):
        node.attribute.extend([helper.make_attribute("k_quant_type", "PER_CHANNEL"),
                               helper.make_attribute("v_quant_type", "PER_CHANNEL"),
                               helper.make_attribute("kv_cache_bit_width", 8)])
        while len(node.input) < 12:  # (..., attention_bias, head_sink): the scales come after them
            node.input.append("")
        for kind, scale in (("k", k_scale), ("v", v_scale)):
            name = f"blocks.{layer}.attn.{kind}_scale"
            graph.initializer.append(numpy_helper.from_array(np.asarray(scale, np.float32).reshape(-1), name))
            node.input.append(name)
    for value in [*graph.input, *graph.output]:
        if value.name.startswith(("past_key_values.", "present.")):
            value.type.tensor_type.elem_type = TensorProto.INT8
    return model
