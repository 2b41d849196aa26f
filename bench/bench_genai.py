"""The engine's decode step beside onnxruntime-genai's, per token, in one run; and graph variants of ours.

Usage: ``python -m affetto.bench.bench_genai [--model M.onnx] [--engine F.onnx ...] [--steps 64] [--repeat 5]
[--json-out F]``
(needs the ``bench`` extra: ``pip install 'affetto[bench]'``, which picks the genai build that uses
the project's one ONNX Runtime: ``onnxruntime-genai-cuda`` beside onnxruntime-gpu, which runs on CPU).

onnxruntime-genai runs Hugging Face architectures; this model (a capsule embedding added before every
block, learned positions, GELU) is not one of them. So genai runs a *same-shape* Llama built here:
random weights (a seeded ``transformers`` config made locally, nothing downloaded), 4 layers, width
192, 4 heads of 48, vocabulary 204, a gated MLP of 512 (as many weights as our GELU MLP of 768), tied
embeddings, through genai's own model builder (fp32, CPU). Both run on one CPU thread, greedy.

Per token, in one run, the cells interleaved (genai, then ours, then genai ...) so that the
machine's load falls on both alike:

- genai at batch 1 and 2, context 100 and 1000: ``generate_next_token`` after a prompt;
- the engine at 1 candidate: ``Fork.step`` of one token plus guidance and the greedy pick. The
  model's graph runs the two rows of guidance, so its batch-1 step does genai's batch-2 work; with
  ``--engine FILE`` (repeatable), other model files' steps too, each against genai's build in its
  precision (fp32, or genai's own int8: 8-bit weights) at the batch of its rows (a guidance-distilled
  model's one row: batch 1);
- the weight-read floor: the bytes of weights a step must read, at the single-core read
  bandwidth measured here (:mod:`bench.membw`);
- variants of our graph written with GroupQueryAttention (``build_graph(attention="gqa")`` of the
  model's checkpoint, beside the ``.onnx``), same calls: in fp32 (``gqa fp32``, the attention the
  engine ran before the MatMul one); with an int8 KV cache (the op's quantised cache with per-channel
  scales calibrated on a 1000-token prefill), with its top-1 agreement against fp32; and, for a model
  with several key/value heads a row, one key/value head per row (random key/value weights: what a
  retrained model of that shape would cost, not a model that plays music).

Nothing here passes or fails; the figures are printed as measured, with their ratios.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

BATCHES = (1, 2)
CONTEXTS = (100, 1000)


# ---- onnxruntime-genai -------------------------------------------------------------------------
def build_genai_model(folder: Path, *, vocab: int = 204, width: int = 192, layers: int = 4, heads: int = 4,
                      mlp: int = 512, max_len: int = 2048, precision: str = "fp32") -> Path:
    """A same-shape Llama with seeded random weights, exported by genai's model builder for the CPU in
    ``precision`` (fp32, or int8: its weights as 8-bit MatMulNBits)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=width, intermediate_size=mlp, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=max_len,
                         tie_word_embeddings=True, bos_token_id=0, eos_token_id=1, pad_token_id=2)
    hf = folder / "hf"
    if not (hf / "config.json").exists():  # the same weights for every precision
        LlamaForCausalLM(config).save_pretrained(hf)
    words = Tokenizer(models.WordLevel({f"t{i}": i for i in range(vocab)}, unk_token="t3"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=words, bos_token="t0", eos_token="t1", pad_token="t2",
                            unk_token="t3").save_pretrained(hf)
    out = folder / f"genai-{precision}"
    built = subprocess.run([sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf), "-o", str(out),
                            "-p", precision, "-e", "cpu", "-c", str(folder / "cache")], capture_output=True, text=True)
    if built.returncode != 0:  # say why: the builder's own last lines
        tail = "\n".join((built.stderr or built.stdout).strip().splitlines()[-12:])
        raise RuntimeError(f"onnxruntime-genai's model builder failed (exit {built.returncode}):\n{tail}")
    return out


class GenaiCell:
    """genai's generator at one batch and context: a fresh prompt, then timed tokens."""

    def __init__(self, model, batch: int, context: int, steps: int) -> None:
        self.model, self.batch, self.context, self.steps = model, batch, context, steps

    def run(self) -> list[float]:
        import onnxruntime_genai as og

        params = og.GeneratorParams(self.model)
        params.set_search_options(max_length=self.context + self.steps + 8, batch_size=self.batch, do_sample=False)
        generator = og.Generator(self.model, params)
        prompt = np.random.default_rng(0).integers(3, 204, size=(self.batch, self.context)).astype(np.int32)
        generator.append_tokens(prompt)
        out = []
        for _ in range(self.steps):
            t0 = time.perf_counter_ns()
            generator.generate_next_token()
            out.append((time.perf_counter_ns() - t0) / 1e6)
        return out


def open_genai(folder: Path):
    import onnxruntime_genai as og

    config = og.Config(str(folder))
    config.clear_providers()  # CPU
    config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": 1,
                                                                         "inter_op_num_threads": 1}}}}))
    return og.Model(config)


def _genai(precision: str) -> str:
    """The cell name of genai's build in ``precision`` (fp32's is plain ``genai``, as before other builds)."""
    return "genai" if precision == "fp32" else f"genai {precision}"


# ---- the engine --------------------------------------------------------------------------------
class EngineCell:
    """The engine's own step (``Fork.step``) of one candidate, with guidance and the greedy pick: two rows
    mixed, or a guidance-distilled model's one row (the scale in its capsule)."""

    def __init__(self, model_path: Path, context: int, steps: int) -> None:
        from affetto.analysis.emotion import Capsule, Quadrant
        from affetto.runtime.engine import Engine
        from affetto.runtime.sampling import DEFAULT_SAMPLING

        self.engine = Engine(model_path, threads=1)
        self.cache = self.engine.cache
        self.cache.condition(self.engine.rows_for(self.engine.plan(Capsule.of(Quadrant.Q1), DEFAULT_SAMPLING)))
        self.walk = self.engine.vocab.random_walk(context, np.random.default_rng(0))
        self.steps = steps
        self.buffer = np.empty(self.engine.vocab.size, np.float32)
        self.tokens: list[int] = []  # the last run's greedy tokens

    def run(self) -> list[float]:
        from affetto.runtime.sampling import guide

        cache = self.cache
        cache.reset(self.walk)
        cache.prefill()
        fork = cache.fork(1, self.steps + 1)
        out, self.tokens = [], []
        for _ in range(self.steps):
            t0 = time.perf_counter_ns()
            logits = fork.logits(0)
            token = int(np.argmax(guide(logits[0], logits[1], 1.5, self.buffer) if len(logits) == 2 else logits[0]))
            fork.step([0], [token])
            out.append((time.perf_counter_ns() - t0) / 1e6)
            self.tokens.append(token)
        return out


class GraphCell:
    """A graph of the engine's contract written with GroupQueryAttention (its cache's type and heads read from
    the graph), one token a run.

    The calls are the engine's hot path for that attention (IOBinding, the cache bound as past and
    present); used for variants of the graph the engine does not load.
    """

    def __init__(self, path: Path, context: int, steps: int, *, vocab: int, walk: list[int], slots: int = 1100) -> None:
        import onnxruntime as ort

        from affetto.runtime.session import graph_attention, open_session

        self.ort = ort
        self.session = open_session(path, threads=1)
        if graph_attention(self.session) != "gqa":
            raise ValueError(f"{path}: GraphCell runs graphs written with GroupQueryAttention (see gqa_reference)")
        inputs = {i.name: i for i in self.session.get_inputs()}
        past = inputs["past_key_values.0.key"]
        dtype = {"tensor(float)": np.float32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8}[past.type]
        layers = sum(1 for name in inputs if name.startswith("past_key_values.")) // 2
        self.rows = inputs["tokens"].shape[0]
        self.io = self.session.io_binding()
        self.buffers = [np.zeros((1, past.shape[1], slots, past.shape[3]), dtype) for _ in range(2 * layers)]
        for i in range(layers):
            for j, kind in enumerate(("key", "value")):
                value = ort.OrtValue.ortvalue_from_numpy(self.buffers[2 * i + j])
                self.io.bind_ortvalue_input(f"past_key_values.{i}.{kind}", value)
                self.io.bind_ortvalue_output(f"present.{i}.{kind}", value)
        self.cond = np.zeros((self.rows, 4), np.float32)
        self.cond[0, 0] = 1.0
        self.io.bind_cpu_input("cond", self.cond)
        self.vocab, self.walk, self.context, self.steps = vocab, walk, context, steps

    def forward(self, tokens: list[int], start: int) -> np.ndarray:
        """Logits (rows, S, vocab) of ``tokens`` in slots ``start`` on, each seeing the slots before it."""
        S, total, io = len(tokens), start + len(tokens), self.io
        io.bind_cpu_input("tokens", np.tile(np.asarray(tokens, np.int64), (self.rows, 1)))
        io.bind_cpu_input("position_ids", np.arange(start, total, dtype=np.int64)[None])
        io.bind_cpu_input("attention_bias", np.zeros((1, 1, S, total), np.float32))
        io.bind_cpu_input("seqlens_k", np.array([total - 1], np.int32))
        io.bind_cpu_input("total_sequence_length", np.array(total, np.int32))
        logits = np.empty((self.rows, S, self.vocab), np.float32)
        io.bind_ortvalue_output("logits", self.ort.OrtValue.ortvalue_from_numpy(logits))
        self.session.run_with_iobinding(io)
        return logits

    def run(self) -> list[float]:
        logits = self.forward(self.walk, 0)
        out = []
        for k in range(self.steps):
            t0 = time.perf_counter_ns()
            token = int(np.argmax(logits[0, -1] + 0.5 * (logits[0, -1] - logits[1, -1])))
            logits = self.forward([token], self.context + k)
            out.append((time.perf_counter_ns() - t0) / 1e6)
        return out


# ---- graph variants ----------------------------------------------------------------------------
def gqa_reference(model_path: Path, out: Path, checkpoint: Path | None = None) -> Path:
    """The model at ``model_path`` written with GroupQueryAttention: itself when it is, else its ``checkpoint``
    (default: the one beside the ``.onnx``, as the shipped model has it) exported with ``--attention gqa``."""
    from affetto.errors import ModelFileError
    from affetto.export.export import export_checkpoint
    from affetto.runtime.session import graph_attention, open_session

    if graph_attention(open_session(model_path, threads=1)) == "gqa":
        return model_path
    source = checkpoint or model_path.with_suffix("")
    try:
        return export_checkpoint(source, out, attention="gqa", check=False).path
    except ModelFileError as err:
        raise SystemExit(f"{model_path} has the MatMul attention; its GroupQueryAttention variants are built from "
                         f"its checkpoint: {err}") from None


def int8_kv_graph(model_path: Path, out: Path, calibration: list[list[np.ndarray]]) -> Path:
    """Our graph with GroupQueryAttention's int8 KV cache; per-channel scales from ``calibration`` caches."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(model_path)
    graph = model.graph
    for node in graph.node:
        if node.op_type != "GroupQueryAttention":
            continue
        layer = int(node.name.split(".")[1])
        node.attribute.extend([helper.make_attribute("k_quant_type", "PER_CHANNEL"),
                               helper.make_attribute("v_quant_type", "PER_CHANNEL"),
                               helper.make_attribute("kv_cache_bit_width", 8)])
        while len(node.input) < 12:  # (..., attention_bias, head_sink) before the scales
            node.input.append("")
        for j, kind in enumerate(("k", "v")):
            amax = np.max([np.abs(c[2 * layer + j]).max(axis=(0, 2)) for c in calibration], axis=0)  # (heads, hs)
            scale = np.maximum(amax, 1e-6).reshape(-1).astype(np.float32) / 127.0
            graph.initializer.append(numpy_helper.from_array(scale, f"{kind}_scale.{layer}"))
            node.input.append(f"{kind}_scale.{layer}")
    for value in [*graph.input, *graph.output]:
        if value.name.startswith(("past_key_values.", "present.")):
            value.type.tensor_type.elem_type = TensorProto.INT8
    onnx.save(model, out)
    return out


def gqa_graph(model_path: Path, out: Path, kv_heads_per_row: int = 1) -> Path:
    """Our graph with ``kv_heads_per_row`` key/value heads per row (random key/value weights)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(model_path)
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    C = numpy_helper.to_array(inits["qkv_split"])[0]
    heads = next(a.i for a in next(n for n in graph.node if n.op_type == "GroupQueryAttention").attribute
                 if a.name == "num_heads")
    rows = graph.input[0].type.tensor_type.shape.dim[0].dim_value
    hs = C * rows // heads
    kv = kv_heads_per_row * hs  # key (and value) width per row
    rng = np.random.default_rng(0)

    def put(name: str, array: np.ndarray) -> None:
        inits[name].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(array), name))

    for name in list(inits):
        if name.endswith("attn.qkv.weight_t"):
            w = numpy_helper.to_array(inits[name])  # (C, 3C)
            put(name, np.concatenate([w[:, :C], rng.normal(0, 0.05, (C, 2 * kv)).astype(np.float32)], axis=1))
        elif name.endswith("attn.qkv.bias"):
            b = numpy_helper.to_array(inits[name])
            put(name, np.concatenate([b[:C], np.zeros(2 * kv, np.float32)]))
    put("qkv_split", np.array([C, kv, kv], np.int64))
    graph.initializer.append(numpy_helper.from_array(np.array([1, -1, rows * kv], np.int64), "kv_heads_shape"))
    for node in graph.node:
        if node.op_type == "Reshape" and node.name.endswith(("attn.k_heads", "attn.v_heads")):
            node.input[1] = "kv_heads_shape"
        if node.op_type == "GroupQueryAttention":
            for a in node.attribute:
                if a.name == "kv_num_heads":
                    a.i = rows * kv_heads_per_row
    for value in [*graph.input, *graph.output]:
        if value.name.startswith(("past_key_values.", "present.")):
            value.type.tensor_type.shape.dim[1].dim_value = rows * kv_heads_per_row
    onnx.save(model, out)
    return out


def weight_bytes(model_path: Path) -> int:
    """Bytes of weights a one-token step reads: every matrix but the embedding tables (a row of each a step)."""
    import onnx

    model = onnx.load(model_path)
    return sum(int(np.prod(i.dims)) * 4 for i in model.graph.initializer
               if len(i.dims) == 2 and not i.name.startswith(("pos.", "tok.")))


# ---- the run -----------------------------------------------------------------------------------
def prompt_length(context: int, steps: int, max_len: int) -> int:
    """The prompt a cell of ``context`` starts from: the context, or less where its steps would pass max_len."""
    return min(context, max_len - steps - 1)


def interleaved(cells: dict[str, Callable[[], list[float]]], repeat: int) -> dict[str, list[float]]:
    """Each cell's per-token times, the cells taking turns ``repeat`` times (first turn discarded)."""
    out: dict[str, list[float]] = {name: [] for name in cells}
    for turn in range(repeat + 1):
        for name, fn in cells.items():
            times = fn()
            if turn:
                out[name] += times[2:]  # the first tokens after a prompt warm the caches
    return out


def run(model_path: Path, *, steps: int = 64, repeat: int = 5, echo: Callable[[str], None] = print,
        others: Sequence[Path] = ()) -> dict:
    import onnxruntime as ort

    from affetto.bench.membw import measure
    from affetto.manifest import read_manifest
    from affetto.runtime.engine import Engine
    from affetto.runtime.session import guidance_rows
    from affetto.tokens.vocab import Vocabulary

    try:
        import onnxruntime_genai as og
    except ImportError:
        raise SystemExit("bench_genai needs onnxruntime-genai and transformers: pip install 'affetto[bench]'") from None
    manifest = read_manifest(model_path)
    vocab = Vocabulary.from_dict(manifest["vocab"])
    cfg = manifest["model"]
    # a model with several key/value heads a row is also timed with one (a graph of the same shape); one
    # that has one already is that graph
    variants = ("gqa fp32", "int8 KV") + (("GQA 1 kv head/row",) if (cfg.get("n_kv_head") or cfg["n_head"]) > 1 else ())
    results: dict = {"onnxruntime": ort.__version__, "onnxruntime_genai": getattr(og, "__version__", "?"),
                     "steps": steps, "repeat": repeat, "ms": {}, "ratios": {}}
    echo(f"bench_genai: {model_path.name} against onnxruntime-genai {results['onnxruntime_genai']} "
         f"(onnxruntime {ort.__version__}), one CPU thread, {steps} tokens x {repeat} turns per cell, interleaved")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # each other file against genai in its precision, at the batch of its rows (the same rows' work)
        manifests = {path: read_manifest(path) for path in others}
        shape = {path: (str(m.get("dtype", "fp32")), int((m.get("kv_cache") or {}).get("rows", 2)))
                 for path, m in manifests.items()}
        precisions = sorted({"fp32", *(dtype for dtype, _ in shape.values())})
        genai = {p: open_genai(build_genai_model(folder, precision=p)) for p in precisions}
        engine = Engine(model_path, threads=1)  # calibration of the int8 cache: two prefills, two capsules
        calibration = []
        for capsule in ((1.0, 0.0, 0.0, 0.0), (0.0, 0.0, 1.0, 0.0)):
            engine.cache.condition(guidance_rows(capsule, engine.cache.rows))
            engine.cache.reset(vocab.random_walk(1000, np.random.default_rng(len(calibration) + 1)))
            engine.cache.prefill()
            calibration.append([b[:, :, :1000].copy() for b in engine.cache.host_buffers()])
        reference = gqa_reference(model_path, folder / "gqa-attention.onnx")
        kv8 = int8_kv_graph(reference, folder / "kv8.onnx", calibration)
        graphs = {"gqa fp32": reference, "int8 KV": kv8}
        if "GQA 1 kv head/row" in variants:
            graphs["GQA 1 kv head/row"] = gqa_graph(reference, folder / "gqa.onnx")
        cells: dict[str, Callable[[], list[float]]] = {}
        for c in CONTEXTS:
            prompt = prompt_length(c, steps, engine.max_len)
            walk = vocab.random_walk(prompt, np.random.default_rng(0))
            for b in BATCHES:
                for p in precisions:
                    cells[f"{_genai(p)}|b{b}|c{c}"] = GenaiCell(genai[p], b, prompt, steps).run
            for path in others:
                cells[f"engine {path.name}|c{c}"] = EngineCell(path, prompt, steps).run
            cells[f"engine|c{c}"] = EngineCell(model_path, prompt, steps).run
            for v in variants:
                cells[f"graph {v}|c{c}"] = GraphCell(graphs[v], prompt, steps, vocab=vocab.size, walk=walk).run
        times = interleaved(cells, repeat)
        agreement = {}
        for c in CONTEXTS:
            walk = vocab.random_walk(c, np.random.default_rng(7))
            a = GraphCell(reference, c, 1, vocab=vocab.size, walk=walk).forward(walk, 0)
            q = GraphCell(kv8, c, 1, vocab=vocab.size, walk=walk).forward(walk, 0)
            agreement[c] = (float((a.argmax(-1) == q.argmax(-1)).mean()), float(np.abs(a - q).max()))
        floor_bytes = weight_bytes(model_path)
    bandwidth = measure(256, 3)["read_gb_s"]
    floor_ms = floor_bytes / bandwidth / 1e6
    p50 = {name: float(np.median(t)) for name, t in times.items()}
    p99 = {name: float(np.percentile(t, 99)) for name, t in times.items()}
    results["ms"] = {name: {"p50": p50[name], "p99": p99[name]} for name in times}
    results["floor"] = {"weight_bytes": floor_bytes, "read_gb_s": bandwidth, "ms": floor_ms}
    results["int8_kv_agreement"] = {str(c): {"top1": a, "max_logit_diff": d} for c, (a, d) in agreement.items()}

    echo("")
    spans = [f"ctx {prompt_length(c, steps, engine.max_len)}-{prompt_length(c, steps, engine.max_len) + steps - 1}"
             for c in CONTEXTS]
    echo("per token, ms p50 / p99            " + "  ".join(f"{s:<16}" for s in spans))
    rows = [(f"onnxruntime-genai, batch {b}", [f"genai|b{b}|c{c}" for c in CONTEXTS]) for b in BATCHES]
    rows += [(f"onnxruntime-genai {p}, batch {b}", [f"{_genai(p)}|b{b}|c{c}" for c in CONTEXTS])
             for p in precisions if p != "fp32" for b in BATCHES]
    rows += [(f"engine {dtype}, {n} row{'s' if n > 1 else ''} ({path.name[:12]})",
              [f"engine {path.name}|c{c}" for c in CONTEXTS]) for path, (dtype, n) in shape.items()]
    rows += [("engine, 1 candidate (2 rows)", [f"engine|c{c}" for c in CONTEXTS])]
    rows += [(f"our graph, {v}", [f"graph {v}|c{c}" for c in CONTEXTS])
             for v in variants]
    for label, keys in rows:
        echo(f"{label:<35}" + "  ".join(f"{f'{p50[k]:6.3f} / {p99[k]:6.3f}':<16}" for k in keys))
    echo("")
    echo(f"weight-read floor: {floor_bytes / 1e6:.2f} MB of weights at {bandwidth:.1f} GB/s (one core) = "
         f"{floor_ms:.3f} ms a step")
    ratios = results["ratios"]
    for c in CONTEXTS:
        for b in BATCHES:
            ratios[f"genai batch {b} / engine (2 rows), ctx {c}"] = p50[f"genai|b{b}|c{c}"] / p50[f"engine|c{c}"]
        for path, (dtype, n) in shape.items():  # genai's batch doing the same rows' work, in the same precision
            rows_text = f"{n} row{'s' if n > 1 else ''}"
            ratios[f"genai {dtype} batch {n} / engine {path.name} ({dtype}, {rows_text}), ctx {c}"] = (
                p50[f"{_genai(dtype)}|b{n}|c{c}"] / p50[f"engine {path.name}|c{c}"])
            ratios[f"engine {path.name} / engine (2 rows), ctx {c}"] = (p50[f"engine {path.name}|c{c}"]
                                                                        / p50[f"engine|c{c}"])
    ratios["engine ctx 100 / weight-read floor"] = p50["engine|c100"] / floor_ms
    for v in ("engine", *(f"engine {path.name}" for path in others), *(f"graph {g}" for g in variants)):
        ratios[f"{v}: ctx 1000 / ctx 100"] = p50[f"{v}|c1000"] / p50[f"{v}|c100"]
    for b in BATCHES:
        ratios[f"genai batch {b}: ctx 1000 / ctx 100"] = p50[f"genai|b{b}|c1000"] / p50[f"genai|b{b}|c100"]
        for p in (p for p in precisions if p != "fp32"):
            ratios[f"genai {p} batch {b}: ctx 1000 / ctx 100"] = (p50[f"{_genai(p)}|b{b}|c1000"]
                                                                 / p50[f"{_genai(p)}|b{b}|c100"])
    for c in CONTEXTS:
        for variant in variants[1:]:
            ratios[f"{variant} / gqa fp32 graph, ctx {c}"] = p50[f"graph {variant}|c{c}"] / p50[f"graph gqa fp32|c{c}"]
        ratios[f"engine / gqa fp32 graph, ctx {c}"] = p50[f"engine|c{c}"] / p50[f"graph gqa fp32|c{c}"]
    for k, v in ratios.items():
        echo(f"{k:<52} {v:5.2f}x")
    for c, (a, d) in agreement.items():
        echo(f"int8 KV cache against fp32, prefill of {c}: top-1 agreement {100 * a:.2f}%, "
             f"largest logit difference {d:.3f}")
    return results


def main(argv: list[str] | None = None) -> int:
    from affetto.runtime import default_model_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="An affetto .onnx model (default: the shipped one).")
    parser.add_argument("--steps", type=int, default=64, help="Tokens timed per turn of a cell (>= 8; default 64).")
    parser.add_argument("--repeat", type=int, default=5, help="Turns per cell (>= 1; default 5).")
    parser.add_argument("--json-out", help="Also write the figures as JSON.")
    parser.add_argument("--engine", action="append", default=[], metavar="FILE",
                        help="Another .onnx model of the engine (repeatable): the shipped CPU default, a "
                        "guidance-distilled one in fp32 (`affetto export affetto/assets/affetto-distilled -o F`), ... "
                        "Its step is timed beside genai's build in its precision (fp32, or int8: 8-bit weights) at "
                        "the batch of its rows (one row: batch 1).")
    args = parser.parse_args(argv)
    if args.steps < 8 or args.repeat < 1:
        parser.error("--steps must be >= 8 and --repeat >= 1")
    results = run(Path(args.model) if args.model else default_model_path("fp32"), steps=args.steps, repeat=args.repeat,
                  others=[Path(p) for p in args.engine])
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
