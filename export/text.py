"""Text checkpoint -> three self-describing ``.onnx`` graphs and the shipped weights.

``affetto-text.onnx`` (the music encoder and the alignment MLP),
``affetto-text.encoder.onnx`` (the text encoder) and
``affetto-text.decoder.onnx`` (the text decoder), the graphs and names of
:mod:`affetto.words.textmodel`. Each carries the same manifest (``"family":
"text"``, the word vocabulary, the music input's tables, the model and
training configs) with its own ``part`` and the hash of its own graph. Each
graph is checked with ``onnx.checker`` and against PyTorch on a real ONNX
Runtime session before it is written. ``--weights`` also writes the PyTorch
weights and config beside them (``affetto-text.{safetensors,json}``).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
import onnx
import onnxruntime as ort
import torch

import affetto
from affetto.errors import ModelFileError
from affetto.export.export import with_manifest
from affetto.export.families import ExportFamily
from affetto.manifest import FORMAT, FORMAT_VERSION, read_manifest
from affetto.models.checkpoint import load_checkpoint, save_checkpoint
from affetto.models.text.captions import PROPER
from affetto.models.text.model import N_VALUES, MusicTextModel
from affetto.words.describe import SLOT_WORDS
from affetto.words.textmodel import (
    FAMILY,
    MAX_DURATION,
    MAX_NOTES,
    METERS,
    N_TEMPI,
    PARTS,
    PHRASE_BARS,
    POSITIONS,
    PROBE,
    STEPS_PER_BEAT,
    TEMPO_EDGES,
)

OPSET = 17
ATOL = 1e-4
INPUTS = {"music": ("notes", "globals"), "encoder": ("tokens",), "decoder": ("latent", "tokens")}
OUTPUTS = {"music": ("z_music", "z_aligned", "caption"), "encoder": ("z_text",), "decoder": ("logits",)}
DYNAMIC = {"notes": {0: "batch", 1: "notes"}, "globals": {0: "batch"}, "tokens": {0: "batch", 1: "words"},
           "latent": {0: "batch"}, "z_music": {0: "batch"}, "z_aligned": {0: "batch"}, "caption": {0: "batch"},
           "z_text": {0: "batch"},
           "logits": {0: "batch", 1: "words"}}


class _Music(torch.nn.Module):
    def __init__(self, model: MusicTextModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, notes: torch.Tensor, globals_: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z, heard = self.model.music.encode(notes, globals_)
        aligned = self.model.align(z)
        return z, aligned, self.model.caption_point(aligned, heard)


def graphs(model: MusicTextModel) -> dict[str, torch.nn.Module]:
    """The module of each part, in eval mode (the exporter puts a module back in the mode it found it in, and a
    fresh wrapper is in training mode, which would switch dropout on in the whole model)."""
    return {"music": _Music(model).eval(), "encoder": model.text.eval(), "decoder": model.decoder.eval()}


def example_inputs(model: MusicTextModel, part: str, batch: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    """Valid random inputs of a part (notes padded at the end, captions starting with <bos>)."""
    g = torch.Generator().manual_seed(seed)
    cfg = model.cfg
    if part == "music":
        length = 12 + seed
        notes = torch.stack([
            torch.randint(1, 129, (batch, length), generator=g),
            torch.randint(0, POSITIONS, (batch, length), generator=g),
            torch.randint(0, PHRASE_BARS, (batch, length), generator=g),
            torch.randint(1, MAX_DURATION + 1, (batch, length), generator=g)], dim=-1)
        notes[0, length // 2:] = 0  # a shorter window, padded
        glob = torch.stack([torch.randint(0, len(METERS), (batch,), generator=g),
                            torch.randint(0, N_TEMPI, (batch,), generator=g)], dim=-1)
        return {"notes": notes, "globals": glob}
    tokens = torch.randint(4, cfg.vocab_size, (batch, 9 + seed), generator=g)
    tokens[:, 0] = 1
    tokens[0, 5:] = 0
    if part == "encoder":
        return {"tokens": tokens}
    latent = torch.nn.functional.normalize(torch.randn(batch, cfg.latent, generator=g), dim=-1)
    if cfg.attributes:  # the fields' distributions beside the latent
        latent = model.caption_point(latent, torch.randn(batch, N_VALUES, generator=g))
    return {"latent": latent, "tokens": tokens}


def build_graph(model: MusicTextModel, part: str) -> onnx.ModelProto:
    model.eval()
    inputs = example_inputs(model, part)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            graphs(model)[part], tuple(inputs.values()), buffer,  # type: ignore[arg-type]
            input_names=list(INPUTS[part]), output_names=list(OUTPUTS[part]),
            dynamic_axes={k: v for k, v in DYNAMIC.items() if k in (*INPUTS[part], *OUTPUTS[part])},
            opset_version=OPSET, dynamo=False,
        )
    return onnx.load_from_string(buffer.getvalue())


def check_parity(graph: onnx.ModelProto, model: MusicTextModel, part: str, seeds: tuple[int, ...] = (1, 2)) -> float:
    """Max abs difference of every output, ONNX Runtime vs PyTorch, on inputs of other shapes than traced."""
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    worst = 0.0
    for seed in seeds:
        inputs = example_inputs(model, part, batch=2 + seed, seed=seed)
        with torch.no_grad():
            expected = graphs(model)[part](*inputs.values())
        expected = expected if isinstance(expected, tuple) else (expected,)
        feed = {name: value.numpy() for name, value in zip(INPUTS[part], inputs.values())}
        got = session.run(list(OUTPUTS[part]), feed)
        worst = max(worst, *(float(np.abs(a - b.numpy()).max()) for a, b in zip(got, expected)))
    return worst


def build_manifest(model: MusicTextModel, meta: dict, dtype: str = "fp32") -> dict[str, Any]:
    train = meta.get("train", {})
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "family": FAMILY,
        "name": Path(str(train.get("out", "text"))).name,
        "dtype": dtype,
        "parts": dict(PARTS),
        "inputs": {k: list(v) for k, v in INPUTS.items()},
        "outputs": {k: list(v) for k, v in OUTPUTS.items()},
        "vocabulary": list(meta["vocabulary"]),
        "proper_nouns": list(PROPER),
        "music_input": {"steps_per_beat": STEPS_PER_BEAT, "bars": PHRASE_BARS, "max_notes": MAX_NOTES,
                        "positions": POSITIONS, "max_duration": MAX_DURATION, "meters": list(METERS),
                        "tempo_edges": list(TEMPO_EDGES)},
        "word_probe": list(PROBE),
        "mood_words": sorted(w for words in SLOT_WORDS["mood"].values() for w in words),
        "model": model.cfg.to_dict(),
        "training": {"data": meta.get("data_summary", {}), "step": meta.get("step"),
                     "minutes": round(float(meta.get("train_seconds", 0.0)) / 60, 1),
                     "loss": train.get("loss", {}), "last": (meta.get("history") or [{}])[-1], "config": train},
        "exporter": {"affetto": affetto.__version__, "torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": ort.__version__, "opset": OPSET},
    }


def _no_int8(*_: Any) -> dict:
    raise ModelFileError("text models are exported in fp32 only: use affetto export-text")


@dataclass
class TextExport:
    paths: dict[str, Path]
    parity: dict[str, float]
    size_bytes: int

    def __str__(self) -> str:
        files = ", ".join(f"{p.name}" for p in self.paths.values())
        worst = max(self.parity.values())
        return f"wrote {files} ({self.size_bytes / 1e6:.2f} MB); parity max abs difference {worst:.2e}"


def export_model(model: MusicTextModel, meta: dict, out: str | Path, *, weights: bool = False) -> TextExport:
    """Write the three graphs of ``model`` as ``out`` (the music graph) and its siblings."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    base = build_manifest(model, meta)
    stem = out.name.removesuffix(".onnx")
    names = {"music": out.name, "encoder": f"{stem}.encoder.onnx", "decoder": f"{stem}.decoder.onnx"}
    base["parts"] = names
    paths, parity = {}, {}
    for part, name in names.items():
        graph = build_graph(model, part)
        onnx.checker.check_model(graph, full_check=True)
        diff = check_parity(graph, model, part)
        if not diff <= ATOL:
            raise ModelFileError(f"exported text {part} graph disagrees with PyTorch: max abs difference {diff:.2e}")
        parity[part] = diff
        graph = with_manifest(graph, {**base, "part": part, "parity": {"max_abs_diff": diff, "atol": ATOL}})
        target = out.with_name(name)
        tmp = target.with_name(target.name + ".tmp")
        onnx.save(graph, tmp)
        tmp.replace(target)
        read_manifest(target)
        paths[part] = target
    if weights:
        save_checkpoint(out.with_suffix(""), model, {k: v for k, v in meta.items()
                                                      if k not in ("format", "family", "model", "optimizer_groups")})
    return TextExport(paths, parity, sum(p.stat().st_size for p in paths.values()))


def export_text(checkpoint: str | Path, out: str | Path, *, weights: bool = False) -> TextExport:
    model, meta = load_checkpoint(checkpoint)
    if not isinstance(model, MusicTextModel):
        raise ModelFileError(f"{checkpoint}: a {meta.get('family', 'lead')} checkpoint, not a text one")
    return export_model(model, meta, out, weights=weights)


@click.command("export-text")
@click.argument("checkpoint", type=click.Path())
@click.option("--out", "-o", default="affetto/assets/affetto-text.onnx", show_default=True,
              help="The music graph; the encoder and decoder graphs go beside it.")
@click.option("--weights", is_flag=True, help="Also write the PyTorch weights and config beside them.")
def export_text_command(checkpoint, out, weights) -> None:
    """Export a text checkpoint (e.g. runs/text/gtp/last) to three .onnx graphs, with parity checks."""
    try:
        click.echo(str(export_text(checkpoint, out, weights=weights)))
    except (ModelFileError, ValueError) as err:
        raise click.ClickException(str(err)) from err


FAMILY_EXPORT = ExportFamily(
    FAMILY, lambda model: build_graph(model, "music"),
    lambda graph, model, *_: check_parity(graph if isinstance(graph, onnx.ModelProto) else onnx.load_from_string(graph),
                                          model, "music"),
    _no_int8, build_manifest)
