"""Write the ONNX graph of an :class:`EmotionTransformer` from its trained weights.

Why not ``torch.onnx.export``: the exporters write the cache as ``Concat``
of past and new keys, so every decode step copies the whole cache and the
cost per token grows with the context. This module writes the same network
node by node, around one of two attentions (``attention=``):

* ``matmul`` (the default): the attention as MatMuls over a cache the
  engine keeps and binds at its used length (rounded up, see
  :class:`affetto.runtime.session.CachedSession`). The query heads that
  share a key/value head are the rows of one product, so a step reads each
  cached key once; the step's own keys are attended beside the cache and
  returned in ``present``, which the engine writes into its cache after the
  run. On one CPU thread a step of the shipped model costs 0.8x
  GroupQueryAttention's at 100 tokens of context and 0.5-0.7x at 1,000.
  Its cache may be int8 (``kv_scales``, :class:`Int8Cache`): the products
  that read it are integer ones, and the cache reads a quarter of the bytes.
* ``gqa``: ONNX Runtime's fused ``com.microsoft.GroupQueryAttention``,
  whose past and present buffers are one preallocated tensor of
  ``max_len`` slots, written in place by the op, in int8 too with
  :func:`with_int8_kv`; graphs exported before the MatMul attention have
  it, and the engine runs both.

Layer norms are ``InstanceNormalization`` over each row, their weights and
biases folded into the linear layers they feed (:func:`fold_norm`): ONNX
Runtime's ``LayerNormalization`` and ``SkipLayerNormalization`` cost about
ten times as much a row, which a step of several candidates pays. The MLP's
first bias rides in ``BiasGelu``, and the capsule's per-block embeddings
come from one MatMul. The PyTorch model stays the reference:
:mod:`affetto.export.parity` checks the graph against it.

The two rows of classifier-free guidance (the conditioned and the
unconditioned one) run as one batch of ``ROWS`` through the network. The
engine feeds its candidate bars as several tokens per step, side by side in
the sequence, all reading the one cache of the phrase before them;
``attention_bias`` hides from each token the keys of the other candidates
(0 where it may look, -inf elsewhere), and ``position_ids`` gives each
token its position in its own bar, so that the candidates' tokens of one
step share a position.

Inputs and outputs of the ``matmul`` graph (named dynamic dimensions in
brackets; R = ``ROWS``, N = R * KV key/value heads, G = query heads per
key/value head, L = layers)::

    tokens                       int64   [R, sequence]
    cond                         float32 [R, 4]             one capsule per row
    position_ids                 int64   [1, sequence]      the rows share positions
    attention_bias               float32 [sequence * G, slots + sequence]
                                 row s * G + g: token s's bias over the cache's slots, then over the
                                 step's own tokens (no mask is built in: causality is in the bias)
    attention_split              int64   [2]                (slots, sequence)
    past_key_values.{i}.key      float32 [N, head_size, slots]   keys, transposed (int8 with kv_scales)
    past_key_values.{i}.value    float32 [N, slots, head_size]   (int8 with kv_scales)
 -> logits                       float32 [R, sequence, vocab]
    present                      float32 [2 * L * N, sequence, head_size]   the step's keys and values:
                                 layer i's keys are heads 2 i N .. (2 i + 1) N - 1, its values the next N
                                 (int8 with kv_scales)

and of the ``gqa`` graph (row r's head h is head ``r * heads + h`` of one
sequence: the op takes a multi-token step on top of a cache only at batch 1)::

    tokens, cond, position_ids   as above
    attention_bias               float32 [1, 1, sequence, total_sequence_length]   (the op adds causality)
    seqlens_k                    int32   [1]                total length - 1
    total_sequence_length        int32   []                 past + sequence
    past_key_values.{i}.key      float32 [1, R * KV, max_sequence, head_size]
    past_key_values.{i}.value    (same)
 -> logits                       float32 [R, sequence, vocab]
    present.{i}.key / .value     float32 [1, R * KV, max_sequence, head_size]

The gqa graph's past buffers may also be passed at their used length
(``past_sequence``); the presents then come back one ``sequence`` longer,
which the parity checks use to compare with PyTorch's concatenating cache.
Cache sizes count slots, not positions: candidates' tokens take a slot each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


ATTENTIONS = ("matmul", "gqa")


def fold_norm(sd: dict, ln: str, weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The linear layer (``weight`` (out, in), ``bias``) after layer norm ``ln``, with the norm's weight and bias
    folded in: ``(n * g + beta) W^T + b = n (W * g)^T + (W beta + b)`` for the normalised rows ``n``."""
    g, beta = sd[f"{ln}.weight"].astype(np.float64), sd[f"{ln}.bias"].astype(np.float64)
    w = weight.astype(np.float64)
    return (w * g[None, :]).astype(np.float32), (w @ beta + bias.astype(np.float64)).astype(np.float32)


def build_graph(model: EmotionTransformer, metadata: dict[str, str] | None = None, *,
                attention: str = "matmul", rows: int = ROWS,
                kv_scales: Sequence[Int8Cache] | None = None) -> onnx.ModelProto:
    """The ONNX model of ``model`` (fp32) with the I/O contract of ``attention`` in the module docstring, running
    ``rows`` capsules at once (1: a model that needs no unconditioned row, such as a guidance-distilled one).

    ``kv_scales`` (the MatMul attention only) keeps the cache in int8, a layer's :class:`Int8Cache` each.
    The keys' scales ride in the weights (the queries are multiplied by them, the keys divided, so their
    product is unchanged and a cached key is its int8 value); the values' scale is the per-column scale of
    the product that reads the cached values. Both products read int8 (``MatMulIntegerToFloat``), their other
    side quantised with scales that depend on no other row or candidate: the queries with the scale calibrated
    at export, each query's attention weights over the cache divided by their largest first (so that a
    diffuse attention keeps its resolution). The step's own keys and values are attended in fp32, and
    ``present`` comes back in int8.
    """
    if attention not in ATTENTIONS:
        raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}, got {attention!r}")
    if rows < 1:
        raise ValueError(f"a graph runs at least one row, got {rows}")
    cfg = model.cfg
    if kv_scales is not None:
        if attention != "matmul":
            raise ValueError("kv_scales is the MatMul attention's int8 cache; GroupQueryAttention's is with_int8_kv")
        if len(kv_scales) != cfg.n_layer or any(np.shape(c.keys) != (cfg.head_dim,) or np.shape(c.values)
                                                != (cfg.head_dim,) for c in kv_scales):
            raise ValueError(f"kv_scales needs {cfg.n_layer} layers of key and value scales of {cfg.head_dim} "
                             "channels")
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    b = _Builder()
    H, hs, C = cfg.n_head, cfg.head_dim, cfg.d_model
    KV = cfg.kv_heads  # key/value heads per row (grouped-query attention when fewer than H)
    R, L = rows, cfg.n_layer
    matmul = attention == "matmul"
    # The hidden states are (R, S, C) for the MatMul attention (a row's queries are then already the rows of
    # its products) and (S, R, C) for GroupQueryAttention (its (1, S, R*C) sequence of R*H heads, no copy).
    # The MLP's first bias rides in BiasGelu; the other biases after MatMuls are Adds that follow them directly,
    # which int8 export folds into its integer products. The graph's cost at short contexts is mostly its count
    # of nodes, and per row of a step, its layer norms (below).
    tok_table = b.weight("tok.weight", sd["tok.weight"])
    if matmul:
        tok = b.op("Gather", [tok_table, "tokens"], name="tok_embed")  # (R, S, C)
        pos = b.op("Gather", [b.weight("pos.weight", sd["pos.weight"]), "position_ids"], name="pos_embed")  # (1, S, C)
        capsule = b.op("Reshape", ["cond", b.weight("cond_rows", np.array([R, 1, -1], np.int64))],
                       name="cond_rows")  # (R, 1, 4): broadcast over S
    else:
        tokens = b.op("Transpose", ["tokens"], name="tokens_t", perm=[1, 0])  # (S, R)
        tok = b.op("Gather", [tok_table, tokens], name="tok_embed")  # (S, R, C)
        positions = b.op("Reshape", ["position_ids", b.weight("column", np.array([-1, 1], np.int64))],
                         name="positions")  # (S, 1)
        pos = b.op("Gather", [b.weight("pos.weight", sd["pos.weight"]), positions], name="pos_embed")  # (S, 1, C)
        capsule = "cond"  # (R, 4): its (R, C) embeddings broadcast over S
    # The capsule's embedding and its per-block embeddings are linear in it: the first block's joins the
    # input embedding's weight, the others come from one MatMul.
    cond_w = sd["cond.weight"].T + (sd["cond_layers"][0] if cfg.cond_layers else 0.0)
    cond = b.op("MatMul", [capsule, b.weight("cond.weight_t", cond_w)], name="cond_embed")
    x = b.op("Add", [b.op("Add", [tok, pos], name="embed_add"), cond], name="embed")
    per_block: list[str | None] = [None] * L
    if cfg.cond_layers and L > 1:
        later = np.concatenate(list(sd["cond_layers"][1:]), axis=1)  # (4, (L - 1) * C)
        c = b.op("MatMul", [capsule, b.weight("cond_layers_t", later)], name="cond_layers")
        split = b.op("Split", [c, b.weight("cond_split", np.full(L - 1, C, np.int64))], n_out=L - 1,
                     name="cond_layers_split", axis=-1)
        per_block[1:] = [split] if L == 2 else split

    # Layer norms as InstanceNormalization over each row's C features (the rows are its channels, given unit
    # scales and zero shifts made once a run), each norm's weight and bias folded into the linear layer it
    # feeds: ONNX Runtime's LayerNormalization and SkipLayerNormalization cost about 1.2 us a row on one
    # thread, InstanceNormalization a tenth of that, which is what a step of several candidates pays per row.
    rows_of = b.op("Shape", [x], name="norm_channels", start=1, end=2)
    unit = b.op("ConstantOfShape", [rows_of], name="norm_unit",
                value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]))
    zero = b.op("ConstantOfShape", [rows_of], name="norm_zero",
                value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]))

    def norm(t: str, ln: str) -> str:
        """``ln``'s normalisation of each row of ``t``, without its weight and bias (see :func:`fold_norm`)."""
        return b.op("InstanceNormalization", [t, unit, zero], name=f"{ln}.norm", epsilon=1e-5)

    def residual(x: str, skip: str, ln: str) -> tuple[str, str]:
        """The residual sum x + skip, and its normalisation by ``ln``."""
        total = b.op("Add", [x, skip], name=f"{ln}.residual")
        return norm(total, ln), total

    split_sizes = b.weight("qkv_split", np.array([C, KV * hs, KV * hs], np.int64))
    attend = (_MatMulAttention(b, R, H, KV, hs, kv_scales) if matmul else _GroupQueryAttention(b, R, H, KV, hs))
    pending: tuple[str, str] | None = None  # the last block's MLP output and its bias, not yet added to x
    for i in range(L):
        p = f"blocks.{i}"
        if pending is None:
            h = norm(x, f"{p}.ln1")
        else:
            skip = b.op("Add", [pending[0], pending[1]], name=f"{p}.mlp_bias")  # an int8 product takes it in
            if per_block[i] is not None:
                skip = b.op("Add", [skip, per_block[i]], name=f"{p}.cond_add")
            h, x = residual(x, skip, f"{p}.ln1")
        weight, bias = fold_norm(sd, f"{p}.ln1", sd[f"{p}.attn.qkv.weight"], sd[f"{p}.attn.qkv.bias"])
        if matmul:  # the scores' 1 / sqrt(head size) rides in the query's weights
            scale = np.ones(len(bias), np.float32)
            scale[:C] = 1.0 / np.sqrt(hs)
            if kv_scales is not None:  # queries times the keys' scales, keys over them: the product is unchanged
                s_k = np.asarray(kv_scales[i].keys, np.float32)
                scale[:C] *= np.tile(s_k, H)
                scale[C : C + KV * hs] /= np.tile(s_k, KV)
            weight, bias = weight * scale[:, None], bias * scale
        qkv = b.linear(h, weight, bias, f"{p}.attn.qkv")
        q, k, v = b.op("Split", [qkv, split_sizes], n_out=3, name=f"{p}.attn.split", axis=-1)
        attn = attend(i, q, k, v)
        a = b.linear(attn, sd[f"{p}.attn.proj.weight"], sd[f"{p}.attn.proj.bias"], f"{p}.attn.proj")
        h, x = residual(x, a, f"{p}.ln2")
        weight, bias = fold_norm(sd, f"{p}.ln2", sd[f"{p}.mlp.0.weight"], sd[f"{p}.mlp.0.bias"])
        h = b.linear(h, weight, None, f"{p}.mlp.0")
        h = b.op("BiasGelu", [h, b.weight(f"{p}.mlp.0.bias", bias)], domain=MS_DOMAIN, name=f"{p}.mlp.gelu")
        h = b.linear(h, sd[f"{p}.mlp.2.weight"], None, f"{p}.mlp.2")
        pending = (h, b.weight(f"{p}.mlp.2.bias", sd[f"{p}.mlp.2.bias"]))
    assert pending is not None
    x, _ = residual(x, b.op("Add", [pending[0], pending[1]], name="ln_f.mlp_bias"), "ln_f")
    weight, bias = fold_norm(sd, "ln_f", sd["tok.weight"], np.zeros(cfg.vocab_size, np.float32))  # tied to the input
    head = b.op("MatMul", [x, b.weight("head.weight_t", weight.T)], name="head.matmul")
    if matmul:  # (R, S, V)
        b.nodes.append(helper.make_node("Add", [head, b.weight("head.bias", bias)], ["logits"], name="head.add"))
        attend.write_present("present")
    else:  # (S, R, V)
        logits = b.op("Add", [head, b.weight("head.bias", bias)], name="head.add")
        b.nodes.append(helper.make_node("Transpose", [logits], ["logits"], name="logits_out", perm=[1, 0, 2]))

    f32, i64, i32 = TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32
    kv_type = TensorProto.INT8 if kv_scales is not None else f32
    inputs = [
        helper.make_tensor_value_info("tokens", i64, [R, "sequence"]),
        helper.make_tensor_value_info("cond", f32, [R, cfg.n_cond]),
        helper.make_tensor_value_info("position_ids", i64, [1, "sequence"]),
    ]
    outputs = [helper.make_tensor_value_info("logits", f32, [R, "sequence", cfg.vocab_size])]
    if matmul:
        inputs += [helper.make_tensor_value_info("attention_bias", f32, ["query_rows", "slots_and_sequence"]),
                   helper.make_tensor_value_info("attention_split", i64, [2])]
        for i in range(L):
            inputs += [helper.make_tensor_value_info(f"past_key_values.{i}.key", kv_type, [R * KV, hs, "slots"]),
                       helper.make_tensor_value_info(f"past_key_values.{i}.value", kv_type, [R * KV, "slots", hs])]
        outputs.append(helper.make_tensor_value_info("present", kv_type, [2 * L * R * KV, "sequence", hs]))
    else:
        inputs += [
            helper.make_tensor_value_info("attention_bias", f32, [1, 1, "sequence", "total_sequence_length"]),
            helper.make_tensor_value_info("seqlens_k", i32, [1]),
            helper.make_tensor_value_info("total_sequence_length", i32, []),
        ]
        kv_shape = [1, R * KV, "max_sequence", hs]
        for i in range(L):
            for kind in ("key", "value"):
                inputs.append(helper.make_tensor_value_info(f"past_key_values.{i}.{kind}", f32, kv_shape))
                present_shape = [1, R * KV, "present_sequence", hs]
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


class _GroupQueryAttention:
    """A layer's attention as ``com.microsoft.GroupQueryAttention`` over the shared cache buffer, hidden
    states (S, R, C)."""

    def __init__(self, b: _Builder, R: int, H: int, KV: int, hs: int) -> None:
        self.b, self.R, self.H, self.KV, self.hs = b, R, H, KV, hs
        self.heads_shape = b.weight("heads_shape", np.array([1, -1, R * H * hs], np.int64))  # -> (1, S, R*C)
        self.kv_heads_shape = b.weight("kv_heads_shape", np.array([1, -1, R * KV * hs], np.int64))
        self.rows_shape = b.weight("rows_shape", np.array([-1, R, H * hs], np.int64))  # (1, S, R*C) -> (S, R, C)

    def __call__(self, i: int, q: str, k: str, v: str) -> str:
        b, p = self.b, f"blocks.{i}"
        q, k, v = (b.op("Reshape", [t, shape], name=f"{p}.attn.{n}_heads")  # (1, S, R*C | R*KV*hs)
                   for t, n, shape in ((q, "q", self.heads_shape), (k, "k", self.kv_heads_shape),
                                       (v, "v", self.kv_heads_shape)))
        attn = f"{p}.attn.gqa_out"
        b.nodes.append(helper.make_node(
            "GroupQueryAttention",
            [q, k, v, f"past_key_values.{i}.key", f"past_key_values.{i}.value", "seqlens_k",
             "total_sequence_length", "", "", "", "attention_bias"],
            [attn, f"present.{i}.key", f"present.{i}.value"],
            name=f"{p}.attn.gqa",
            domain=MS_DOMAIN,
            num_heads=self.R * self.H,
            kv_num_heads=self.R * self.KV,  # row r's query head h reads its key/value head r*KV + h // (H // KV)
            scale=float(1.0 / np.sqrt(self.hs)),
        ))
        return b.op("Reshape", [attn, self.rows_shape], name=f"{p}.attn.rows")  # (S, R, C)


class _MatMulAttention:
    """A layer's attention as MatMuls over the cache the engine writes, hidden states (R, S, C).

    N = R * KV key/value heads, each read by G = H / KV query heads; a head's queries are the rows
    (token s, query head g) -> s * G + g of one product with its keys, so each key is read once a step
    whatever the number of tokens. The step's own keys and values are not in the cache yet: they are
    attended beside it (scores concatenated after the cache's) and returned in ``present`` for the
    engine to write.
    """

    def __init__(self, b: _Builder, R: int, H: int, KV: int, hs: int,
                 kv_scales: Sequence[Int8Cache] | None = None) -> None:
        self.b, self.R, self.H, self.KV, self.G, self.hs = b, R, H, KV, H // KV, hs
        self.N = R * KV
        self.kv_scales = kv_scales
        self.present: list[str] = []
        if kv_scales is not None:
            self.unit = b.weight("kv_unit_scale", np.array(1.0, np.float32))
            self.int8_zero = b.weight("kv_zero", np.array(0, np.int8))
            self.weight_scale = b.weight("attn_weight_scale", np.array(1.0 / 255.0, np.float32))
            self.weight_zero = b.weight("attn_weight_zero", np.array(0, np.uint8))
            self.tiny = b.weight("attn_weight_floor", np.array(1e-30, np.float32))
            self.last_axis = b.weight("last_axis", np.array([-1], np.int64))  # without axes, ReduceMax takes all
        self.q_rows = b.weight("q_rows", np.array([self.N, -1, hs], np.int64))  # -> (N, S*G, hs)
        self.out_rows = b.weight("out_rows", np.array([R, -1, H * hs], np.int64))  # (N, S*G, hs) -> (R, S, C)
        if KV > 1:
            self.q_split = b.weight("q_split", np.array([R, -1, KV, self.G * hs], np.int64))
            self.kv_split = b.weight("kv_split", np.array([R, -1, KV, hs], np.int64))
            self.kv_rows = b.weight("kv_rows", np.array([self.N, -1, hs], np.int64))
            self.out_split = b.weight("out_split", np.array([R, KV, -1, self.G * hs], np.int64))

    def _heads(self, t: str, name: str) -> str:
        """(R, S, KV*hs) -> (N, S, hs), key/value head r * KV + j."""
        if self.KV == 1:
            return t
        b = self.b
        t = b.op("Reshape", [t, self.kv_split], name=f"{name}_split")  # (R, S, KV, hs)
        t = b.op("Transpose", [t], name=f"{name}_t", perm=[0, 2, 1, 3])  # (R, KV, S, hs)
        return b.op("Reshape", [t, self.kv_rows], name=name)

    def __call__(self, i: int, q: str, k: str, v: str) -> str:
        b, p = self.b, f"blocks.{i}.attn"
        if self.KV > 1:  # (R, S, KV, G*hs) -> (R, KV, S, G*hs): a key/value head's queries together
            q = b.op("Transpose", [b.op("Reshape", [q, self.q_split], name=f"{p}.q_split")], name=f"{p}.q_t",
                     perm=[0, 2, 1, 3])
        q = b.op("Reshape", [q, self.q_rows], name=f"{p}.q_rows")  # (N, S*G, hs), already scaled
        k, v = self._heads(k, f"{p}.k_heads"), self._heads(v, f"{p}.v_heads")  # (N, S, hs)
        self.present += [k, v]
        cache = None if self.kv_scales is None else self.kv_scales[i]
        if cache is not None:  # the keys' scales are in q and k already (build_graph): a cached key is its int8 value
            q_scale = b.weight(f"{p}.q_scale", np.array(max(cache.queries, 1e-6) / 127.0, np.float32))
            q_zero = b.weight(f"{p}.q_zero", np.array(128, np.uint8))
            q_u8 = b.op("QuantizeLinear", [q, q_scale, q_zero], name=f"{p}.q_quantize")
            cached = b.op("MatMulIntegerToFloat", [q_u8, f"past_key_values.{i}.key", q_scale, self.unit, q_zero],
                          domain=MS_DOMAIN, name=f"{p}.qk")
        else:
            cached = b.op("MatMul", [q, f"past_key_values.{i}.key"], name=f"{p}.qk")  # (N, S*G, slots)
        own = b.op("MatMul", [q, b.op("Transpose", [k], name=f"{p}.k_t", perm=[0, 2, 1])], name=f"{p}.qk_own")
        scores = b.op("Concat", [cached, own], name=f"{p}.scores", axis=-1)  # (N, S*G, slots + S)
        scores = b.op("Add", [scores, "attention_bias"], name=f"{p}.bias")
        weights = b.op("Softmax", [scores], name=f"{p}.softmax", axis=-1)
        w_cached, w_own = b.op("Split", [weights, "attention_split"], n_out=2, name=f"{p}.weights_split", axis=-1)
        if cache is not None:  # each query's weights over the cache, over their largest, in 8 bits
            top = b.op("Max", [b.op("ReduceMax", [w_cached, self.last_axis], name=f"{p}.w_top", keepdims=1),
                               self.tiny], name=f"{p}.w_top_floor")  # a query's own largest; 0 where all hidden
            w_u8 = b.op("QuantizeLinear", [b.op("Div", [w_cached, top], name=f"{p}.w_unit"), self.weight_scale,
                                           self.weight_zero], name=f"{p}.w_quantize")
            v_scale = b.weight(f"{p}.v_scale", np.asarray(cache.values, np.float32))
            read = b.op("MatMulIntegerToFloat", [w_u8, f"past_key_values.{i}.value", self.weight_scale, v_scale,
                                                 self.weight_zero], domain=MS_DOMAIN, name=f"{p}.pv_int8")
            read = b.op("Mul", [read, top], name=f"{p}.pv")
        else:
            read = b.op("MatMul", [w_cached, f"past_key_values.{i}.value"], name=f"{p}.pv")
        out = b.op("Add", [read, b.op("MatMul", [w_own, v], name=f"{p}.pv_own")], name=f"{p}.sum")  # (N, S*G, hs)
        if self.KV > 1:  # (R, KV, S, G*hs) -> (R, S, KV, G*hs)
            out = b.op("Transpose", [b.op("Reshape", [out, self.out_split], name=f"{p}.out_split")],
                       name=f"{p}.out_t", perm=[0, 2, 1, 3])
        return b.op("Reshape", [out, self.out_rows], name=f"{p}.rows")  # (R, S, C)

    def write_present(self, name: str) -> None:
        """Every layer's keys and values of the step as one output ``name``: in int8 with ``kv_scales`` (the keys
        are in their int8 units already; the values are divided by their scales), rounded and saturated."""
        b = self.b
        if self.kv_scales is None:
            b.nodes.append(helper.make_node("Concat", self.present, [name], name="present", axis=0))
            return
        steps = b.op("Concat", self.present, name="present_f", axis=0)  # (2 L N, S, hs)
        inverse = np.ones((len(self.present), self.N, 1, self.hs), np.float32)
        for i, cache in enumerate(self.kv_scales):
            inverse[2 * i + 1] = 1.0 / np.asarray(cache.values, np.float32)
        units = b.op("Mul", [steps, b.weight("present_inverse_scale", inverse.reshape(-1, 1, self.hs))],
                     name="present_units")
        units = b.op("Clip", [units, b.weight("cache_min", np.array(-CACHE_MAX, np.float32)),
                              b.weight("cache_max", np.array(CACHE_MAX, np.float32))], name="present_clip")
        b.nodes.append(helper.make_node("QuantizeLinear", [units, self.unit, self.int8_zero], [name], name="present"))


CACHE_MAX = 63  # an int8 cache keeps 7 bits of magnitude, as int8 weights do (see affetto.export.quantize)


@dataclass(frozen=True)
class Int8Cache:
    """A layer's int8 cache for the MatMul attention: the scale of each of a head's channels of keys and of
    values (shared by every head and row), and the largest magnitude of its queries times the keys' scales."""

    keys: np.ndarray  # (head_size,)
    values: np.ndarray  # (head_size,)
    queries: float


def int8_cache(keys: np.ndarray, values: np.ndarray, queries: np.ndarray, margin: float) -> Int8Cache:
    """A layer's :class:`Int8Cache` from the largest magnitudes calibration saw: of keys and of values per channel
    (shaped (..., head_size), any heads and rows before), of queries per channel (the same shape, the
    queries' heads before). Each range is widened by ``margin``; a cached value's magnitude is at most
    :data:`CACHE_MAX`."""
    def channels(a: np.ndarray) -> np.ndarray:
        return np.asarray(a, np.float32).reshape(-1, np.shape(a)[-1]).max(axis=0)

    k_scale = (np.maximum(channels(keys) * margin, 1e-6) / CACHE_MAX).astype(np.float32)
    v_scale = (np.maximum(channels(values) * margin, 1e-6) / CACHE_MAX).astype(np.float32)
    return Int8Cache(k_scale, v_scale, float((channels(queries) * k_scale).max() * margin))


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
    if not attention:
        raise ValueError("an int8 KV cache needs the graph with GroupQueryAttention (build_graph(attention='gqa'))")
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
