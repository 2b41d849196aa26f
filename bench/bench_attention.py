"""The attention alone: ONNX Runtime's GroupQueryAttention, as the shipped graph runs it, beside the same
attention written as two MatMuls, per step, in one run.

Usage: ``python -m affetto.bench.bench_attention [--model M.onnx] [--repeat 30] [--json-out F]``

Where a decode step's time goes as the context grows: everything but the attention costs the same at
any context, so a step's growth from context 100 to 1000 is the attention's. This times the model's
layers of attention alone (its rows, heads, key/value heads and head size; the projections left out)
for one step of ``S`` query tokens a row (1, and 3 as three candidates side by side):

- ``gqa``: ``com.microsoft.GroupQueryAttention`` over the shared cache buffer of ``max_len`` slots, as
  ``export/graph.py`` writes it with ``attention="gqa"`` (the engine's attention before the MatMul one,
  and the int8 KV cache's), at a context of ``ctx`` tokens;
- ``matmul``: the query heads that share a key/value head folded into the rows of one product,
  ``softmax(Q K^T / sqrt(d) + bias) V`` as ``MatMul(Q, K^T)`` and ``MatMul(P, V)``, with the keys kept
  transposed, over ``ctx`` slots: the core of the default graph's attention, which reads the cache bound
  at its used length rounded up (the step's own keys, which that graph attends beside the cache, are
  here already in it).

Both give the same output (checked here on the cells' own inputs, largest difference printed); the
ratios are measured within the run, the cells taking turns ten calls at a time. Nothing passes or
fails.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

CONTEXTS = (100, 500, 1000)
WIDTHS = (1, 3)
MS_DOMAIN = "com.microsoft"


def shape_of(model_path: Path) -> dict[str, int]:
    """Rows, layers, query heads, key/value heads, head size and cache length of a lead model."""
    from affetto.manifest import read_manifest
    from affetto.runtime.session import cache_shape

    manifest = read_manifest(model_path)
    cfg, cache = manifest["model"], manifest["kv_cache"]
    layout = cache_shape(cfg)
    return {"rows": int(cache["rows"]), "layers": layout["n_layer"], "heads": int(cfg["n_head"]),
            "kv_heads": layout["kv_heads"], "head_size": layout["head_dim"], "max_len": int(cache["max_len"])}


def _model(graph):
    from onnx import helper

    return helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 20),
                                                                  helper.make_opsetid(MS_DOMAIN, 1)])


def gqa_graph(shape: dict[str, int]):
    """``layers`` GroupQueryAttention nodes over their own cache buffers, outputs summed."""
    from onnx import TensorProto, helper

    R, H, KV, D, L = shape["rows"], shape["heads"], shape["kv_heads"], shape["head_size"], shape["max_len"]
    f = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("q", f, [1, "S", R * H * D]),
              helper.make_tensor_value_info("k", f, [1, "S", R * KV * D]),
              helper.make_tensor_value_info("v", f, [1, "S", R * KV * D]),
              helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, [1]),
              helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, []),
              helper.make_tensor_value_info("attention_bias", f, [1, 1, "S", "T"])]
    outputs, nodes, total = [], [], ""
    for i in range(shape["layers"]):
        inputs += [helper.make_tensor_value_info(f"past_{kv}{i}", f, [1, R * KV, L, D]) for kv in "kv"]
        outputs += [helper.make_tensor_value_info(f"present_{kv}{i}", f, [1, R * KV, L, D]) for kv in "kv"]
        nodes.append(helper.make_node(
            "GroupQueryAttention", ["q", "k", "v", f"past_k{i}", f"past_v{i}", "seqlens_k", "total_sequence_length",
                                    "", "", "", "attention_bias"],
            [f"a{i}", f"present_k{i}", f"present_v{i}"], domain=MS_DOMAIN, num_heads=R * H, kv_num_heads=R * KV,
            scale=float(1 / np.sqrt(D))))
        if total:
            nodes.append(helper.make_node("Add", [total, f"a{i}"], [f"sum{i}"]))
            total = f"sum{i}"
        else:
            total = f"a{i}"
    outputs.insert(0, helper.make_tensor_value_info(total, f, [1, "S", R * H * D]))
    return _model(helper.make_graph(nodes, "gqa", inputs, outputs))


def matmul_graph(shape: dict[str, int]):
    """The same attention as MatMuls: q (S, R, H*D) in, (R*KV, G*S, D) out, G = H / KV query heads a key."""
    from onnx import TensorProto, helper

    R, H, KV, D = shape["rows"], shape["heads"], shape["kv_heads"], shape["head_size"]
    G = H // KV
    f = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("q", f, ["S", R * H * D]),
              helper.make_tensor_value_info("bias", f, [R * KV, "GS", "T"])]
    inits = [helper.make_tensor("q_heads", TensorProto.INT64, [4], [-1, R * KV, G, D]),
             helper.make_tensor("q_rows", TensorProto.INT64, [3], [R * KV, -1, D]),
             helper.make_tensor("scale", f, [], [float(1 / np.sqrt(D))])]
    nodes = [helper.make_node("Reshape", ["q", "q_heads"], ["q4"]),  # (S, R*KV, G, D)
             helper.make_node("Transpose", ["q4"], ["qt"], perm=[1, 2, 0, 3]),  # (R*KV, G, S, D)
             helper.make_node("Reshape", ["qt", "q_rows"], ["qg"]),  # (R*KV, G*S, D)
             helper.make_node("Mul", ["qg", "scale"], ["qs"])]
    total = ""
    for i in range(shape["layers"]):
        inputs += [helper.make_tensor_value_info(f"keys_t{i}", f, [R * KV, D, "T"]),
                   helper.make_tensor_value_info(f"values{i}", f, [R * KV, "T", D])]
        nodes += [helper.make_node("MatMul", ["qs", f"keys_t{i}"], [f"s{i}"]),
                  helper.make_node("Add", [f"s{i}", "bias"], [f"b{i}"]),
                  helper.make_node("Softmax", [f"b{i}"], [f"p{i}"], axis=-1),
                  helper.make_node("MatMul", [f"p{i}", f"values{i}"], [f"a{i}"])]
        if total:
            nodes.append(helper.make_node("Add", [total, f"a{i}"], [f"sum{i}"]))
            total = f"sum{i}"
        else:
            total = f"a{i}"
    outputs = [helper.make_tensor_value_info(total, f, [R * KV, "GS", D])]
    return _model(helper.make_graph(nodes, "matmul", inputs, outputs, initializer=inits))


def session(model):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


class Cell:
    """One step of ``width`` candidates at ``ctx`` through both graphs, on the same keys and values.

    Each candidate is one query token a row that sees the context and itself (as the engine's
    candidates do); ``gqa`` writes the new keys at ``ctx``..``ctx + width`` of its buffers (the same
    slots every call), ``matmul`` reads context and new keys as one bound array."""

    def __init__(self, shape: dict[str, int], gqa, mm, ctx: int, width: int, rng: np.random.Generator) -> None:
        import onnxruntime as ort

        R, H, KV, D, L = shape["rows"], shape["heads"], shape["kv_heads"], shape["head_size"], shape["max_len"]
        G, T = H // KV, ctx + width
        if T > L:
            raise ValueError(f"a context of {ctx} and {width} candidates pass the model's {L} positions")
        self.shape, self.ctx, self.width = shape, ctx, width
        q = rng.normal(size=(width, R * H * D)).astype(np.float32)
        k, v = (rng.normal(size=(width, R * KV * D)).astype(np.float32) for _ in "kv")
        past = [[rng.normal(size=(1, R * KV, L, D)).astype(np.float32) for _ in "kv"] for _ in range(shape["layers"])]
        sees = np.zeros((width, T), bool)  # candidate j sees the context and its own slot
        sees[:, :ctx] = True
        sees[np.arange(width), ctx + np.arange(width)] = True
        bias = np.where(sees, 0.0, -np.inf).astype(np.float32)

        self.gqa_io = io = gqa.io_binding()
        io.bind_cpu_input("q", q[None])
        io.bind_cpu_input("k", k[None])
        io.bind_cpu_input("v", v[None])
        io.bind_cpu_input("seqlens_k", np.array([T - 1], np.int32))
        io.bind_cpu_input("total_sequence_length", np.array(T, np.int32))
        io.bind_cpu_input("attention_bias", bias[None, None])
        io.bind_output(gqa.get_outputs()[0].name)  # first: copy_outputs_to_cpu()[0]
        self._keep = []
        for i, (pk, pv) in enumerate(past):
            for name, buffer in (("k", pk), ("v", pv)):
                value = ort.OrtValue.ortvalue_from_numpy(buffer)
                io.bind_ortvalue_input(f"past_{name}{i}", value)
                io.bind_ortvalue_output(f"present_{name}{i}", value)
                self._keep.append(value)
        self.gqa = gqa

        # the same keys for the MatMuls: context, then this step's (what gqa writes into its slots)
        keys = [np.concatenate([pk[0, :, :ctx], k.reshape(width, R * KV, D).transpose(1, 0, 2)], axis=1)
                for pk, _ in past]
        values = [np.concatenate([pv[0, :, :ctx], v.reshape(width, R * KV, D).transpose(1, 0, 2)], axis=1)
                  for _, pv in past]
        self.mm_io = io = mm.io_binding()
        io.bind_cpu_input("q", q)
        io.bind_cpu_input("bias", np.ascontiguousarray(np.broadcast_to(np.tile(bias, (G, 1)), (R * KV, G * width, T))))
        for i in range(shape["layers"]):
            io.bind_cpu_input(f"keys_t{i}", np.ascontiguousarray(keys[i].transpose(0, 2, 1)))
            io.bind_cpu_input(f"values{i}", np.ascontiguousarray(values[i]))
        io.bind_output(mm.get_outputs()[0].name)
        self.mm = mm

    def run_gqa(self) -> None:
        self.gqa.run_with_iobinding(self.gqa_io)

    def run_matmul(self) -> None:
        self.mm.run_with_iobinding(self.mm_io)

    def difference(self) -> float:
        """Largest |difference| between the two graphs' outputs, in the gqa graph's layout."""
        R, H, KV, D = (self.shape[k] for k in ("rows", "heads", "kv_heads", "head_size"))
        self.run_gqa()
        a = self.gqa_io.copy_outputs_to_cpu()[0][0]  # (S, R*H*D)
        self.run_matmul()
        m = self.mm_io.copy_outputs_to_cpu()[0]  # (R*KV, G*S, D), G before S
        m = m.reshape(R * KV, H // KV, self.width, D).transpose(2, 0, 1, 3).reshape(self.width, R * H * D)
        return float(np.abs(a - m).max())


def run(model_path: Path, *, repeat: int = 30, contexts: tuple[int, ...] = CONTEXTS,
        echo: Callable[[str], None] = print) -> dict:
    shape = shape_of(model_path)
    gqa, mm = session(gqa_graph(shape)), session(matmul_graph(shape))
    rng = np.random.default_rng(0)
    cells = {(c, w): Cell(shape, gqa, mm, c, w, rng) for w in WIDTHS for c in contexts}
    difference = max(cell.difference() for cell in cells.values())
    calls = {f"{kind}|c{c}|w{w}": getattr(cell, f"run_{kind}") for (c, w), cell in cells.items()
             for kind in ("gqa", "matmul")}
    times: dict[str, list[float]] = {name: [] for name in calls}
    for turn in range(repeat + 1):
        for name, call in calls.items():
            for _ in range(10):
                start = time.perf_counter()
                call()
                if turn:  # the first turn warms
                    times[name].append(time.perf_counter() - start)
    p50 = {name: float(np.median(t)) * 1e3 for name, t in times.items()}
    echo(f"bench_attention: {model_path.name}'s attention alone ({shape['layers']} layers, {shape['rows']} rows x "
         f"{shape['heads']} query heads, {shape['kv_heads']} key/value head(s) a row, head size {shape['head_size']}), "
         f"one CPU thread, {repeat} x 10 calls per cell, interleaved; largest difference between the two "
         f"{difference:.2e}")
    echo("")
    echo("ms p50, a step" + "".join(f"   ctx {c}, {w} cand." for w in WIDTHS for c in contexts))
    for kind, label in (("gqa", "GroupQueryAttention"), ("matmul", "two MatMuls")):
        echo(f"{label:<20}" + "".join(f"{p50[f'{kind}|c{c}|w{w}']:16.3f}" for w in WIDTHS for c in contexts))
    ratios = {}
    short, long = min(contexts), max(contexts)
    for w in WIDTHS:
        for c in contexts:
            ratios[f"MatMuls / GroupQueryAttention, ctx {c}, {w} cand."] = (p50[f"matmul|c{c}|w{w}"]
                                                                        / p50[f"gqa|c{c}|w{w}"])
        for kind in ("gqa", "matmul"):
            ratios[f"{kind}: ctx {long} / ctx {short}, {w} cand."] = (p50[f"{kind}|c{long}|w{w}"]
                                                                     / p50[f"{kind}|c{short}|w{w}"])
    echo("")
    for k, v in ratios.items():
        echo(f"{k:<52} {v:5.2f}x")
    return {"shape": shape, "repeat": repeat, "max_difference": difference, "ms_p50": p50, "ratios": ratios}


def main(argv: list[str] | None = None) -> int:
    from affetto.runtime import default_model_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="An affetto .onnx model (default: the shipped one).")
    parser.add_argument("--repeat", type=int, default=30, help="Turns of 10 calls per cell (>= 1; default 30).")
    parser.add_argument("--json-out", help="Also write the figures as JSON.")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    results = run(Path(args.model) if args.model else default_model_path("fp32"), repeat=args.repeat)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
