"""Mood checkpoint -> one self-describing ``.onnx``: ``python -m affetto.export.mood CHECKPOINT --out FILE``.

Inputs ``roll [B, C, T]``, ``mask [B, T]`` and ``summary [B, S]`` (``B`` and
``T`` dynamic; the features of :mod:`affetto.words.mood`), outputs ``logits
[B, 4]`` and ``va [B, 2]``. The export checks ``onnx.checker`` and parity with
PyTorch on a real ONNX Runtime session (rows of different lengths padded in
one batch, and single phrases), then stores the manifest (``"family":
"mood"``, the features' version, the held-out figures) with a hash of the graph.
With ``--assets`` the weights and the checkpoint's JSON are copied beside the
``.onnx`` (``affetto-mood.{safetensors,json}``), as the shipped model is.
"""

from __future__ import annotations

import io
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

import affetto
from affetto.analysis.emotion import Quadrant
from affetto.errors import ModelFileError
from affetto.export.export import with_manifest
from affetto.export.families import ExportFamily, GraphExport
from affetto.manifest import FORMAT, FORMAT_VERSION, read_manifest
from affetto.models.checkpoint import checkpoint_paths, load_checkpoint
from affetto.models.mood.model import MoodNet
from affetto.words.mood import (
    FAMILY,
    FEATURES_VERSION,
    INPUTS,
    MAX_BEATS,
    OUTPUTS,
    ROLL_CHANNELS,
    STEPS_PER_BEAT,
    SUMMARY_SIZE,
)

OPSET = 18
ATOL = 1e-4


def example_inputs(batch: int = 3, steps: int = 48, seed: int = 0) -> dict[str, torch.Tensor]:
    """Rows of different lengths in one padded batch (the first full, the others shorter)."""
    g = torch.Generator().manual_seed(seed)
    roll = (torch.rand(batch, ROLL_CHANNELS, steps, generator=g) > 0.7).float()
    lengths = torch.tensor([steps - (i * steps) // (2 * batch) for i in range(batch)])
    mask = (torch.arange(steps)[None, :] < lengths[:, None]).float()
    roll = roll * mask[:, None, :]
    summary = torch.randn(batch, SUMMARY_SIZE, generator=g)
    return {"roll": roll, "mask": mask, "summary": summary}


def build_graph(model: MoodNet) -> onnx.ModelProto:
    model.eval()
    inputs = example_inputs()
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter: a plain feed-forward graph, traced once
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            model, tuple(inputs[name] for name in INPUTS), buffer,  # type: ignore[arg-type]
            input_names=list(INPUTS), output_names=list(OUTPUTS),
            dynamic_axes={"roll": {0: "batch", 2: "steps"}, "mask": {0: "batch", 1: "steps"},
                          "summary": {0: "batch"}, "logits": {0: "batch"}, "va": {0: "batch"}},
            opset_version=OPSET, dynamo=False,
        )
    return onnx.load_from_string(buffer.getvalue())


def check_parity(model_bytes: bytes, model: MoodNet, *_unused: Any) -> float:
    """Max abs difference of logits and va, ONNX Runtime vs PyTorch, over padded batches and single rows."""
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    worst = 0.0
    for seed, (batch, steps) in enumerate(((3, 48), (1, 16), (5, 64), (2, 4))):
        inputs = example_inputs(batch, steps, seed)
        with torch.no_grad():
            expected = [t.numpy() for t in model(*(inputs[name] for name in INPUTS))]
        got = session.run(list(OUTPUTS), {k: v.numpy() for k, v in inputs.items()})
        worst = max(worst, *(float(np.abs(a - b).max()) for a, b in zip(got, expected)))
    return worst


def build_manifest(model: MoodNet, meta: dict, dtype: str = "fp32", max_abs_diff: float | None = None) -> dict:
    train = meta.get("train", {})
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "family": FAMILY,
        "name": "affetto-mood",
        "dtype": dtype,
        "features": {"version": FEATURES_VERSION, "roll_channels": ROLL_CHANNELS, "summary": SUMMARY_SIZE,
                     "steps_per_beat": STEPS_PER_BEAT, "max_beats": MAX_BEATS},
        "inputs": list(INPUTS),
        "outputs": list(OUTPUTS),
        "quadrants": [f"{q.name} {q.mood}" for q in Quadrant],
        "model": model.cfg.to_dict(),
        "training": {"data": meta.get("data_summary", {}), "step": meta.get("step"),
                     "minutes": round(float(meta.get("train_seconds", 0.0)) / 60, 1),
                     "held_out": meta.get("held_out", {}), "config": train,
                     "labels": "feature judge (mode -> valence; onsets per beat and velocity -> arousal)"
                               + (" and EMOPIA quadrants" if train.get("emopia") else "")},
        "parity": {"max_abs_diff": max_abs_diff, "atol": ATOL},
        "exporter": {"affetto": affetto.__version__, "torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": ort.__version__, "opset": OPSET},
    }


def _agreement(*_args: Any) -> dict:
    raise ModelFileError("the mood model is exported in fp32 only")


# The export registry's entry (affetto.export.families); the command below is how it is run.
EXPORT_FAMILY = ExportFamily(FAMILY, build_graph, check_parity, _agreement,
                             lambda model, meta, dtype: build_manifest(model, meta, dtype))


def export_mood(checkpoint: str | Path, out: str | Path, *, assets: bool = False) -> GraphExport:
    """Write the checkpoint's model to ``out``; raises :class:`ModelFileError` when parity fails."""
    model, meta = load_checkpoint(checkpoint)
    if not isinstance(model, MoodNet):
        raise ModelFileError(f"{checkpoint}: a {meta.get('family', 'lead')} checkpoint, not a mood one")
    graph = build_graph(model)
    onnx.checker.check_model(graph, full_check=True)
    diff = check_parity(graph.SerializeToString(), model)
    if not diff <= ATOL:
        raise ModelFileError(f"exported mood graph disagrees with PyTorch: max abs difference {diff:.2e}")
    graph = with_manifest(graph, build_manifest(model, meta, "fp32", diff))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    onnx.save(graph, tmp)
    tmp.replace(out)
    if assets:
        weights, _, meta_path = checkpoint_paths(checkpoint)
        shutil.copyfile(weights, out.with_suffix(".safetensors"))
        slim = {k: v for k, v in json.loads(meta_path.read_text(encoding="utf-8")).items()
                if k != "optimizer_groups"}
        out.with_suffix(".json").write_text(json.dumps(slim, indent=1, sort_keys=True), encoding="utf-8")
    return GraphExport(out, out.stat().st_size, diff, read_manifest(out), ATOL)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--out", required=True)
    parser.add_argument("--assets", action="store_true", help="copy the weights and JSON beside the .onnx")
    args = parser.parse_args(argv)
    print(export_mood(args.checkpoint, args.out, assets=args.assets))


if __name__ == "__main__":
    main()
