"""Ensemble checkpoint -> one self-describing ``.onnx``: a whole 4-bar phrase per run.

Inputs (``B`` is dynamic): ``melody [B, bars, 16, P]`` (the given soprano,
zeros when none), ``has_melody [B, 1]``, ``capsule [B, 4]``, ``triple [B, 1]``
(1 for bars of 3 beats), and the four latents ``z_chords [B, Z]``,
``z_style [B, Z]``, ``z_melody [B, 4, Z]``, ``z_groove [B, 4, Z]``. Output:
``probs [B, 4, bars, 16, P]`` for soprano, alto, tenor and bass.

The export checks ``onnx.checker`` and parity with PyTorch (max abs
difference of the probabilities, conditioned and free rows, 4/4 and 3/4) on
a real ONNX Runtime session, then stores the manifest (``"family":
"ensemble"``) with a hash of the graph.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

import affetto
from affetto.analysis.emotion import Quadrant
from affetto.analysis.voicing import VOICE_RANGES
from affetto.ensemble.engine import DEFAULT_CANDIDATES, FAMILY, INPUTS, VOICES
from affetto.errors import ModelFileError
from affetto.export.export import with_manifest
from affetto.export.families import GraphExport
from affetto.manifest import FORMAT, FORMAT_VERSION, read_manifest
from affetto.models.checkpoint import load_checkpoint
from affetto.models.musegan.data import LOW
from affetto.models.musegan.model import Generator, latents

OPSET = 18
ATOL = 1e-4


def example_inputs(gen: Generator, batch: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """Rows that cover the graph's cases: given melody or not, capsule or none, 4/4 and 3/4."""
    cfg = gen.cfg
    g = torch.Generator().manual_seed(seed)
    melody = (torch.rand(batch, cfg.bars, cfg.steps, cfg.pitches, generator=g) > 0.97).float()
    return {
        "melody": melody,
        "has_melody": (torch.arange(batch) % 2 == 0).float().view(batch, 1),
        "capsule": torch.eye(4)[torch.arange(batch) % 4] * (torch.arange(batch) % 3 != 2).float().view(batch, 1),
        "triple": (torch.arange(batch) % 4 == 3).float().view(batch, 1),
        **latents(batch, cfg, g),
    }


class _Graph(torch.nn.Module):
    """The generator with its inputs in the graph's order."""

    def __init__(self, gen: Generator) -> None:
        super().__init__()
        self.gen = gen

    def forward(self, melody, has_melody, capsule, triple, z_chords, z_style, z_melody, z_groove):
        return self.gen(z_chords, z_style, z_melody, z_groove, capsule, triple, melody, has_melody)


def build_graph(gen: Generator) -> onnx.ModelProto:
    gen.eval()
    inputs = example_inputs(gen)
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter: a plain feed-forward graph, traced once
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            # torch types f as a path, but its TorchScript exporter (dynamo=False) writes to a file object too
            _Graph(gen), tuple(inputs[name] for name in INPUTS), buffer,  # type: ignore[arg-type]
            input_names=list(INPUTS),
            output_names=["probs"], dynamic_axes={name: {0: "batch"} for name in [*INPUTS, "probs"]},
            opset_version=OPSET, dynamo=False,
        )
    return onnx.load_from_string(buffer.getvalue())


def check_parity(model: onnx.ModelProto, gen: Generator, seeds: tuple[int, ...] = (0, 1)) -> float:
    """Max abs difference of the probabilities, ONNX Runtime vs PyTorch, over a few input sets."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    worst = 0.0
    for seed in seeds:
        inputs = example_inputs(gen, batch=4 + seed, seed=seed)
        with torch.no_grad():
            expected = _Graph(gen)(*(inputs[name] for name in INPUTS)).numpy()
        got = session.run(["probs"], {k: v.numpy() for k, v in inputs.items()})[0]
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst


def build_manifest(gen: Generator, meta: dict, threshold: float, max_abs_diff: float,
                   candidates: int = DEFAULT_CANDIDATES) -> dict[str, Any]:
    cfg = gen.cfg
    train = meta.get("train", {})
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "family": FAMILY,
        "name": Path(str(train.get("out", "ensemble"))).name,
        "dtype": "fp32",
        "grid": {"steps_per_beat": 4},
        "roll": {"tracks": cfg.tracks, "voices": list(VOICES), "low": LOW, "pitches": cfg.pitches,
                 "bars": cfg.bars, "steps_per_bar": cfg.steps, "triple_steps": 12},
        "voice_ranges": {k: list(v) for k, v in VOICE_RANGES.items()},
        "inputs": list(INPUTS),
        "outputs": ["probs"],
        "model": cfg.to_dict(),
        "decode": {"threshold": threshold, "candidates": candidates,
                   "rule": "per step and voice, the top pitch if the probabilities sum to >= threshold"},
        "conditioning": {
            "quadrants": [f"{q.name} {q.mood}" for q in Quadrant],
            "cond_dropout": float(train.get("cond_dropout", 0.0)),
            "melody_rate": float(train.get("melody_rate", 0.0)),
        },
        "training": {"data": meta.get("data_summary", {}), "step": meta.get("step"),
                     "minutes": round(float(meta.get("train_seconds", 0.0)) / 60, 1),
                     "last": (meta.get("history") or [{}])[-1], "config": train},
        "parity": {"max_abs_diff": max_abs_diff, "atol": ATOL},
        "exporter": {"affetto": affetto.__version__, "torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": ort.__version__, "opset": OPSET},
    }


def export_generator(gen: Generator, meta: dict, out: str | Path, *, threshold: float = 0.5,
                     candidates: int = DEFAULT_CANDIDATES) -> GraphExport:
    """Write ``gen`` to ``out``; raises :class:`ModelFileError` when parity fails."""
    model = build_graph(gen)
    onnx.checker.check_model(model, full_check=True)
    diff = check_parity(model, gen)
    if not diff <= ATOL:
        raise ModelFileError(f"exported ensemble graph disagrees with PyTorch: max abs difference {diff:.2e}")
    model = with_manifest(model, build_manifest(gen, meta, threshold, diff, candidates))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    onnx.save(model, tmp)
    tmp.replace(out)
    return GraphExport(out, out.stat().st_size, diff, read_manifest(out), ATOL)


def export_ensemble(checkpoint: str | Path, out: str | Path, *, threshold: float = 0.5,
                    candidates: int = DEFAULT_CANDIDATES) -> GraphExport:
    gen, meta = load_checkpoint(checkpoint)  # its family (in the checkpoint) builds the model
    if not isinstance(gen, Generator):
        raise ModelFileError(f"{checkpoint}: a {meta.get('family', 'lead')} checkpoint, not an ensemble one")
    return export_generator(gen, meta, out, threshold=threshold, candidates=candidates)
