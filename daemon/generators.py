"""The generators a mode can ask for, by kind, and how each one is loaded.

A mode class names the kind of generator that serves its requests
(:attr:`~affetto.daemon.modes.base.Mode.generator`); :data:`GENERATORS` maps
the kind to a function that turns the config into a *factory*: a picklable
callable that loads the model(s) when the worker calls it (in the worker's
child process, by default) and gives back a
:class:`~affetto.daemon.generator.BarGenerator`. So the service builds
whatever the mode needs without knowing the mode, and every kind is served
the same way:

- ``lead``: the lead model (the shipped one when ``model`` is unset), as a
  :class:`~affetto.daemon.generator.PhraseGenerator`;
- ``harmoniser``: the ensemble alone, voicing the player's loop (a
  :class:`~affetto.ensemble.accompany.LoopHarmoniser` as a
  :class:`~affetto.daemon.generator.HarmoniseGenerator`);
- ``band``: the lead model with the ensemble's voices under each of its bars
  (a :class:`~affetto.ensemble.accompany.Band` as a
  :class:`~affetto.daemon.generator.PhraseGenerator`).

``builtin:fake`` stands in for either model (``builtin:fake:<ms>`` burns
``<ms>`` of CPU per bar, like a model that needs that long).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from affetto.daemon.config import FAKE_MODEL, DaemonConfig
from affetto.daemon.fakes import FakeGenerator, FakeVoices
from affetto.daemon.generator import GeneratorFactory, HarmoniseGenerator, PhraseGenerator, PhraseModel
from affetto.daemon.modes import mode_class
from affetto.ensemble.accompany import Band, LoopHarmoniser
from affetto.errors import ConfigError
from affetto.music.notes import TimeSignature
from affetto.registry import Registry

FactoryMaker = Callable[[DaemonConfig], GeneratorFactory]
GENERATORS: Registry[FactoryMaker] = Registry(
    lambda name, known: ConfigError(f"no generator of kind {name!r} (known: {', '.join(known)})"))


def _load_engine(path: str | None, meter: TimeSignature, threads: int | None, precision: str = "auto"):
    from affetto.runtime import default_model_path, load_model  # lazy: ONNX Runtime loads only here

    return load_model(path if path is not None else default_model_path(precision), meter=meter, threads=threads)


def _fake(meter: TimeSignature, cost_ms: float = 0.0):
    return FakeGenerator(meter, cost_ms=cost_ms)


def _load_voices(path: str | None, meter: TimeSignature, threads: int | None):
    if path is not None and path == FAKE_MODEL:
        return FakeVoices(meter)
    from affetto.ensemble.engine import load_voices  # lazy: ONNX Runtime loads only here

    return load_voices(path, meter, threads=threads or 1)


def fake_generator(meter: TimeSignature, cost_ms: float = 0.0) -> PhraseGenerator:
    """The stand-in lead as a generator (picklable with ``functools.partial``: tests and benchmarks)."""
    return PhraseGenerator(_fake(meter, cost_ms))


def _phrases(load: Callable[[], PhraseModel]) -> PhraseGenerator:
    return PhraseGenerator(load())


def _harmoniser(path: str | None, meter: TimeSignature, threads: int | None, seed: int) -> HarmoniseGenerator:
    return HarmoniseGenerator(LoopHarmoniser(_load_voices(path, meter, threads), seed=seed))


def _band(lead: Callable[[], PhraseModel], path: str | None, meter: TimeSignature, threads: int | None,
          seed: int) -> PhraseGenerator:
    return PhraseGenerator(Band(lead(), _load_voices(path, meter, threads), seed=seed))


def _lead_model(config: DaemonConfig) -> Callable[[], PhraseModel]:
    """Loads the lead model: ``config.model``, the shipped one in ``config.precision`` when unset, or
    ``builtin:fake[:<ms>]``."""
    if config.model is not None and config.model.startswith(FAKE_MODEL):
        cost = config.model[len(FAKE_MODEL) + 1 :] if config.model != FAKE_MODEL else "0"
        try:
            cost_ms = float(cost)
        except ValueError as err:
            raise ConfigError(f"builtin:fake takes a CPU cost in ms, got {config.model!r}") from err
        return functools.partial(_fake, config.meter, cost_ms)
    return functools.partial(_load_engine, config.model, config.meter, config.threads, config.precision)


def lead_factory(config: DaemonConfig) -> GeneratorFactory:
    """The lead model continuing and answering phrases."""
    return functools.partial(_phrases, _lead_model(config))


def harmoniser_factory(config: DaemonConfig) -> GeneratorFactory:
    """The ensemble (``config.ensemble_model``) voicing the player's loop."""
    return functools.partial(_harmoniser, config.ensemble_model, config.meter, config.threads, config.rng_seed or 0)


def band_factory(config: DaemonConfig) -> GeneratorFactory:
    """The lead model with the ensemble's voices under each of its bars."""
    return functools.partial(_band, _lead_model(config), config.ensemble_model, config.meter, config.threads,
                             config.rng_seed or 0)


GENERATORS.add("lead", lead_factory)
GENERATORS.add("harmoniser", harmoniser_factory)
GENERATORS.add("band", band_factory)
GENERATORS.add("transfer", "affetto.daemon.modes.transfer:transfer_factory")  # the player's loop re-played


def default_factory(config: DaemonConfig) -> GeneratorFactory:
    """The factory of the generator ``config.mode`` asks for; no model means the shipped one."""
    return GENERATORS.get(mode_class(config.mode).generator)(config)
