"""The generator contract: one :class:`BarRequest` in, one :class:`BarResult` out, whatever the model.

The conductor asks for every bar the same way, a :class:`BarRequest` (the
bar, the capsule, the sampling overrides, a seed, the task, the epoch), and a
worker (:mod:`affetto.daemon.workers`) serves it on a :class:`BarGenerator`
through :func:`run_request`. A generator says which tasks it serves and turns
a request into the bar's notes; the conductor, the workers and the service
never look at what is behind it:

- :class:`PhraseGenerator` serves ``continue`` and ``answer`` with a model
  that continues phrases (a :class:`PhraseModel`): the lead model's engine,
  or a :class:`~affetto.ensemble.accompany.Band`, whose bars carry voices too;
- :class:`HarmoniseGenerator` serves ``harmonise`` with a
  :class:`~affetto.ensemble.accompany.LoopHarmoniser`: the voices under a bar
  of the player's loop.

Which generator a mode asks for is said by the mode and built by
:mod:`affetto.daemon.generators`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from affetto.analysis.emotion import Capsule
from affetto.ensemble.accompany import LOOP_BARS, LoopHarmoniser
from affetto.errors import ConfigError
from affetto.music.notes import Note, TimeSignature
from affetto.runtime.sampling import NO_OVERRIDES, SamplingOverrides

TASKS = ("continue", "answer", "harmonise", "transfer", "variation")
LOOP_TASKS = ("harmonise", "transfer", "variation")  # requests that carry the player's loop


@dataclass(frozen=True, kw_only=True)
class BarRequest:
    """What the conductor asks of the generator for one bar; checked once, here.

    ``task`` says what is asked: ``continue`` the seed, ``answer`` a phrase
    (call-response), ``harmonise`` under it. With ``from_beat`` > 0 the bar
    was asked for already and is asked again from that beat on, in a new
    capsule: the knob turned while it sounds. A ``harmonise`` request carries
    the player's loop as ``seed`` (onsets from its first bar line), its length
    ``loop_bars`` (1, 2, 4 or 8) and ``position``, the asked bar counted from
    the loop's first bar line; the voices come back with their part (1, 2, 3)
    in ``Note.channel`` (see :mod:`affetto.ensemble.accompany`).
    """

    bar: int
    capsule: Capsule
    sampling: SamplingOverrides = NO_OVERRIDES  # None fields: the model's own settings
    seed: tuple[Note, ...] | None = None  # prime with this first when not None
    task: str = "continue"
    rng_seed: int | None = None
    epoch: int = 0  # the conductor's transport epoch, handed back on the result
    loop_bars: int = 0  # harmonise: the loop's length in bars
    position: int = 0  # harmonise: bars from the loop's first bar line to the asked bar
    from_beat: float = 0.0  # > 0: a bar already asked for, again from this beat on (a knob turn)

    def __post_init__(self) -> None:
        if isinstance(self.bar, bool) or not isinstance(self.bar, int) or self.bar < 0:
            raise ConfigError(f"bar must be an int >= 0, got {self.bar!r}")
        if not isinstance(self.capsule, Capsule):
            raise ConfigError(f"capsule must be a Capsule, got {self.capsule!r}")
        if not isinstance(self.sampling, SamplingOverrides):
            raise ConfigError(f"sampling must be SamplingOverrides, got {self.sampling!r}")
        if self.seed is not None and not (
            isinstance(self.seed, tuple) and all(isinstance(n, Note) for n in self.seed)
        ):
            raise ConfigError("seed must be a tuple of Notes or None")
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.rng_seed is not None and (isinstance(self.rng_seed, bool) or not isinstance(self.rng_seed, int)):
            raise ConfigError(f"rng_seed must be an int or None, got {self.rng_seed!r}")
        if isinstance(self.epoch, bool) or not isinstance(self.epoch, int):
            raise ConfigError(f"epoch must be an int, got {self.epoch!r}")
        if isinstance(self.from_beat, bool) or not isinstance(self.from_beat, (int, float)) or not (
                0 <= self.from_beat < 64):
            raise ConfigError(f"from_beat must be a number in [0, 64), got {self.from_beat!r}")
        if self.task in LOOP_TASKS:
            if self.seed is None:
                raise ConfigError(f"a {self.task} request carries the loop as its seed")
            if self.loop_bars not in LOOP_BARS:
                raise ConfigError(f"loop_bars must be one of {LOOP_BARS}, got {self.loop_bars!r}")
            if isinstance(self.position, bool) or not isinstance(self.position, int) or self.position < 0:
                raise ConfigError(f"position must be an int >= 0, got {self.position!r}")


@dataclass(frozen=True)
class BarResult:
    bar: int
    notes: list[Note] = field(default_factory=list)
    elapsed_ns: int = 0
    error: str | None = None
    epoch: int = 0


@runtime_checkable
class BarGenerator(Protocol):
    """What a worker serves requests with: the bar a request asks for, as notes."""

    @property
    def meter(self) -> TimeSignature: ...

    @property
    def tasks(self) -> tuple[str, ...]:
        """The request tasks it serves (a class attribute or an instance's)."""
        ...

    def serve(self, req: BarRequest) -> Sequence[Note]:
        """The notes of bar ``req.bar``, onsets from its bar line (``0 <= onset < meter.beats_per_bar``);
        ``Note.channel`` is the part where the bars carry parts (0 the lead, 1..3 the voices)."""
        ...


GeneratorFactory = Callable[[], BarGenerator]


class PhraseModel(Protocol):
    """A model that continues a phrase bar by bar (the lead model's engine implements it)."""

    meter: TimeSignature

    def prime(self, seed: Sequence[Note]) -> None:
        """Start afresh from ``seed`` (onsets in beats from the first seed bar line; may be empty)."""

    def generate_bar(
        self, capsule: Capsule, sampling: SamplingOverrides = NO_OVERRIDES, *, rng: np.random.Generator | None = None
    ) -> list[Note]:
        """The next bar; onsets relative to its start, ``0 <= onset < meter.beats_per_bar``.

        A sampling setting left at None takes the model's own default.
        """
        ...


class PhraseGenerator:
    """Continues the phrase (``continue``) or answers one (``answer``): a request with a seed primes the
    model with it first; its dice are seeded by the run's ``rng_seed`` and the bar, when there is one."""

    tasks: ClassVar[tuple[str, ...]] = ("continue", "answer")

    def __init__(self, model: PhraseModel) -> None:
        self.model = model
        self.last_bar: int | None = None  # the bar the model's context ends with
        self.meter = model.meter
        self.model_path = str(getattr(model, "model_path", type(model).__name__))
        self.provider = str(getattr(model, "provider", "unknown"))

    def serve(self, req: BarRequest) -> list[Note]:
        rng = np.random.default_rng(None if req.rng_seed is None else [req.rng_seed, req.bar, int(req.from_beat * 4)])
        revise = getattr(self.model, "revise", None)
        if req.from_beat > 0 and revise is not None and self.last_bar is not None and req.bar <= self.last_bar:
            # the model's context goes on past the bar: it forgets the bars after it and redoes its rest
            notes = revise(req.from_beat, req.capsule, req.sampling, rng=rng, drop_bars=self.last_bar - req.bar)
        else:
            if req.seed is not None:
                self.model.prime(req.seed)
            notes = self.model.generate_bar(req.capsule, req.sampling, rng=rng)
            notes = [n for n in notes if n.onset >= req.from_beat]
        self.last_bar = req.bar
        return notes


class HarmoniseGenerator:
    """The voices under bar ``position`` of the loop a ``harmonise`` request carries as its seed."""

    tasks: ClassVar[tuple[str, ...]] = ("harmonise",)

    def __init__(self, harmoniser: LoopHarmoniser) -> None:
        self.harmoniser = harmoniser
        self.meter = harmoniser.meter
        self.model_path = str(harmoniser.model_path)
        self.provider = str(harmoniser.provider)

    def serve(self, req: BarRequest) -> list[Note]:
        if req.seed is None:  # BarRequest refuses this already; said again for the type checker
            raise ConfigError("a harmonise request carries the loop as its seed")
        notes = self.harmoniser.harmonise_bar(req.seed, req.loop_bars, req.position, req.capsule, req.sampling)
        return [n for n in notes if n.onset >= req.from_beat]


def run_request(generator: BarGenerator, req: BarRequest) -> BarResult:
    """Serve one request on ``generator`` (never raises: errors come back in the result)."""
    t0 = time.perf_counter_ns()
    try:
        if req.task not in generator.tasks:
            raise ConfigError(
                f"this generator ({type(generator).__name__}) serves {', '.join(generator.tasks)}, "
                f"not {req.task!r} requests"
            )
        notes = list(generator.serve(req))
        return BarResult(req.bar, notes, time.perf_counter_ns() - t0, None, req.epoch)
    except Exception as err:  # a failing bar is a missed bar, not a dead daemon
        return BarResult(req.bar, [], time.perf_counter_ns() - t0, f"{type(err).__name__}: {err}", req.epoch)


def describe(generator: Any) -> dict[str, str]:
    return {
        "model": str(getattr(generator, "model_path", type(generator).__name__)),
        "provider": str(getattr(generator, "provider", "unknown")),
        "meter": str(getattr(generator, "meter", "?")),
    }
