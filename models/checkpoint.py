"""Checkpoints as safetensors plus JSON: weights, optimizer state, and every config.

No pickle anywhere: ``<name>.safetensors`` holds the weights,
``<name>.optim.safetensors`` the optimizer's tensors, and ``<name>.json`` the
model, vocabulary, judge, data and training configs, the step and the
validation loss, and the model's family (:mod:`.families`), which decides what
loading builds. Files are written to a temporary name and renamed, so an
interrupted save never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from affetto.errors import ModelFileError
from affetto.models.families import family_of_meta, family_of_model

FORMAT = "affetto-checkpoint"
DEFAULT_CHECKPOINT = "affetto-default"  # the shipped model's weights: assets/affetto-default.{safetensors,json}


def default_checkpoint_path() -> Path:
    """The PyTorch checkpoint of the shipped model (``affetto train --init default`` fine-tunes it)."""
    from importlib import resources

    return Path(str(resources.files("affetto") / "assets" / DEFAULT_CHECKPOINT))


def checkpoint_paths(path: str | Path) -> tuple[Path, Path, Path]:
    """(weights, optimizer, meta) paths for a checkpoint path or its stem."""
    path = Path(path)
    if path.is_dir():
        path = path / "last"
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    return (
        stem.with_name(stem.name + ".safetensors"),
        stem.with_name(stem.name + ".optim.safetensors"),
        stem.with_name(stem.name + ".json"),
    )


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    meta: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
) -> Path:
    weights, optim, meta_path = checkpoint_paths(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    tmp = weights.with_name(weights.name + ".tmp")
    save_model(model, str(tmp))
    os.replace(tmp, weights)
    full = {"format": FORMAT, "family": family_of_model(model).name, "model": model.cfg.to_dict(), **meta}
    if optimizer is not None:
        tensors, groups = _flatten_optimizer(optimizer)
        tmp = optim.with_name(optim.name + ".tmp")
        save_file(tensors, str(tmp))
        os.replace(tmp, optim)
        full["optimizer_groups"] = groups
    tmp = meta_path.with_name(meta_path.name + ".tmp")
    tmp.write_text(json.dumps(full, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, meta_path)
    return weights


def read_meta(path: str | Path) -> dict[str, Any]:
    _, _, meta_path = checkpoint_paths(path)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ModelFileError(f"{meta_path}: no checkpoint metadata here") from err
    except json.JSONDecodeError as err:
        raise ModelFileError(f"{meta_path}: checkpoint metadata is not valid JSON ({err})") from err
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{meta_path}: not an affetto checkpoint")
    return meta


def load_checkpoint(
    path: str | Path, optimizer: torch.optim.Optimizer | None = None
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model of the checkpoint's family (in eval mode) and the metadata; fills ``optimizer`` if given."""
    weights, optim, _ = checkpoint_paths(path)
    meta = read_meta(path)
    family = family_of_meta(meta)
    model = family.build(meta["model"])
    try:
        missing, unexpected = load_model(model, str(weights), strict=False)
    except (OSError, RuntimeError, ValueError) as err:
        raise ModelFileError(f"{weights}: cannot load weights ({err})") from err
    if unexpected or [m for m in missing if m not in family.tied]:
        raise ModelFileError(f"{weights}: weights do not match the config (missing {missing}, extra {unexpected})")
    if optimizer is not None:
        if not optim.exists():
            raise ModelFileError(f"{optim}: no optimizer state to resume from")
        _restore_optimizer(optimizer, load_file(str(optim)), meta["optimizer_groups"])
    model.eval()
    return model, meta


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    state = optimizer.state_dict()
    tensors = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            tensor = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{index}.{key}"] = tensor.detach().cpu().contiguous()
    return tensors, state["param_groups"]


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = tensor
    optimizer.load_state_dict({"state": state, "param_groups": groups})
