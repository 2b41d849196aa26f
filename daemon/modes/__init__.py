"""Conductor modes: what is asked at each bar line, and what a player's note means.

One registry, :data:`MODES`, names every mode; the config checks ``mode``
against it, ``affetto run --mode`` offers its names, and the service and the
conductor build what it names (:func:`make_mode`) and read what the mode
class says it needs (:class:`~affetto.daemon.modes.base.Mode`: its task, its
generator, its voices). Registered here:

- ``continue``, ``call-response`` and ``ensemble`` (:mod:`.lead`): the lead
  model's bars, every bar, as answers, or with voices under them;
- ``harmonise`` (:mod:`.harmonise`): voices under the player's loop;
- ``transfer`` and ``variation`` (:mod:`.transfer`): the player's loop re-played
  in the knob's emotion, or a new variation of it each pass.

A new mode is a module in this folder with one :class:`Mode` subclass and one
:func:`register_mode` line below (or a call from anywhere before the config
is made); the mode modules are imported only when their mode is used.
"""

from __future__ import annotations

from affetto.daemon.modes.base import Ask, Cancel, Mode, ModeSettings
from affetto.errors import ConfigError
from affetto.registry import Registry

__all__ = ["MODES", "Ask", "Cancel", "Mode", "ModeSettings", "make_mode", "mode_class", "register_mode"]

MODES: Registry[type[Mode]] = Registry(
    lambda name, known: ConfigError(f"mode must be one of {', '.join(known)}, got {name!r}"))


def register_mode(mode: type[Mode] | str, name: str | None = None) -> None:
    """Register a mode class (or, lazily, a ``"module:attr"`` naming one under ``name``)."""
    if isinstance(mode, str):
        if not name:
            raise ValueError("a lazily registered mode needs its name")
        MODES.add(name, mode)
    else:
        MODES.add(mode.name, mode)


def mode_class(name: str) -> type[Mode]:
    """The registered mode class called ``name``; a :class:`ConfigError` listing the modes otherwise."""
    mode = MODES.get(name)
    if mode.name != name:
        raise ValueError(f"mode {name!r} is registered as a class named {mode.name!r}")
    return mode


def make_mode(config: ModeSettings) -> Mode:
    """A fresh mode object for a run with ``config`` (``config.mode`` names it)."""
    return mode_class(config.mode).from_config(config)


register_mode("affetto.daemon.modes.lead:ContinueMode", "continue")
register_mode("affetto.daemon.modes.lead:CallResponseMode", "call-response")
register_mode("affetto.daemon.modes.harmonise:HarmoniseMode", "harmonise")
register_mode("affetto.daemon.modes.lead:EnsembleMode", "ensemble")
register_mode("affetto.daemon.modes.transfer:TransferMode", "transfer")
register_mode("affetto.daemon.modes.transfer:VariationMode", "variation")
