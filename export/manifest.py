"""The lead family's manifest: what its ``.onnx`` says about itself (see :mod:`affetto.manifest`).

The exporter adds ``family``, the parity and quantisation figures and the
model's own sampling settings, then stamps the graph's hash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
import onnxruntime as ort
import torch

import affetto
from affetto.analysis.emotion import Quadrant
from affetto.export.graph import ROWS
from affetto.manifest import FORMAT, FORMAT_VERSION
from affetto.models.transformer import EmotionTransformer

MATMUL_LAYOUT = "engine-written, keys transposed, bound at the used length"
GQA_LAYOUT = "shared-buffer, guidance rows as heads"


def guidance_channel(meta: dict) -> dict | None:
    """The capsule channel a guidance-distilled checkpoint (``affetto distill``) takes its guidance scale in,
    as its ``distill`` section names it (``index``, ``max_scale``, ``meaning``); None for any other model.

    Such a model runs one row per candidate (guidance is in the row); any other runs two (the capsule's
    and the unconditioned one, mixed)."""
    channel = (meta.get("distill") or {}).get("channel")
    return dict(channel) if channel else None


def checkpoint_rows(meta: dict) -> int:
    """The rows the checkpoint's graph runs at once: one for a guidance-distilled model, else ``ROWS``."""
    return 1 if guidance_channel(meta) else ROWS


def build_manifest(model: EmotionTransformer, meta: dict, dtype: str) -> dict[str, Any]:
    train = meta.get("train", {})
    dropout = float(train.get("cond_dropout", 0.0))
    channel = guidance_channel(meta)
    distill_config = (meta.get("distill") or {}).get("config") or {}  # a distilled model is named by its run
    conditioning: dict[str, Any] = {
        "quadrants": [f"{q.name} {q.mood}" for q in Quadrant],
        "cond_dropout": dropout,
        "guidance_ready": dropout > 0 or channel is not None,
    }
    if channel is not None:
        conditioning["guidance_channel"] = channel
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": Path(str(distill_config.get("out") or train.get("out", "model"))).name,
        "dtype": dtype,
        "vocab": meta["vocab"],
        "grid": {"steps_per_beat": meta["vocab"]["steps_per_beat"]},
        "model": model.cfg.to_dict(),
        "kv_cache": {"layout": MATMUL_LAYOUT, "op": "MatMul",
                     "max_len": model.cfg.max_len, "rows": checkpoint_rows(meta), "heads": model.cfg.kv_heads,
                     "head_size": model.cfg.head_dim},
        "conditioning": conditioning,
        "judge": meta.get("judge", {}),
        "training": {
            "data": meta.get("data_summary", {}),
            "step": meta.get("step"),
            "val_loss": None if channel is not None else meta.get("val_loss"),  # a student's is a KL: below
            "config": train,
        },
        "exporter": {
            "affetto": affetto.__version__,
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            "opset": 20,
        },
    }
    if channel is not None:  # what it was distilled from, and how near it came (affetto distill)
        distill = meta["distill"]
        manifest["distillation"] = {
            "teacher": Path(str(distill.get("teacher", ""))).name,
            "step": meta.get("step"),
            **{key: value for key, value in distill.items() if key.startswith("kl_at_")},
            "config": distill.get("config", {}),
        }
    return manifest
