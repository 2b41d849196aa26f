"""Where the shipped model lies."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_MODEL_NAME = "affetto-default.onnx"


def default_model_path() -> Path:
    """The model shipped inside the package."""
    return Path(str(resources.files("affetto") / "assets" / DEFAULT_MODEL_NAME))
