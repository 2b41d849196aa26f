"""Where the shipped models lie."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from affetto.errors import ConfigError

DEFAULT_MODEL_NAME = "affetto-default.onnx"  # fp32: the reference, exported from affetto-default.safetensors
# What runs on the CPU: affetto-distilled.safetensors (affetto distill of affetto-default: guidance in one row,
# the guidance scale a fifth capsule channel) exported with affetto export --int8
DEFAULT_INT8_NAME = "affetto-default-int8.onnx"
DISTILLED_CHECKPOINT = "affetto-distilled"  # that student's checkpoint (.safetensors and .json)
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

    ``auto`` is int8 where the model runs on the CPU (the default provider): the guidance-distilled
    student of the fp32 model, one row per candidate instead of two, in int8 weights; its bars take
    0.72-0.80x the time of the two-row int8 export's, and the independent ears hear both alike over three
    draws (README, The default model). fp32 (the teacher, two rows) on a GPU provider, where neither
    int8 nor one row has been measured.
    """
    check_precision(precision)
    int8 = asset_path(DEFAULT_INT8_NAME)
    if precision == "int8" or (precision == "auto" and provider in ("auto", "cpu") and int8.exists()):
        return int8
    return asset_path(DEFAULT_MODEL_NAME)


def default_ensemble_path() -> Path:
    """The ensemble model shipped inside the package."""
    return asset_path(ENSEMBLE_MODEL_NAME)
