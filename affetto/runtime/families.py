"""Model families at run time: the manifest's ``family`` picks what loads a model file.

A family registers a loader under its name: a callable, or a ``"module:attr"``
string imported only when a model of that family is loaded (so registering
costs nothing). A loader takes the model path, the manifest already read and
the caller's options (``meter``, ``threads``, ...) and returns a bar
generator (``prime``, ``generate_bar``, ``meter``, ``provider``, ``stats``).
A manifest without ``family`` is a ``lead`` model (files exported before the
key existed).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from affetto.errors import ModelFileError
from affetto.manifest import read_manifest
from affetto.registry import Registry
from affetto.runtime.assets import default_model_path

DEFAULT_FAMILY = "lead"

Loader = Callable[..., Any]
_LOADERS: Registry[Loader] = Registry(
    lambda name, known: ModelFileError(f"no runtime for model family {name!r} (known: {', '.join(known)})"))


def register_family(name: str, loader: Loader | str) -> None:
    """Make ``load_model`` hand models of family ``name`` to ``loader``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a family needs a non-empty name, got {name!r}")
    _LOADERS.add(name, loader)


def family_names() -> list[str]:
    return _LOADERS.names()


def family_of(manifest: dict) -> str:
    """The family a manifest names (``lead`` when it names none)."""
    family = manifest.get("family", DEFAULT_FAMILY)
    if not isinstance(family, str):
        raise ModelFileError(f"manifest family must be a string, got {family!r}")
    return family


def loader_for(family: str) -> Loader:
    return _LOADERS.get(family)


def load_model(path: str | Path | None = None, **options: Any) -> Any:
    """Load a model file (default: the shipped one) with the runtime of the family its manifest names."""
    path = Path(path) if path is not None else default_model_path(provider=options.get("provider", "auto"))
    manifest = read_manifest(path)
    return loader_for(family_of(manifest))(path, manifest=manifest, **options)


register_family("lead", "affetto.runtime.engine:Engine")
register_family("ensemble", "affetto.ensemble.engine:Ensemble")
register_family("mood", "affetto.words.mood:MoodRecogniser")
register_family("transfer", "affetto.transfer.model:load_transfer")
register_family("text", "affetto.words.textmodel:TextModel")
