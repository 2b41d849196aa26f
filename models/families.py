"""Model families on the PyTorch side: what a checkpoint's ``family`` builds.

A family names its module class, how to build it from the config stored in
a checkpoint (``meta["model"]``) and which weights are tied (so absent from
the file). Registering takes the family object or a ``"module:attr"`` string
naming one, imported only when a checkpoint of that family is loaded. A
checkpoint without ``family`` is a ``lead`` checkpoint (written before the
key existed). The export side has its own registry
(:mod:`affetto.export.families`), the runtime its own
(:mod:`affetto.runtime.families`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from affetto.errors import ModelFileError
from affetto.registry import Registry

DEFAULT_FAMILY = "lead"


class FamilyConfig(Protocol):
    def to_dict(self) -> dict: ...


@runtime_checkable
class FamilyModel(Protocol):
    """What a family's module carries: the config it was built from (its ``to_dict()`` is what ``build`` takes)."""

    @property
    def cfg(self) -> FamilyConfig: ...


@dataclass(frozen=True)
class ModelFamily:
    name: str
    module: type[torch.nn.Module]  # the class whose instances belong to this family
    build: Callable[[dict], torch.nn.Module]  # a fresh model from a checkpoint's model config
    tied: tuple[str, ...] = ()  # weights shared with others, absent from the weights file
    part: str = ""  # its weights file in a checkpoint: <stem>.safetensors, or <stem>.<part>.safetensors


_FAMILIES: Registry[ModelFamily] = Registry(
    lambda name, known: ModelFileError(f"unknown model family {name!r} (known: {', '.join(known)})"))


def register_family(family: ModelFamily | str, name: str | None = None) -> None:
    """Register ``family`` (or, lazily, a ``"module:attr"`` naming one under ``name``)."""
    if not isinstance(family, str):
        _FAMILIES.add(family.name, family)
    elif not name:
        raise ValueError("a lazily registered family needs its name")
    else:
        _FAMILIES.add(name, family)


def get_family(name: str) -> ModelFamily:
    return _FAMILIES.get(name)


def family_of_meta(meta: dict) -> ModelFamily:
    """The family a checkpoint's metadata names (``lead`` when it names none)."""
    return get_family(str(meta.get("family", DEFAULT_FAMILY)))


def family_of_model(model: torch.nn.Module) -> ModelFamily:
    """The registered family ``model`` is an instance of."""
    for name in _FAMILIES.names():
        family = get_family(name)
        if isinstance(model, family.module):
            return family
    raise ModelFileError(f"{type(model).__name__} belongs to no registered model family")


def _lead() -> ModelFamily:
    from affetto.models.transformer import EmotionTransformer, ModelConfig

    return ModelFamily("lead", EmotionTransformer, lambda cfg: EmotionTransformer(ModelConfig.from_dict(cfg)),
                       tied=("head.weight",))


LEAD = _lead()
register_family(LEAD)
register_family("affetto.models.musegan.model:FAMILY", "ensemble")
register_family("affetto.models.mood.model:FAMILY", "mood")
register_family("affetto.models.transfer.model:FAMILY", "transfer")
register_family("affetto.models.text.model:FAMILY", "text")
