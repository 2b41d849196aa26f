"""Which transfer method runs: the rule baseline, or the CVAE.

``auto`` takes the rule baseline (:class:`affetto.transfer.rule.RuleTransfer`):
measured against it, the shipped CVAE (:class:`affetto.transfer.model.CvaeTransfer`,
``affetto/assets/affetto-transfer.onnx``) keeps a phrase as well (it keeps every
note and moves some a semitone) but its mode changes are heard less often,
above all on phrases from outside the corpus (README, Transfer). ``auto`` with a model file
given, or ``cvae``, takes the CVAE. :func:`load_method` says which in one
line, so a musician always knows what they hear.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from affetto.errors import ConfigError, ModelFileError
from affetto.runtime.assets import asset_path
from affetto.transfer.api import Transfer

METHODS = ("auto", "cvae", "rule")
TRANSFER_MODEL_NAME = "affetto-transfer.onnx"
CVAE_CLASS = "affetto.transfer.model:CvaeTransfer"


def shipped_model() -> Path | None:
    """The shipped transfer model, or None when this install has none."""
    path = asset_path(TRANSFER_MODEL_NAME)
    return path if path.is_file() else None


def available_methods() -> list[str]:
    """The methods that can run here: the rule always, the CVAE when shipped."""
    return ["rule", "cvae"] if shipped_model() is not None else ["rule"]


def load_method(method: str = "auto", *, model: str | None = None, threads: int = 1) -> tuple[Transfer, str]:
    """(the method, a line saying which it is and why) for ``method`` in :data:`METHODS`.

    ``model`` is a transfer ``.onnx`` file for the CVAE (default: the shipped one).
    """
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "rule" or (method == "auto" and model is None):
        from affetto.transfer.rule import RuleTransfer

        if method == "rule":
            why = "asked for"
        elif shipped_model() is None:
            why = f"no transfer model is shipped ({TRANSFER_MODEL_NAME})"
        else:
            why = "its mode changes are heard more often than the shipped CVAE's: --method cvae to hear that"
        return RuleTransfer(), f"transfer method: rule (parallel mode, dynamics, articulation; {why})"
    path = model or shipped_model()
    if path is None:
        raise ModelFileError(f"--method cvae needs a transfer model: none is shipped ({TRANSFER_MODEL_NAME}); "
                             "pass --model FILE or use --method rule")
    module, _, attr = CVAE_CLASS.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise ModelFileError(f"the CVAE transfer method is not installed here ({CVAE_CLASS}): {err}") from err
    return cls(path=str(path) if model else None, threads=threads), f"transfer method: cvae ({path})"
