"""Model families on the export side: graph, parity and manifest per family.

``export_checkpoint`` loads a checkpoint (its family builds the PyTorch
model, :mod:`affetto.models.families`) and hands the model to the export
family of the same name: ``graph`` writes the ONNX model, ``parity`` checks
it against PyTorch, ``agreement`` compares a quantised copy, ``manifest``
describes it (``family`` is stamped on by the exporter). Registering takes a
family object or a ``"module:attr"`` string naming one, imported only when a
checkpoint of that family is exported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from affetto.errors import ModelFileError
from affetto.registry import Registry


@dataclass(frozen=True)
class ExportFamily:
    name: str
    graph: Callable[..., onnx.ModelProto]  # model -> fp32 ONNX model (the lead's also takes attention=)
    parity: Callable[..., Any]  # (model bytes, model, tokens, cond) -> a report with passed() and to_dict()
    agreement: Callable[..., dict]  # (fp32 bytes, other bytes, model, sequences, cond) -> figures
    manifest: Callable[[Any, dict, str], dict]  # (model, checkpoint meta, dtype) -> manifest
    # (model, sequences, cond) -> feeds of the fp32 graph that int8 export calibrates its activation scales on
    # (affetto.export.quantize); None: int8 export quantises dynamically (one scale per run, over all its rows)
    calibration: Callable[..., Iterable[dict[str, Any]]] | None = None


_FAMILIES: Registry[ExportFamily] = Registry(
    lambda name, known: ModelFileError(f"no exporter for model family {name!r} (known: {', '.join(known)})"))


def register_family(family: ExportFamily | str, name: str | None = None) -> None:
    """Register ``family`` (or, lazily, a ``"module:attr"`` naming one under ``name``)."""
    if not isinstance(family, str):
        _FAMILIES.add(family.name, family)
    elif not name:
        raise ValueError("a lazily registered family needs its name")
    else:
        _FAMILIES.add(name, family)


def get_family(name: str) -> ExportFamily:
    return _FAMILIES.get(name)


def _lead() -> ExportFamily:
    from affetto.export.graph import build_graph
    from affetto.export.manifest import build_manifest
    from affetto.export.parity import agreement, calibration_feeds, check_parity

    return ExportFamily("lead", build_graph, check_parity, agreement, build_manifest, calibration_feeds)


LEAD = _lead()
register_family(LEAD)
register_family("affetto.export.mood:EXPORT_FAMILY", "mood")
register_family("affetto.export.transfer:EXPORT_FAMILY", "transfer")
register_family("affetto.export.text:FAMILY_EXPORT", "text")


@dataclass
class GraphExport:
    """What a family's export wrote: one graph, its size, how close it runs to PyTorch, its manifest."""

    path: Path
    size_bytes: int
    max_abs_diff: float
    manifest: dict[str, Any]
    atol: float = 1e-4

    def __str__(self) -> str:
        size = (f"{self.size_bytes / 1e6:.2f} MB" if self.size_bytes >= 1e6 else f"{self.size_bytes / 1e3:.0f} kB")
        verdict = "pass" if self.max_abs_diff <= self.atol else "FAIL"
        return (f"wrote {self.path} ({size}); parity vs PyTorch: max abs difference {self.max_abs_diff:.2e} "
                f"(atol {self.atol:g}): {verdict}")
