"""A name -> thing table whose entries may be named lazily as ``"module:attr"`` strings.

The model families use one each in the runtime, the checkpoint loader and the
exporter, so a module (and what it imports, torch for the wings) is imported
only when a model of that family is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, missing: Callable[[str, list[str]], Exception]) -> None:
        self._entries: dict[str, T | str] = {}
        self._missing = missing  # (name asked for, known names) -> the error to raise

    def add(self, name: str, entry: T | str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a registry entry needs a non-empty name, got {name!r}")
        self._entries[name] = entry

    def get(self, name: str) -> T:
        try:
            entry = self._entries[name]
        except KeyError:
            raise self._missing(name, self.names()) from None
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            entry = self._entries[name] = getattr(importlib.import_module(module), attr)
        return entry

    def names(self) -> list[str]:
        return sorted(self._entries)
