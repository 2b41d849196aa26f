"""The engine against PyTorch, on the same weights, in one run (``affetto bench`` runs this file).

Usage: ``python bench/bench_engine.py [--model M.onnx] [--checkpoint runs/x/best] [--repeat N]
[--bars N] [--json-out F]`` (the same options through ``affetto bench``).

Prints per-token decode time (p50/p99) for the ONNX Runtime engine (fp32 and
int8) and PyTorch eager with and without a KV cache, at batch 1 and 2
(guidance) and contexts of 100 and 1000 tokens; the time to generate a bar
at 120 BPM without guidance, with it, and with it and the default 4
candidates, and its real-time factor; and the engine's load time and resident memory. Everything runs on one CPU thread.
Numbers are measured in this run; nothing here passes or fails.
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
from affetto.music.notes import Note, TimeSignature


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


def engine_step_times(model_path: Path, batch: int, context: int, repeat: int) -> list[float]:
    """One decode step of the engine at a fixed context length (the cache is rewound each time)."""
    from affetto.runtime.engine import Engine

    engine = Engine(model_path, threads=1)
    q1 = Capsule.of(Quadrant.Q1).weights
    cache = engine.cache
    cache.condition((q1, (0.0, 0.0, 0.0, 0.0)) if batch == 2 else (q1,))
    cache.reset(engine.vocab.random_walk(context, np.random.default_rng(0)))
    cache.prefill()
    token = engine.vocab.bar

    def step() -> None:
        cache.step(token)
        cache.rewind(context)  # the next step overwrites the same slot

    return time_calls(step, repeat)


def torch_step_times(checkpoint: Path, batch: int, context: int, repeat: int, cached: bool) -> list[float]:
    import torch

    from affetto.models.checkpoint import load_checkpoint

    torch.set_num_threads(1)
    model, meta = load_checkpoint(checkpoint)
    from affetto.tokens.vocab import Vocabulary

    tokens = torch.tensor([Vocabulary.from_dict(meta["vocab"]).random_walk(context, np.random.default_rng(0))] * batch)
    cond = torch.zeros(batch, 4)
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


def bar_times(model_path: Path, guidance: float, bars: int, meter: TimeSignature,
              candidates: int = 1) -> tuple[list[float], list[int]]:
    """Wall time and token count of whole bars, continuing a dense seed in a busy emotion."""
    from affetto.runtime.engine import Engine

    engine = Engine(model_path, meter=meter, threads=1)
    seed = [Note(60 + (i * 7) % 12, i * 0.25, 0.25, 100) for i in range(int(4 * meter.beats_per_bar * 2))]
    rng = np.random.default_rng(0)
    engine.prime(seed)
    capsule = Capsule.of(Quadrant.Q1)
    from affetto.runtime.sampling import SamplingConfig

    cfg = SamplingConfig(top_p=0.95, guidance=guidance, candidates=candidates)
    engine.generate_bar_tokens(capsule, cfg, rng)  # warm up, first prefill
    times, tokens = [], []
    for _ in range(bars):
        t0 = time.perf_counter_ns()
        out = engine.generate_bar_tokens(capsule, cfg, rng)
        times.append((time.perf_counter_ns() - t0) / 1e6)
        tokens.append(len(out))
    return times, tokens


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


def quantized_copy(model_path: Path, folder: Path) -> Path | None:
    """An int8 copy of a model file (needs onnx; re-stamps the manifest's hash)."""
    try:
        import onnx

        from affetto.export.export import quantize_int8, with_manifest
        from affetto.manifest import read_manifest
    except ImportError:
        return None
    manifest = read_manifest(model_path)
    if manifest.get("dtype") == "int8":
        return model_path
    q = with_manifest(quantize_int8(onnx.load(model_path)), dict(manifest, dtype="int8"))
    out = folder / "int8.onnx"
    onnx.save(q, out)
    return out


def run(model_path: Path, checkpoint: Path | None, *, repeat: int = 200, bars: int = 40,
        echo: Callable[[str], None] = print) -> dict:
    import platform

    results: dict = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                     "threads": 1, "model": str(model_path)}
    echo(f"affetto bench: {model_path.name}, one CPU thread, {repeat} steps per cell, {bars} bars per row")
    with tempfile.TemporaryDirectory() as tmp:
        int8 = quantized_copy(model_path, Path(tmp))
        rows: list[tuple[str, Callable[[int, int], list[float]]]] = [
            ("onnxruntime fp32 (engine)", lambda b, c: engine_step_times(model_path, b, c, repeat)),
        ]
        if int8 is not None:
            rows.append(("onnxruntime int8 (engine)", lambda b, c: engine_step_times(int8, b, c, repeat)))
        if checkpoint is not None:
            rows.append(("pytorch eager, KV cache", lambda b, c: torch_step_times(checkpoint, b, c, repeat, True)))
            rows.append(("pytorch eager, no cache",
                         lambda b, c: torch_step_times(checkpoint, b, c, max(20, repeat // 10), False)))
        echo("")
        echo("per-token decode, ms            batch 1 ctx 100   batch 1 ctx 1000  batch 2 ctx 100   batch 2 ctx 1000")
        table = {}
        for name, fn in rows:
            cells = []
            for batch in (1, 2):
                for context in (100, 1000):
                    p50, p99 = percentiles(fn(batch, context))
                    table[f"{name}|b{batch}|c{context}"] = (p50, p99)
                    cells.append(f"{p50:6.3f} / {p99:6.3f}")
            echo(f"{name:<32}" + "  ".join(f"{c:<16}" for c in cells))
        results["per_token_ms"] = {k: {"p50": v[0], "p99": v[1]} for k, v in table.items()}

        echo("")
        ratios = {}
        fp32 = "onnxruntime fp32 (engine)"
        for batch in (1, 2):
            c100, c1000 = table[f"{fp32}|b{batch}|c100"][0], table[f"{fp32}|b{batch}|c1000"][0]
            ratios[f"context 1000 / 100, batch {batch}"] = c1000 / c100
            if checkpoint is not None:
                for context in (100, 1000):
                    eager = table[f"pytorch eager, KV cache|b{batch}|c{context}"][0]
                    engine_ms = table[f"{fp32}|b{batch}|c{context}"][0]
                    ratios[f"eager+cache / engine, batch {batch}, ctx {context}"] = eager / engine_ms
        for k, v in ratios.items():
            echo(f"{k:<45} {v:5.2f}x")
        results["ratios"] = ratios

        echo("")
        from affetto.runtime.sampling import DEFAULT_SAMPLING

        meter = TimeSignature(4, 4)
        bar_ms = 60_000 / 120 * meter.beats_per_bar
        for label, g, n in (("no guidance", 1.0, 1), ("guidance 1.5 (batch 2)", 1.5, 1),
                            (f"guidance, {DEFAULT_SAMPLING.candidates} candidates", 1.5,
                             DEFAULT_SAMPLING.candidates)):
            times, tokens = bar_times(model_path, g, bars, meter, candidates=n)
            p50, p99 = percentiles(times)
            per_token = np.median(np.asarray(times) / np.asarray(tokens))
            results[f"bar_ms|{label}"] = {"p50": p50, "p99": p99, "tokens_p50": float(np.median(tokens)),
                                          "tokens_max": int(max(tokens)), "rtf_p99": bar_ms / p99,
                                          "ms_per_70_tokens": float(per_token * 70)}
            echo(f"bar at 120 BPM, {label:<24} p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  "
                 f"({np.median(tokens):.0f} tokens p50, {max(tokens)} max; {per_token * 70:5.1f} ms per 70 tokens)  "
                 f"real-time factor at p99 {bar_ms / p99:6.1f}x")
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
    parser.add_argument("--model", help="An affetto .onnx model (default: the shipped one).")
    parser.add_argument("--checkpoint", help="The PyTorch checkpoint of the same weights, for the eager rows.")
    parser.add_argument("--repeat", type=int, default=200, help="Steps timed per cell (>= 10; default 200).")
    parser.add_argument("--bars", type=int, default=40, help="Bars timed per row (>= 5; default 40).")
    parser.add_argument("--json-out", help="Also write the figures as JSON.")
    args = parser.parse_args(argv)
    if args.repeat < 10 or args.bars < 5:
        parser.error("--repeat must be >= 10 and --bars >= 5")
    results = run(Path(args.model) if args.model else default_model_path(),
                  Path(args.checkpoint) if args.checkpoint else None, repeat=args.repeat, bars=args.bars)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
