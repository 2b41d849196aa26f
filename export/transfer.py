"""Transfer checkpoint -> one self-describing ``.onnx`` (plus its safetensors checkpoint beside it).

One graph, three parts, run by name (:mod:`affetto.transfer.model`):

- ``roll [B, bars, steps, 2, 88]``, ``src_cond [B, 6]``, ``tgt_cond [B, 6]``, ``density [B, bars]``,
  ``poly [B, bars]``, ``meter [B]``, ``eps [B, bars, steps / k, Z]`` -> ``probs [B, bars, steps, 2, 88]`` (onset
  and frame probabilities of the re-played phrase) and ``mean [B, bars, steps / k, Z]`` (the posterior mean; a
  latent per ``k = z_steps`` steps);
- ``notes [N, notes, 7]``, ``note_mask [N, notes]``, ``perf_cond [N, 4]`` -> ``velocity [N, notes]`` (1..127).

Every size but the pitches and the feature columns is dynamic. The export
runs ``onnx.checker`` and checks parity with PyTorch on a real ONNX Runtime
session (4/4 and 3/4 phrases of 1 and 4 bars, note sets with padding), then
stores the manifest (``"family": "transfer"``) with a hash of the graph.
"""

from __future__ import annotations

import io
import json
import shutil
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
import numpy as np
import onnx
import onnxruntime as ort
import torch

import affetto
from affetto.analysis.attributes import DENSITY_EDGES, POLYPHONY_EDGES
from affetto.analysis.emotion import Quadrant
from affetto.errors import ModelFileError
from affetto.export.export import with_manifest
from affetto.export.families import ExportFamily, GraphExport
from affetto.manifest import FORMAT, FORMAT_VERSION, read_manifest
from affetto.models.checkpoint import checkpoint_paths, load_checkpoint
from affetto.models.transfer.model import TransferModel
from affetto.transfer.model import (
    FAMILY,
    INPUTS,
    MAX_BAR_STEPS,
    MAX_BARS,
    METERS,
    N_FEATURES,
    OUTPUTS,
    PITCH_MIN,
    PITCHES,
    STEPS_PER_BEAT,
    DecodeSettings,
)

OPSET = 18
ATOL = 1e-4
# What the manifest asks the runtime to decode with; anchored decoding's settings were chosen on validation
# pairs (python -m affetto.models.transfer.anchor).
SHIPPED_DECODE = DecodeSettings(threshold=0.5, noise=0.5, anchor=1, anchor_bias=5.0, contrast=1.5)


class _Graph(torch.nn.Module):
    """The model with the graph's inputs and outputs."""

    def __init__(self, model: TransferModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, roll, src_cond, tgt_cond, density, poly, meter, eps, notes, note_mask, perf_cond):
        m = self.model
        mean, logvar = m.encoder(roll, src_cond, density, poly, meter)
        z = mean + torch.exp(0.5 * logvar) * eps
        probs = torch.sigmoid(m.decoder(z, roll.shape[2], tgt_cond, density, poly, meter))
        velocity = 1.0 + 126.0 * m.performer(notes, note_mask, perf_cond)
        return probs, mean, velocity


def example_inputs(model: TransferModel, batch: int = 2, bars: int = 4, steps: int = 16, notes: int = 24,
                   seed: int = 0) -> dict[str, torch.Tensor]:
    cfg = model.cfg
    g = torch.Generator().manual_seed(seed)
    capsule = torch.rand(batch, 4, generator=g)
    capsule = capsule / capsule.sum(1, keepdim=True)
    minor = torch.rand(batch, 1, generator=g)
    mask = torch.ones(batch, notes)
    mask[0, notes // 2 :] = 0.0
    return {
        "roll": (torch.rand(batch, bars, steps, 2, cfg.pitches, generator=g) > 0.97).float(),
        "src_cond": torch.cat([capsule, 1 - minor, minor], 1),
        "tgt_cond": torch.cat([capsule.flip(1), minor, 1 - minor], 1),
        "density": torch.randint(0, cfg.n_density, (batch, bars), generator=g),
        "poly": torch.randint(0, cfg.n_poly, (batch, bars), generator=g),
        "meter": torch.randint(0, cfg.n_meters, (batch,), generator=g),
        "eps": torch.randn(batch, bars, steps // cfg.z_steps, cfg.z_dim, generator=g) * 0.5,
        "notes": torch.stack([torch.randint(0, n, (batch, notes), generator=g)
                              for n in model.performer.SIZES], -1),
        "note_mask": mask,
        "perf_cond": capsule,
    }


def build_graph(model: TransferModel) -> onnx.ModelProto:
    model.eval()
    inputs = example_inputs(model)
    dynamic = {"roll": {0: "batch", 1: "bars", 2: "steps"}, "src_cond": {0: "batch"}, "tgt_cond": {0: "batch"},
               "density": {0: "batch", 1: "bars"}, "poly": {0: "batch", 1: "bars"}, "meter": {0: "batch"},
               "eps": {0: "batch", 1: "bars", 2: "latents"}, "notes": {0: "sets", 1: "notes"},
               "note_mask": {0: "sets", 1: "notes"}, "perf_cond": {0: "sets"},
               "probs": {0: "batch", 1: "bars", 2: "steps"},
               "mean": {0: "batch", 1: "bars", 2: "latents"}, "velocity": {0: "sets", 1: "notes"}}
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter: a plain feed-forward graph, traced once
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            # torch types f as a path, but its TorchScript exporter (dynamo=False) writes to a file object too
            _Graph(model), tuple(inputs[name] for name in INPUTS), buffer,  # type: ignore[arg-type]
            input_names=list(INPUTS), output_names=list(OUTPUTS), dynamic_axes=dynamic,
            opset_version=OPSET, dynamo=False,
        )
    return onnx.load_from_string(buffer.getvalue())


PARITY_SHAPES = ((2, 4, 16, 24), (1, 1, 12, 5), (3, 2, 12, 40), (1, 4, 32, 1))  # batch, bars, steps, notes


def check_parity(model: onnx.ModelProto | bytes, torch_model: TransferModel) -> float:
    """Max abs difference of every output (velocity / 127), ONNX Runtime vs PyTorch, over several shapes."""
    data = model if isinstance(model, bytes) else model.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    worst = 0.0
    torch_model.eval()
    for seed, (batch, bars, steps, notes) in enumerate(PARITY_SHAPES):
        inputs = example_inputs(torch_model, batch, bars, steps, notes, seed)
        with torch.no_grad():
            expected = [t.numpy() for t in _Graph(torch_model)(*(inputs[name] for name in INPUTS))]
        got = session.run(list(OUTPUTS), {k: v.numpy() for k, v in inputs.items()})
        expected[2], got[2] = expected[2] / 127, got[2] / 127
        worst = max(worst, *(float(np.abs(a - b).max()) for a, b in zip(got, expected)))
    return worst


def build_manifest(model: TransferModel, meta: dict, dtype: str = "fp32", *, max_abs_diff: float | None = None,
                   decode: DecodeSettings = SHIPPED_DECODE) -> dict[str, Any]:
    train = meta.get("train", {})
    history = meta.get("history") or [{}]
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "family": FAMILY,
        "name": Path(str(train.get("out", "transfer"))).name,
        "dtype": dtype,
        "grid": {"steps_per_beat": STEPS_PER_BEAT},
        "roll": {"pitch_min": PITCH_MIN, "pitches": PITCHES, "channels": ["onset", "frame"], "max_bars": MAX_BARS,
                 "max_bar_steps": MAX_BAR_STEPS, "tonic_to": "C (within 6 semitones)"},
        "attributes": {"meters": [str(m) for m in METERS], "density_edges": list(DENSITY_EDGES),
                       "polyphony_edges": list(POLYPHONY_EDGES), "note_features": N_FEATURES},
        "inputs": list(INPUTS),
        "outputs": list(OUTPUTS),
        "model": model.cfg.to_dict(),
        "decode": {**asdict(decode),
                   "strength": "conditions mixed (1-s)*source + s*target; z = mean + s*noise*sigma*eps",
                   "anchored": "anchor > 0: every source note kept, re-pitched within anchor semitones by the "
                               "decoder's onset log-odds + contrast x (asked - source condition) + anchor_bias "
                               "for its own pitch; 0: notes thresholded"},
        "conditioning": {"quadrants": [f"{q.name} {q.mood}" for q in Quadrant], "cond": "capsule(4) + major, minor"},
        "training": {"data": meta.get("data_summary", {}), "step": meta.get("step"),
                     "minutes": round(float(meta.get("train_seconds", 0.0)) / 60, 1), "last": history[-1],
                     "config": train},
        "parity": {"max_abs_diff": max_abs_diff, "atol": ATOL},
        "exporter": {"affetto": affetto.__version__, "torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": ort.__version__, "opset": OPSET},
    }


def export_model(model: TransferModel, meta: dict, out: str | Path, *,
                 decode: DecodeSettings = SHIPPED_DECODE) -> GraphExport:
    """Write ``model`` to ``out``; raises :class:`ModelFileError` when parity fails."""
    graph = build_graph(model)
    onnx.checker.check_model(graph, full_check=True)
    diff = check_parity(graph, model)
    if not diff <= ATOL:
        raise ModelFileError(f"exported transfer graph disagrees with PyTorch: max abs difference {diff:.2e}")
    graph = with_manifest(graph, build_manifest(model, meta, max_abs_diff=diff, decode=decode))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    onnx.save(graph, tmp)
    tmp.replace(out)
    return GraphExport(out, out.stat().st_size, diff, read_manifest(out), ATOL)


def export_transfer(checkpoint: str | Path, out: str | Path, *, decode: DecodeSettings = SHIPPED_DECODE,
                    with_weights: bool = True) -> GraphExport:
    """Export a transfer checkpoint; with ``with_weights``, its weights and JSON go beside the ``.onnx``
    (``<out stem>.safetensors`` and ``.json``, no optimizer state), as the shipped models are."""
    model, meta = load_checkpoint(checkpoint)
    if not isinstance(model, TransferModel):
        raise ModelFileError(f"{checkpoint}: a {meta.get('family', 'lead')} checkpoint, not a transfer one")
    result = export_model(model, meta, out, decode=decode)
    if with_weights:
        weights, _, _ = checkpoint_paths(checkpoint)
        stem = Path(out).with_suffix("")
        if Path(weights).resolve() != stem.with_suffix(".safetensors").resolve():  # re-exported in place: kept
            shutil.copyfile(weights, stem.with_suffix(".safetensors"))
        slim = {k: v for k, v in meta.items() if k != "optimizer_groups"}
        stem.with_suffix(".json").write_text(json.dumps(slim, indent=1, sort_keys=True), encoding="utf-8")
    return result


def _no_int8(*_: Any) -> dict:
    raise ModelFileError("the transfer family has no int8 export")


def _parity(model_bytes: bytes, model: TransferModel, *_: Any) -> float:
    return check_parity(model_bytes, model)


EXPORT_FAMILY = ExportFamily(FAMILY, build_graph, _parity, _no_int8, build_manifest)


@click.command("export-transfer")
@click.argument("checkpoint")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="The .onnx file to write.")
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True), default=SHIPPED_DECODE.threshold,
              show_default=True,
              help="Onset/frame probability a note needs (stored in the manifest).")
@click.option("--noise", type=click.FloatRange(min=0), default=SHIPPED_DECODE.noise, show_default=True,
              help="Share of the posterior's sigma a seeded draw moves z by at strength 1 (stored in the manifest).")
@click.option("--anchor", type=click.IntRange(min=0), default=SHIPPED_DECODE.anchor, show_default=True,
              help="Keep every source note and let the decoder move it at most this many semitones (0: free "
                   "decoding, notes where the onset probability reaches --threshold; stored in the manifest).")
@click.option("--anchor-bias", type=float, default=SHIPPED_DECODE.anchor_bias, show_default=True,
              help="Log-odds in favour of a note's own pitch when anchored (stored in the manifest; "
                   "python -m affetto.models.transfer.anchor measures the choice on validation pairs).")
@click.option("--contrast", type=click.FloatRange(min=0), default=SHIPPED_DECODE.contrast, show_default=True,
              help="Anchored: weight of what the asked emotion changes against the source's own condition "
                   "(0: the asked condition's log-odds alone; stored in the manifest).")
def export_command(checkpoint, out, threshold, noise, anchor, anchor_bias, contrast) -> None:
    """Export a transfer checkpoint (e.g. runs/transfer/best) to one .onnx file with parity checks; its
    weights and JSON go beside it."""
    try:
        decode = DecodeSettings(threshold=threshold, noise=noise, anchor=anchor, anchor_bias=anchor_bias,
                                contrast=contrast)
        result = export_transfer(checkpoint, out, decode=decode)
    except (ValueError, OSError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(result)
