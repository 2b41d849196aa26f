"""Where the shipped models lie."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_MODEL_NAME = "affetto-default.onnx"
ENSEMBLE_MODEL_NAME = "affetto-ensemble.onnx"


def asset_path(name: str) -> Path:
    """A file shipped in the package's ``assets`` folder."""
    return Path(str(resources.files("affetto") / "assets" / name))


def default_model_path() -> Path:
    """The lead model shipped inside the package."""
    return asset_path(DEFAULT_MODEL_NAME)


def default_ensemble_path() -> Path:
    """The ensemble model shipped inside the package."""
    return asset_path(ENSEMBLE_MODEL_NAME)
