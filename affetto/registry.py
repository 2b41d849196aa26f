"""A name -> thing table whose entries may be named lazily as ``"module:attr"`` strings.

The model families use one each in the runtime, the checkpoint loader and the
exporter, so a module (and what it imports, torch for the wings) is imported
only when a model of that family is used. The daemon's plug-ins (its modes
and clock sources) use one each too: the config checks names against it, the
command line offers its names, and the service builds what it names.
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

    def remove(self, name: str) -> None:
        """Forget ``name`` (a plug-in registered for a while, e.g. by a test); unknown names are an error."""
        if self._entries.pop(name, None) is None:
            raise self._missing(name, self.names())

    def get(self, name: str) -> T:
        try:
            entry = self._entries[name]
        except (KeyError, TypeError):  # TypeError: an unhashable name (a list from a TOML file)
            raise self._missing(name, self.names()) from None
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            entry = self._entries[name] = getattr(importlib.import_module(module), attr)
        return entry

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries
