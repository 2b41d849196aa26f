"""The engine's speed, and PyTorch's on the same weights, in one run (``affetto bench`` runs this module).

Usage: ``affetto bench [--model M.onnx] [--checkpoint runs/x/best] [--repeat N] [--bars N] [--json-out F]``
(or ``python -m affetto.bench.bench_engine`` with the same options).

Prints, everything on one CPU thread:

- the time of one decode step (p50/p99) at contexts of 100 and 1000 tokens,
  for 1, 3 (the default) and 8 candidates side by side; a step runs the two
  rows of guidance for each candidate in one run of the model. fp32 and int8
  weights (what the engine runs on the CPU: the checkpoint exported with
  ``--int8``, else the shipped int8 model beside the shipped fp32 one); with
  ``--checkpoint``, the int8 KV cache (``affetto export --kv-int8``, its
  agreement with fp32), int8 weights with GroupQueryAttention (``affetto
  export --int8 --attention gqa``: the attention the engine ran before the
  MatMul one) and PyTorch eager with and without a KV cache at batch 1 and 2;
- the time to generate a bar at 120 BPM, continuing a dense seed in Q1:
  without guidance, with it, and with it and 3 and 8 candidates (and 1 and 3
  with int8 weights, with GroupQueryAttention and on the int8 KV cache), and at 1 and 3 over the model's
  whole context
  instead of the engine's window; with ``--beside``, the steps and bars
  (1 and 3 candidates) and its partial bar, of another model file, such as
  a guidance-distilled one (one row per candidate); the bars that slide the context window
  against the others; the real-time factor;
- the partial bar (``Engine.regenerate_from`` beat 2, in another capsule)
  against a whole bar at the default settings (in int8 where there is one);
- the ratios between these, and the engine's load time and resident memory.

The engine's step cells take turns ten steps at a time, and the bar rows one
bar at a time, so that the ratios between them hold within one run on a
machine others use too. Numbers are measured in this run; nothing here
passes or fails.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.manifest import read_manifest
from affetto.music.notes import Note, TimeSignature
from affetto.runtime.window import WINDOW

CANDIDATES = (1, 3, 8)
CONTEXTS = (100, 1000)


def percentiles(samples_ms: list[float]) -> tuple[float, float]:
    a = np.asarray(samples_ms)
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def time_calls(fn: Callable[[], None], repeat: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


class StepCells:
    """Decode steps of a model after contexts of each length, for any number of candidates side by side.

    One engine per context; every step forks afresh after it, so the context stays at its length.
    """

    def __init__(self, model_path: Path, contexts: tuple[int, ...]) -> None:
        from affetto.runtime.engine import Engine
        from affetto.runtime.sampling import DEFAULT_SAMPLING

        self.caches = {}
        for context in contexts:
            engine = Engine(model_path, threads=1)
            cache = engine.cache
            cache.condition(engine.rows_for(engine.plan(Capsule.of(Quadrant.Q1), DEFAULT_SAMPLING)))  # guided rows
            cache.reset(engine.vocab.random_walk(context, np.random.default_rng(0)))
            cache.prefill()
            self.caches[context] = cache
        self.token = engine.vocab.bar

    def run(self, candidates: int, context: int, steps: int) -> list[float]:
        cache, live, tokens = self.caches[context], list(range(candidates)), [self.token] * candidates
        out = []
        for _ in range(steps):
            fork = cache.fork(candidates, 1)  # the step's slots follow the context: it stays at ``context``
            t0 = time.perf_counter_ns()
            fork.step(live, tokens)
            out.append((time.perf_counter_ns() - t0) / 1e6)
        return out


def interleaved_steps(cells: dict[str, tuple[StepCells, int, int]], repeat: int, block: int = 10,
                      warmup: int = 5) -> dict[str, list[float]]:
    """``repeat`` timed steps per cell after ``warmup`` untimed ones, the cells taking turns ``block`` steps
    at a time, so that ratios between cells hold on a shared machine."""
    times: dict[str, list[float]] = {name: [] for name in cells}
    for cell, n, c in cells.values():
        cell.run(n, c, warmup)
    while any(len(t) < repeat for t in times.values()):
        for name, (cell, n, c) in cells.items():
            times[name] += cell.run(n, c, min(block, repeat - len(times[name])))
    return times


def torch_step_times(checkpoint: Path, batch: int, context: int, repeat: int, cached: bool) -> list[float]:
    import torch

    from affetto.models.checkpoint import load_checkpoint
    from affetto.tokens.vocab import Vocabulary

    torch.set_num_threads(1)
    model, meta = load_checkpoint(checkpoint)
    tokens = torch.tensor([Vocabulary.from_dict(meta["vocab"]).random_walk(context, np.random.default_rng(0))] * batch)
    cond = torch.zeros(batch, model.cfg.n_cond)  # 5 weights for a guidance-distilled model (its channel 0 here)
    cond[0, 0] = 1.0
    with torch.no_grad():
        _, past = model(tokens, cond)
        step_token = tokens[:, -1:]
        full = torch.cat([tokens, step_token], dim=1)

        def with_cache() -> None:
            model(step_token, cond, past)

        def without_cache() -> None:
            model(full, cond)

        return time_calls(with_cache if cached else without_cache, repeat)


def _dense_engine(model_path: Path, meter: TimeSignature, window: int | None = WINDOW):
    from affetto.runtime.engine import Engine

    engine = Engine(model_path, meter=meter, threads=1, window=window)
    engine.prime([Note(60 + (i * 7) % 12, i * 0.25, 0.25, 100) for i in range(int(4 * meter.beats_per_bar * 2))])
    return engine


def bar_times(rows: list[tuple[Path, float, int, int | None]], bars: int,
              meter: TimeSignature) -> list[tuple[list[float], list[int], list[bool]]]:
    """Per row (model, guidance, candidates, context window): wall time, token count and whether it slid the
    window, of whole bars continuing a dense seed in Q1. The rows take turns, one bar each, so that they share
    the machine's moods and their ratios hold within a run on a machine others use too."""
    from affetto.runtime.sampling import SamplingConfig

    capsule = Capsule.of(Quadrant.Q1)
    runs = []
    for model_path, guidance, candidates, window in rows:
        engine = _dense_engine(model_path, meter, window)
        rng = np.random.default_rng(0)
        cfg = SamplingConfig(top_p=0.95, guidance=guidance, candidates=candidates)
        engine.generate_bar_tokens(capsule, cfg, rng)  # warm up, first prefill
        runs.append((engine, rng, cfg, ([], [], [])))
    for _ in range(bars):
        for engine, rng, cfg, (times, tokens, slides) in runs:
            before = engine.stats["slides"]
            t0 = time.perf_counter_ns()
            out = engine.generate_bar_tokens(capsule, cfg, rng)
            times.append((time.perf_counter_ns() - t0) / 1e6)
            tokens.append(len(out))
            slides.append(engine.stats["slides"] > before)
    return [out for *_, out in runs]


def partial_bar_times(model_path: Path, bars: int, meter: TimeSignature, beat: float = 2.0) -> list[float]:
    """Wall time of the rest of a bar from ``beat`` drawn again in Q4, after a bar in Q1 (default settings)."""
    engine = _dense_engine(model_path, meter)
    rng = np.random.default_rng(0)
    happy, calm = Capsule.of(Quadrant.Q1), Capsule.of(Quadrant.Q4)
    out = []
    for _ in range(bars):
        engine.generate_bar(happy, rng=rng)
        t0 = time.perf_counter_ns()
        engine.regenerate_from(beat, calm, rng=rng)
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def load_and_memory(model_path: Path) -> dict[str, float]:
    """Load time and resident memory of a fresh process holding one engine."""
    code = (
        "import time,resource,json;t=time.perf_counter();"
        "from affetto.runtime.engine import Engine;"
        f"e=Engine({str(model_path)!r});e.prime([]);"
        "import numpy as np;from affetto.analysis.emotion import Capsule,Quadrant;"
        "e.generate_bar(Capsule.of(Quadrant.Q1),rng=np.random.default_rng(0));"
        "rss=[l for l in open('/proc/self/status') if l.startswith('VmHWM')];"
        "print(json.dumps({'import_and_load_s':time.perf_counter()-t,'engine_load_s':e.load_seconds,"
        "'peak_rss_mb':int(rss[0].split()[1])/1024 if rss "
        "else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def quantized_copy(model_path: Path, folder: Path, checkpoint: Path | None = None) -> tuple[Path, str] | None:
    """An int8 copy of a model file and how it was made: the checkpoint exported with ``--int8`` (activation
    scales calibrated on its validation data), else the shipped int8 model when ``model_path`` is the shipped
    fp32 one, else ONNX Runtime's dynamic quantisation of the file (needs onnx; re-stamps the manifest's hash)."""
    from affetto.runtime.assets import default_model_path

    manifest = read_manifest(model_path)
    if manifest.get("dtype") == "int8":
        return model_path, "the model itself"
    if checkpoint is not None:
        result = exported(checkpoint, folder / "int8.onnx", int8=True)
        return None if result is None else (result.path, "affetto export --int8 of the checkpoint")
    shipped = default_model_path("int8")
    if model_path.resolve() == default_model_path("fp32").resolve() and shipped.exists():
        return shipped, "the shipped int8 model"
    try:
        import onnx

        from affetto.export.export import quantize_int8, with_manifest
    except ImportError:
        return None
    q = with_manifest(quantize_int8(onnx.load(model_path)), dict(manifest, dtype="int8"))
    out = folder / "int8.onnx"
    onnx.save(q, out)
    return out, "dynamic quantisation of the file (no checkpoint to calibrate on)"


def exported(checkpoint: Path, out: Path, **options):
    """``checkpoint`` exported to ``out`` with ``options`` of ``export_checkpoint`` (no parity check): its
    :class:`ExportResult`, or None without the train extra."""
    try:
        from affetto.export.export import export_checkpoint
    except ImportError:
        return None
    return export_checkpoint(checkpoint, out, check=False, **options)


def _cells(fn: Callable[[int, int], list[float]], columns, table: dict, name: str) -> str:
    cells = []
    for a, b in columns:
        p50, p99 = percentiles(fn(a, b))
        table[f"{name}|{a}|c{b}"] = (p50, p99)
        cells.append(f"{p50:6.3f} / {p99:6.3f}")
    return f"{name:<28}" + "  ".join(f"{c:<16}" for c in cells)


KV8 = "onnxruntime, int8 KV cache"
BESIDE = "model beside"  # --beside: another model file (a guidance-distilled one), timed with the int8 model


FP32, INT8 = "onnxruntime fp32", "onnxruntime int8"
GQA8 = "int8, GroupQueryAttention"


def step_tables(model_path: Path, checkpoint: Path | None, repeat: int, echo: Callable[[str], None],
                int8: Path | None = None, kv8: Path | None = None, gqa8: Path | None = None,
                beside: Path | None = None) -> dict:
    """Per-step times: the engine by candidates and context, PyTorch eager by batch and context."""
    table: dict = {}
    engines = [(FP32, model_path)] + ([(INT8, int8)] if int8 else [])
    engines += [(GQA8, gqa8)] if gqa8 else []
    engines += [(BESIDE, beside)] if beside else []
    engines += [(KV8, kv8)] if kv8 else []
    columns = [(n, c) for n in CANDIDATES for c in CONTEXTS]
    cells = {}
    for name, path in engines:
        steps = StepCells(path, CONTEXTS)
        cells.update({f"{name}|{n}|c{c}": (steps, n, c) for n, c in columns})
    times = interleaved_steps(cells, repeat)
    echo("")
    echo("decode step, ms p50 / p99       " + "  ".join(f"{f'{n} cand., ctx {c}':<16}" for n, c in columns))
    echo(f"(the {len(cells)} cells take turns, 10 steps at a time)")
    for name, _ in engines:
        text = []
        for n, c in columns:
            key = f"{name}|{n}|c{c}"
            table[key] = percentiles(times[key])
            text.append(f"{table[key][0]:6.3f} / {table[key][1]:6.3f}")
        echo(f"{name:<28}" + "  ".join(f"{t:<16}" for t in text))
    if checkpoint is not None:
        columns = [(b, c) for b in (1, 2) for c in CONTEXTS]
        echo("")
        echo("pytorch eager, ms p50 / p99     " + "  ".join(f"{f'batch {b}, ctx {c}':<16}" for b, c in columns))
        echo(_cells(lambda b, c: torch_step_times(checkpoint, b, c, repeat, True), columns, table,
                    "pytorch eager, KV cache"))
        echo(_cells(lambda b, c: torch_step_times(checkpoint, b, c, max(20, repeat // 10), False), columns, table,
                    "pytorch eager, no cache"))
    return table


def run(model_path: Path, checkpoint: Path | None, *, repeat: int = 200, bars: int = 40,
        echo: Callable[[str], None] = print, beside: Path | None = None) -> dict:
    import platform

    from affetto.runtime.sampling import DEFAULT_SAMPLING

    results: dict = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                     "threads": 1, "model": str(model_path)}
    echo(f"affetto bench: {model_path.name}, one CPU thread, {repeat} steps per cell, {bars} bars per row")
    tmp = tempfile.TemporaryDirectory()
    folder = Path(tmp.name)
    kv8_result = exported(checkpoint, folder / "kv8.onnx", kv_int8=True) if checkpoint is not None else None
    kv8 = None if kv8_result is None else (kv8_result.path, kv8_result.kv_int8 or {})
    if kv8 is not None:
        agree = results["kv_int8_agreement"] = kv8[1]
        echo(f"int8 KV cache (affetto export --kv-int8): top-1 agreement with fp32 {100 * agree['top1_agreement']:.2f}%"
             f" over {agree['tokens']} rows x tokens decoded, largest logit difference {agree['max_logit_diff']:.3f}")
    int8 = quantized_copy(model_path, folder, checkpoint)
    if int8 is not None:
        results["int8"] = int8[1]
        agree = read_manifest(int8[0]).get("quantization")
        echo(f"int8 weights ({int8[1]})" + (f": top-1 agreement with fp32 {100 * agree['top1_agreement']:.2f}% over "
                                           f"{agree['tokens']} tokens, largest logit difference "
                                           f"{agree['max_logit_diff']:.3f}" if agree else ""))
    # int8 with GroupQueryAttention (affetto export --int8 --attention gqa): the attention before the MatMul one
    gqa8_result = exported(checkpoint, folder / "gqa-int8.onnx", int8=True, attention="gqa") if checkpoint else None
    gqa8 = None if gqa8_result is None else gqa8_result.path
    if gqa8 is not None:
        echo(f"{GQA8} (affetto export --int8 --attention gqa of the checkpoint): the attention before the MatMul one")
    if beside is not None:
        manifest = read_manifest(beside)
        rows = (manifest.get("kv_cache") or {}).get("rows", 2)
        results["beside"] = {"model": str(beside), "name": manifest.get("name"), "dtype": manifest.get("dtype"),
                             "rows": rows}
        echo(f"{BESIDE}: {beside.name} ({manifest.get('name')}, {manifest.get('dtype')}, {rows} row"
             f"{'s' if rows != 1 else ''} per candidate)")
    table = step_tables(model_path, checkpoint, repeat, echo, int8[0] if int8 else None, kv8[0] if kv8 else None,
                        gqa8, beside)
    results["step_ms"] = {k: {"p50": v[0], "p99": v[1]} for k, v in table.items()}

    def step(cells: str, n: int, context: int) -> float:
        return table[f"{cells}|{n}|c{context}"][0]

    ratios = {}
    for prefix, cells, present in (("", FP32, True), ("int8 KV, ", KV8, kv8), ("int8, ", INT8, int8),
                                   ("int8 GroupQueryAttention, ", GQA8, gqa8), ("beside, ", BESIDE, beside)):
        for n in CANDIDATES if present else ():
            ratios[f"step, {prefix}context 1000 / 100, {n} candidates"] = step(cells, n, 1000) / step(cells, n, 100)
    for n in CANDIDATES if kv8 else ():
        ratios[f"step, int8 KV / fp32, context 1000, {n} candidates"] = step(KV8, n, 1000) / step(FP32, n, 1000)
    for n in CANDIDATES if gqa8 and int8 else ():
        for c in CONTEXTS:
            ratios[f"step, int8, MatMul / GroupQueryAttention, {n} cand., ctx {c}"] = (
                step(INT8, n, c) / step(GQA8, n, c))
    for n in CANDIDATES if beside and int8 else ():
        for c in CONTEXTS:
            ratios[f"step, beside / int8, {n} cand., ctx {c}"] = step(BESIDE, n, c) / step(INT8, n, c)
    for c in CONTEXTS:
        ratios[f"step, 3 candidates / 1, context {c}"] = step(FP32, 3, c) / step(FP32, 1, c)
        if beside is not None:
            ratios[f"step, beside, 3 candidates / 1, context {c}"] = step(BESIDE, 3, c) / step(BESIDE, 1, c)
        if int8 is not None:
            ratios[f"step, int8, 3 candidates / 1, context {c}"] = step(INT8, 3, c) / step(INT8, 1, c)
            ratios[f"step, int8 / fp32, 3 candidates, context {c}"] = step(INT8, 3, c) / step(FP32, 3, c)
        if checkpoint is not None:
            ratios[f"eager+cache batch 2 / engine 1 candidate, ctx {c}"] = (
                step("pytorch eager, KV cache", 2, c) / step(FP32, 1, c))

    echo("")
    meter = TimeSignature(4, 4)
    bar_ms = 60_000 / 120 * meter.beats_per_bar
    default = DEFAULT_SAMPLING.candidates

    def plural(n: int) -> str:
        return f"{n} candidate{'s' if n > 1 else ''}"

    # (label, guidance, candidates, model, window, group): the guided rows' p50 / p99 are kept by group
    rows = [("no guidance", 1.0, 1, model_path, WINDOW, None)]
    rows += [(f"guidance 1.5, {plural(n)}", 1.5, n, model_path, WINDOW, "fp32") for n in CANDIDATES]
    rows += [(f"{name}, {plural(n)}", 1.5, n, path[0], WINDOW, name)
             for name, path in (("int8", int8), ("int8 KV", kv8)) if path for n in (1, default)]
    rows += [(f"int8 GQA, {plural(n)}", 1.5, n, gqa8, WINDOW, "int8 GQA") for n in (1, default) if gqa8]
    rows += [(f"beside, {plural(n)}", 1.5, n, beside, WINDOW, "beside") for n in (1, default) if beside]
    rows += [(f"whole context, {plural(n)}", 1.5, n, model_path, None, "whole") for n in (1, default)]
    echo(f"whole bars: the {len(rows)} rows take turns, one bar each; the engine's context window is {WINDOW} "
         "tokens (the slide keeps half), the whole context's the model's positions")
    groups: dict[str, dict[int, tuple[float, float]]] = {"fp32": {}, "int8": {}, "int8 KV": {}, "int8 GQA": {},
                                                         "whole": {}, "beside": {}}
    measured = bar_times([(path, guidance, n, window) for _, guidance, n, path, window, _ in rows], bars, meter)
    for (label, _, n, _, _, group), (times, tokens, slides) in zip(rows, measured):
        p50, p99 = percentiles(times)
        slid = [t for t, s in zip(times, slides) if s]
        kept = [t for t, s in zip(times, slides) if not s]
        row = {"p50": p50, "p99": p99, "tokens_p50": float(np.median(tokens)), "tokens_max": int(max(tokens)),
               "rtf_p99": bar_ms / p99, "slides": len(slid)}
        if slid and kept:
            row["slide_p50"], row["slide_p99"] = percentiles(slid)
            row["others_p50"], row["others_p99"] = percentiles(kept)
        results[f"bar_ms|{label}"] = row
        if group is not None:
            groups[group][n] = (p50, p99)
        slide_text = (f"; {len(slid)} slid the window: p99 {row['slide_p99']:.1f} ms, others {row['others_p99']:.1f}"
                      if "slide_p99" in row else "")
        echo(f"bar at 120 BPM, {label:<28} p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  ({np.median(tokens):.0f} tokens "
             f"p50, {max(tokens)} max){slide_text}; real-time factor at p99 {bar_ms / p99:.1f}x")
        if n == default and "slide_p99" in row and group == "fp32":
            ratios[f"bar, slid / others, p99, {n} candidates"] = row["slide_p99"] / row["others_p99"]
    bar_p, int8_p, whole_p = groups["fp32"], groups["int8"], groups["whole"]
    for name in ("int8 KV", "int8"):
        quant = groups[name]
        if 1 in quant and default in quant:
            ratios[f"bar, {name}, {default} candidates / 1, p50"] = quant[default][0] / quant[1][0]
            for n in (1, default):
                ratios[f"bar, {name} / fp32, {n} cand., p50"] = quant[n][0] / bar_p[n][0]
                ratios[f"bar, {name} / fp32, {n} cand., p99"] = quant[n][1] / bar_p[n][1]
    for n, (p50, p99) in groups["int8 GQA"].items():
        if n in int8_p:
            ratios[f"bar, int8, MatMul / GroupQueryAttention, {n} cand., p50"] = int8_p[n][0] / p50
            ratios[f"bar, int8, MatMul / GroupQueryAttention, {n} cand., p99"] = int8_p[n][1] / p99
    for n, (p50, p99) in groups["beside"].items():
        if n in int8_p:
            ratios[f"bar, beside / int8, {n} cand., p50"] = p50 / int8_p[n][0]
            ratios[f"bar, beside / int8, {n} cand., p99"] = p99 / int8_p[n][1]
    if 1 in groups["beside"] and default in groups["beside"]:
        ratios[f"bar, beside, {default} candidates / 1, p50"] = groups["beside"][default][0] / groups["beside"][1][0]
    for n in CANDIDATES:
        if n > 1 and n in bar_p and 1 in bar_p:
            ratios[f"bar, {n} candidates / 1, p50"] = bar_p[n][0] / bar_p[1][0]
    for n, (p50, p99) in whole_p.items():
        ratios[f"bar, window {WINDOW} / whole context, {n} cand., p50"] = bar_p[n][0] / p50
        ratios[f"bar, window {WINDOW} / whole context, {n} cand., p99"] = bar_p[n][1] / p99
    if 1 in whole_p and default in whole_p:
        ratios[f"bar, whole context, {default} candidates / 1, p50"] = whole_p[default][0] / whole_p[1][0]

    engine_p = int8_p if default in int8_p else bar_p  # the engine on the CPU runs int8 where there is one
    partial = partial_bar_times(int8[0] if int8 is not None else model_path, bars, meter)
    p50, p99 = percentiles(partial)
    results["partial_bar_ms"] = {"p50": p50, "p99": p99, "from_beat": 2.0}
    echo(f"partial bar (from beat 2, a new capsule{', int8' if int8 is not None else ''})  p50 {p50:6.1f} ms  "
         f"p99 {p99:6.1f} ms")
    if default in engine_p:
        ratios[f"partial bar / whole bar ({default} candidates), p50"] = p50 / engine_p[default][0]
        ratios[f"partial bar / whole bar ({default} candidates), p99"] = p99 / engine_p[default][1]
    if beside is not None and default in groups["beside"]:
        p50, p99 = percentiles(partial_bar_times(beside, bars, meter))
        results["partial_bar_ms_beside"] = {"p50": p50, "p99": p99, "from_beat": 2.0}
        echo(f"partial bar (from beat 2, a new capsule, beside)  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms")
        ratios[f"partial bar / whole bar, beside ({default} candidates), p50"] = p50 / groups["beside"][default][0]
        ratios[f"partial bar / whole bar, beside ({default} candidates), p99"] = p99 / groups["beside"][default][1]

    echo("")
    for k, v in ratios.items():
        echo(f"{k:<52} {v:5.2f}x")
    results["ratios"] = ratios

    tmp.cleanup()
    mem = load_and_memory(model_path)
    results["load"] = mem
    echo("")
    echo(f"engine load {mem['engine_load_s'] * 1000:.0f} ms "
         f"(process with imports {mem['import_and_load_s']:.2f} s), "
         f"peak resident memory {mem['peak_rss_mb']:.0f} MB")
    return results


def main(argv: list[str] | None = None) -> int:
    from affetto.runtime import default_model_path

    parser = argparse.ArgumentParser(prog="affetto bench", description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="An affetto .onnx model in fp32 (default: the shipped one; its int8 copy is "
                        "timed beside it).")
    parser.add_argument("--checkpoint", help="The PyTorch checkpoint of the same weights, for the eager rows.")
    parser.add_argument("--repeat", type=int, default=200, help="Steps timed per cell (>= 10; default 200).")
    parser.add_argument("--bars", type=int, default=40, help="Bars timed per row (>= 5; default 40).")
    parser.add_argument("--json-out", help="Also write the figures as JSON.")
    parser.add_argument("--beside", help="Another .onnx model (e.g. a guidance-distilled one, `affetto distill`) "
                        "whose steps and bars are timed beside the others, with ratios to the int8 model's.")
    args = parser.parse_args(argv)
    if args.repeat < 10 or args.bars < 5:
        parser.error("--repeat must be >= 10 and --bars >= 5")
    results = run(Path(args.model) if args.model else default_model_path("fp32"),
                  Path(args.checkpoint) if args.checkpoint else None, repeat=args.repeat, bars=args.bars,
                  beside=Path(args.beside) if args.beside else None)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
