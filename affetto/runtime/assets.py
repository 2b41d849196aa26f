"""Where the shipped models lie."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from affetto.errors import ConfigError

DEFAULT_MODEL_NAME = "affetto-default.onnx"  # fp32: the reference, exported from affetto-default.safetensors
DEFAULT_INT8_NAME = "affetto-default-int8.onnx"  # the same weights in int8 (affetto export --int8): what runs on CPU
ENSEMBLE_MODEL_NAME = "affetto-ensemble.onnx"
PRECISIONS = ("auto", "fp32", "int8")


def asset_path(name: str) -> Path:
    """A file shipped in the package's ``assets`` folder."""
    return Path(str(resources.files("affetto") / "assets" / name))


def check_precision(precision: str, model: object = None) -> None:
    """Raise a ConfigError unless ``precision`` is one of ``PRECISIONS`` and, when ``model`` is named, "auto":
    a precision picks between the shipped model's files and has nothing to pick for a model of one's own."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto" and model is not None:
        raise ConfigError(f"precision picks between the shipped model's files; with model = {model!r} it has "
                          "nothing to pick: leave one of them out")


def default_model_path(precision: str = "auto", provider: str = "auto") -> Path:
    """The lead model shipped inside the package, in ``precision``.

    ``auto`` is int8 where the model runs on the CPU (the default provider): its bars take 0.8x the time
    of fp32's at the default settings, and its draws are heard alike (README, The default model); fp32
    on a GPU provider, where int8 has not been measured.
    """
    check_precision(precision)
    int8 = asset_path(DEFAULT_INT8_NAME)
    if precision == "int8" or (precision == "auto" and provider in ("auto", "cpu") and int8.exists()):
        return int8
    return asset_path(DEFAULT_MODEL_NAME)


def default_ensemble_path() -> Path:
    """The ensemble model shipped inside the package."""
    return asset_path(ENSEMBLE_MODEL_NAME)
