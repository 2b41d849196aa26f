"""Checkpoints as safetensors plus JSON: weights, optimizer state, and every config.

One way for every model family (the lead Transformer, the ensemble's
MuseGAN): no pickle anywhere (nothing here calls ``torch.load``), so loading
a checkpoint runs no code from the file. A checkpoint at ``<stem>`` is

- ``<stem>.json``: the format, the model's family (:mod:`.families`, which
  decides what loading builds), its model config, and whatever the trainer
  adds (the training, data and judge configs, the step, the history);
- the family's model: ``<stem>.safetensors``, or ``<stem>.<part>.safetensors``
  when the family names a part (the ensemble's ``generator``);
- other modules trained beside it, one file each: ``<stem>.<name>.safetensors``
  (the ensemble's ``critic`` and ``emotion`` classifier);
- the optimizers' tensors in ``<stem>.optim.safetensors``, their parameter
  groups in the JSON (one optimizer without a name, as the lead's, or several
  by name, as the ensemble's ``g``, ``d`` and ``e``).

Files are written to a temporary name and renamed, so an interrupted save
never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from affetto.errors import ModelFileError
from affetto.models.families import FamilyModel, family_of_meta, family_of_model

FORMAT = "affetto-checkpoint"
OLDER_FORMATS = ("affetto-ensemble-checkpoint",)  # the ensemble's own, before it shared this one: same files
DEFAULT_CHECKPOINT = "affetto-default"  # the shipped model's weights: assets/affetto-default.{safetensors,json}


def default_checkpoint_path() -> Path:
    """The PyTorch checkpoint of the shipped model (``affetto train --init default`` fine-tunes it)."""
    from importlib import resources

    return Path(str(resources.files("affetto") / "assets" / DEFAULT_CHECKPOINT))


def _stem(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / "last"
    return path.with_suffix("") if path.suffix in (".safetensors", ".json") else path


def part_path(path: str | Path, part: str = "") -> Path:
    """The weights file of ``part`` ("" is ``<stem>.safetensors``) in the checkpoint at ``path``."""
    stem = _stem(path)
    return stem.with_name(f"{stem.name}.{part}.safetensors" if part else f"{stem.name}.safetensors")


def checkpoint_paths(path: str | Path) -> tuple[Path, Path, Path]:
    """(weights, optimizer, meta) paths for a checkpoint path or its stem (weights: the unnamed part)."""
    stem = _stem(path)
    return part_path(stem), part_path(stem, "optim"), stem.with_name(stem.name + ".json")


def _write(target: Path, write: Callable[[Path], object]) -> None:
    tmp = target.with_name(target.name + ".tmp")
    write(tmp)
    os.replace(tmp, target)


def _model_saver(module: torch.nn.Module) -> Callable[[Path], None]:
    return lambda tmp: save_model(module, str(tmp))


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    meta: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    *,
    parts: Mapping[str, torch.nn.Module] | None = None,
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
) -> Path:
    """Write ``model`` (its family's weights file), the other ``parts`` by name, ``optimizer`` (or several
    ``optimizers`` by name) and ``meta``; the JSON goes last. Returns the model's weights file."""
    family = family_of_model(model)
    if not isinstance(model, FamilyModel):
        raise ModelFileError(f"{type(model).__name__} carries no cfg: a checkpoint of it could not be rebuilt")
    _, optim_path, meta_path = checkpoint_paths(path)
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    weights = part_path(path, family.part)
    _write(weights, lambda tmp: save_model(model, str(tmp)))
    for name, module in (parts or {}).items():
        if name in ("", "optim", family.part):
            raise ValueError(f"a checkpoint part cannot be called {name!r}")
        _write(part_path(path, name), _model_saver(module))
    full = {**meta, "format": FORMAT, "family": family.name, "model": model.cfg.to_dict()}
    if optimizer is not None and optimizers:
        raise ValueError("give one optimizer or several by name, not both")
    named = {"": optimizer} if optimizer is not None else dict(optimizers or {})
    if named:
        tensors, groups = _flatten_optimizers(named)
        _write(optim_path, lambda tmp: save_file(tensors, str(tmp)))
        full["optimizer_groups"] = groups[""] if optimizer is not None else groups
    _write(meta_path, lambda tmp: tmp.write_text(json.dumps(full, indent=1, sort_keys=True), encoding="utf-8"))
    return weights


def read_meta(path: str | Path) -> dict[str, Any]:
    _, _, meta_path = checkpoint_paths(path)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ModelFileError(f"{meta_path}: no checkpoint metadata here") from err
    except json.JSONDecodeError as err:
        raise ModelFileError(f"{meta_path}: checkpoint metadata is not valid JSON ({err})") from err
    if not isinstance(meta, dict) or (meta.get("format") != FORMAT and meta.get("format") not in OLDER_FORMATS):
        raise ModelFileError(f"{meta_path}: not an affetto checkpoint")
    return meta


def load_checkpoint(
    path: str | Path,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    parts: Mapping[str, torch.nn.Module] | None = None,
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model of the checkpoint's family (in eval mode) and the metadata.

    Also fills the given ``parts`` (by name; each must be in the checkpoint),
    ``optimizer`` (the one unnamed optimizer), or ``optimizers`` by name (one
    the checkpoint has no state for is left fresh: it is newer than the
    checkpoint).
    """
    _, optim_path, _ = checkpoint_paths(path)
    meta = read_meta(path)
    family = family_of_meta(meta)
    model = family.build(meta["model"])
    weights = part_path(path, family.part)
    missing, unexpected = _load(model, weights)
    if unexpected or [m for m in missing if m not in family.tied]:
        raise ModelFileError(f"{weights}: weights do not match the config (missing {missing}, extra {unexpected})")
    for name, module in (parts or {}).items():
        if not load_part(path, name, module):
            raise ModelFileError(f"{part_path(path, name)}: the checkpoint has no {name!r} weights")
    if optimizer is not None and optimizers:
        raise ValueError("give one optimizer or several by name, not both")
    named = {"": optimizer} if optimizer is not None else dict(optimizers or {})
    if named:
        if not optim_path.exists():
            raise ModelFileError(f"{optim_path}: no optimizer state to resume from")
        groups = meta.get("optimizer_groups", {})
        groups = {"": groups} if isinstance(groups, list) else groups
        _restore_optimizers(named, load_file(str(optim_path)), groups, strict=optimizer is not None)
    model.eval()
    return model, meta


def load_part(path: str | Path, name: str, module: torch.nn.Module) -> bool:
    """Fill ``module`` from the part ``name`` of the checkpoint at ``path`` (strictly); False, and
    ``module`` left as it is, when the checkpoint has no such part (it is older than the part)."""
    file = part_path(path, name)
    if not file.exists():
        return False
    missing, unexpected = _load(module, file)
    if missing or unexpected:
        raise ModelFileError(f"{file}: weights do not match (missing {missing}, extra {unexpected})")
    return True


def _load(module: torch.nn.Module, file: Path) -> tuple[list[str], list[str]]:
    try:
        missing, unexpected = load_model(module, str(file), strict=False)
    except (OSError, RuntimeError, ValueError) as err:
        raise ModelFileError(f"{file}: cannot load weights ({err})") from err
    return list(missing), list(unexpected)


def _flatten_optimizers(
    optimizers: Mapping[str, torch.optim.Optimizer],
) -> tuple[dict[str, torch.Tensor], dict[str, list[dict]]]:
    """Every optimizer's state tensors under ``<name>.<param index>.<key>`` (no prefix for the unnamed one),
    and each one's parameter groups by name."""
    tensors, groups = {}, {}
    for name, optimizer in optimizers.items():
        state = optimizer.state_dict()
        prefix = f"{name}." if name else ""
        for index, values in state["state"].items():
            for key, value in values.items():
                tensor = value if torch.is_tensor(value) else torch.tensor(value)
                tensors[f"{prefix}{index}.{key}"] = tensor.detach().cpu().contiguous()
        groups[name] = state["param_groups"]
    return tensors, groups


def _restore_optimizers(optimizers: Mapping[str, torch.optim.Optimizer], tensors: dict[str, torch.Tensor],
                        groups: dict[str, list], *, strict: bool) -> None:
    for name, optimizer in optimizers.items():
        if name not in groups:
            if strict:
                raise ModelFileError("the checkpoint has no optimizer state to resume from")
            continue  # an optimizer newer than the checkpoint starts fresh
        prefix = f"{name}." if name else ""
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, tensor in tensors.items():
            index, _, field_name = key.removeprefix(prefix).partition(".")
            if key.startswith(prefix) and index.isdigit():
                state.setdefault(int(index), {})[field_name] = tensor
        optimizer.load_state_dict({"state": state, "param_groups": groups[name]})
