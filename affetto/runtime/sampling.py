"""Sampling one token from logits: guidance, grammar mask, temperature, top-k, top-p.

:class:`SamplingConfig` is a complete set of settings; :class:`SamplingOverrides`
is what a user or a bar request asks for (None: the model's own setting),
validated once when it is made and applied over the model's settings by
the engine. Everything works in place on a small float32 buffer the caller owns (the
vocabulary has ~150 tokens), so a decode step allocates next to nothing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from affetto.errors import ConfigError

MAX_CANDIDATES = 16
MAX_DENSITY = 6  # the vocabulary's density levels: 0 an empty bar, 6 the busiest (see affetto.analysis.attributes)
MAX_TEXTURE = 5  # its polyphony levels: 1 a single line .. 5 chords of four and more


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 1.0
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1: off
    guidance: float = 1.0  # classifier-free guidance scale; 1: off
    greedy: bool = False
    candidates: int = 1  # bars drawn per bar played; the one the feature judge finds nearest the emotion wins
    density: int | None = None  # onset-density level each bar is written at (models with controls); None: planned
    texture: int | None = None  # polyphony level (notes per onset) each bar is written at; None: planned

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise ConfigError(f"top_k must be an int >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if not 0 <= self.guidance <= 20:
            raise ConfigError(f"guidance must be in [0, 20], got {self.guidance}")
        if not isinstance(self.candidates, int) or not 1 <= self.candidates <= MAX_CANDIDATES:
            raise ConfigError(f"candidates must be an int in 1..{MAX_CANDIDATES}, got {self.candidates}")
        if self.density is not None and (not isinstance(self.density, int) or not 0 <= self.density <= MAX_DENSITY):
            raise ConfigError(f"density must be an int in 0..{MAX_DENSITY}, got {self.density}")
        if self.texture is not None and (not isinstance(self.texture, int) or not 1 <= self.texture <= MAX_TEXTURE):
            raise ConfigError(f"texture must be an int in 1..{MAX_TEXTURE}, got {self.texture}")

    def replace(self, **changes) -> SamplingConfig:
        return replace(self, **changes)

    def as_kwargs(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SamplingConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# Ranges a user may ask for (the daemon's TOML, generate's options, a bar request).
OVERRIDE_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.01, 5.0),
    "top_k": (0, 100_000),
    "top_p": (0.01, 1.0),
    "guidance": (0.0, 20.0),
    "candidates": (1, MAX_CANDIDATES),
    "density": (0, MAX_DENSITY),
    "texture": (1, MAX_TEXTURE),
}
_INTS = ("top_k", "candidates", "density", "texture")


@dataclass(frozen=True, kw_only=True)
class SamplingOverrides:
    """Sampling settings asked for; None leaves the model's own (its manifest's, else the defaults)."""

    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    guidance: float | None = None
    candidates: int | None = None  # bars drawn per bar played; fewer is cheaper
    density: int | None = None  # onset-density level (models with control tokens); None: planned from the emotion
    texture: int | None = None  # polyphony level, 1 a single line .. 5 full chords; None: planned
    greedy: bool = False

    def __post_init__(self) -> None:
        for name, (lo, hi) in OVERRIDE_RANGES.items():
            value = getattr(self, name)
            if value is None:
                continue
            if name in _INTS:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ConfigError(f"{name} must be an int, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{name} must be a number, got {value!r}")
            if not lo <= value <= hi:
                raise ConfigError(f"{name} must be in range {lo}..{hi}, got {value!r}")
        if not isinstance(self.greedy, bool):
            raise ConfigError(f"greedy must be true or false, got {self.greedy!r}")

    def given(self) -> dict[str, Any]:
        """The settings asked for (those not None; ``greedy`` when set)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        if not self.greedy:
            del out["greedy"]
        return out

    def over(self, base: SamplingConfig) -> SamplingConfig:
        """``base`` with these settings applied."""
        given = self.given()
        return base.replace(**given) if given else base

    def replace(self, **changes: Any) -> SamplingOverrides:
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamplingOverrides:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown sampling setting(s): {', '.join(unknown)}")
        return cls(**data)


NO_OVERRIDES = SamplingOverrides()


# The daemon's and generate's defaults when a model file names none. Three candidates per bar: with the
# meter and key in the vocabulary the model carries valence itself and the candidates refine; bars are now
# filled (~70 tokens at 120 BPM), and 4 candidates measured p99 334 ms a bar on one thread of our slower
# machine (goal 300 ms), 3 keep under it (README, Benchmarks).
DEFAULT_SAMPLING = SamplingConfig(temperature=1.0, top_k=0, top_p=0.95, guidance=1.5, candidates=3)


def guide(cond: np.ndarray, uncond: np.ndarray, scale: float, out: np.ndarray) -> np.ndarray:
    """Classifier-free guidance: ``uncond + scale * (cond - uncond)``, into ``out``."""
    np.subtract(cond, uncond, out=out)
    out *= scale
    out += uncond
    return out


def sample(
    logits: np.ndarray,
    allowed: np.ndarray,
    config: SamplingConfig,
    rng: np.random.Generator,
) -> int:
    """Draw a token from ``logits`` (one row, modified in place) among the ``allowed`` ones: :func:`sample_rows`
    of one row."""
    return int(sample_rows(logits[None], allowed[None], config, rng)[0])


def sample_rows(
    logits: np.ndarray,
    allowed: np.ndarray,
    config: SamplingConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """One token per row of ``logits`` (rows, vocab; modified in place) among that row's ``allowed`` ones.

    Every operation runs along the rows, each row on its own, so drawing rows together draws the tokens of
    drawing them one by one with the same generator (each row takes one uniform number, in order). The
    weights are left unnormalised (the largest is 1): top-p keeps the most likely tokens until their weights
    reach ``top_p`` of the total (tokens as likely as the one that crosses it too), and the draw is the
    inverse CDF over the kept weights in vocabulary order, scaled by their total. A decode step runs this
    once, on every candidate's row, so it is a fixed handful of array operations whatever the number of rows.
    """
    rows, size = logits.shape
    np.putmask(logits, ~allowed, -np.inf)
    if config.greedy:
        return logits.argmax(axis=1)
    if config.temperature != 1.0:
        logits /= config.temperature
    if config.top_k and config.top_k < size:
        kth = np.partition(logits, -config.top_k, axis=1)[:, -config.top_k, None]
        np.putmask(logits, logits < kth, -np.inf)
    np.subtract(logits, _MAX(logits, axis=1, keepdims=True), out=logits)
    weights = np.exp(logits, out=logits)  # 0 where not allowed
    if config.top_p < 1.0:
        ranked = weights.copy()
        ranked.sort(axis=1)
        reach = _CUMSUM(ranked[:, ::-1], axis=1)  # the most likely first
        cut = (reach >= config.top_p * reach[:, -1:]).argmax(axis=1)  # the token that crosses top_p
        np.putmask(weights, weights < ranked[_ROWS[:rows, 0], size - 1 - cut, None], 0.0)
    total = _CUMSUM(weights, axis=1)
    u = np.asarray(rng.random(rows))  # one uniform number per row, in order
    # A token of weight 0 adds nothing to the running total, so it is never the first to pass the draw.
    return (total > u[:, None] * total[:, -1:]).argmax(axis=1)


_MAX, _CUMSUM = np.maximum.reduce, np.add.accumulate  # the ufuncs' own methods: cheaper a call than np.max, np.cumsum
_ROWS = np.arange(1024)[:, None]  # row numbers, for gathers along the rows of a step
