"""Emotion: Russell's valence/arousal quadrants, capsules, and knob mappings.

A *capsule* is a probability vector over the four quadrants. The model mixes
one learned embedding per quadrant by these weights; an all-zero capsule
means "unconditioned" (what classifier-free guidance compares against).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from affetto.analysis.lexicon import mood_point
from affetto.errors import EmotionError


class Quadrant(IntEnum):
    Q1 = 0  # +valence +arousal: happy, excited
    Q2 = 1  # -valence +arousal: tense, angry
    Q3 = 2  # -valence -arousal: sad
    Q4 = 3  # +valence -arousal: calm

    @property
    def mood(self) -> str:
        return MOODS[self]

    @property
    def valence(self) -> float:
        return 1.0 if self in (Quadrant.Q1, Quadrant.Q4) else -1.0

    @property
    def arousal(self) -> float:
        return 1.0 if self in (Quadrant.Q1, Quadrant.Q2) else -1.0

    @classmethod
    def from_va(cls, valence: float, arousal: float) -> Quadrant:
        """The quadrant a valence/arousal point lies in (0 counts as positive)."""
        if valence >= 0:
            return cls.Q1 if arousal >= 0 else cls.Q4
        return cls.Q2 if arousal >= 0 else cls.Q3

    @classmethod
    def parse(cls, text: str) -> Quadrant:
        key = str(text).strip().lower()
        for q in cls:
            if key in (q.name.lower(), q.mood):
                return q
        raise EmotionError(f"unknown quadrant {text!r}: use Q1..Q4 or happy, tense, sad, calm")


MOODS = {Quadrant.Q1: "happy", Quadrant.Q2: "tense", Quadrant.Q3: "sad", Quadrant.Q4: "calm"}

# The knob walks the circle in this order; neighbours share an edge of the
# valence/arousal plane, so a blend of two neighbours is always meaningful.
KNOB_ORDER = (Quadrant.Q3, Quadrant.Q4, Quadrant.Q1, Quadrant.Q2)
KNOB_PLATEAU = 0.25  # half-width, in anchor units, where a quadrant sounds pure


@dataclass(frozen=True)
class Capsule:
    """Weights over Q1..Q4 that sum to 1, or all zero for "unconditioned"."""

    weights: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        w = tuple(float(x) for x in self.weights)
        if len(w) != 4:
            raise EmotionError(f"a capsule has 4 weights, got {len(w)}")
        if any(not math.isfinite(x) or x < 0 for x in w):
            raise EmotionError(f"capsule weights must be finite and >= 0, got {w}")
        total = sum(w)
        if total > 0:
            w = tuple(x / total for x in w)
        object.__setattr__(self, "weights", w)

    @classmethod
    def of(cls, quadrant: Quadrant) -> Capsule:
        w = [0.0] * 4
        w[int(quadrant)] = 1.0
        return cls((w[0], w[1], w[2], w[3]))

    @classmethod
    def unconditioned(cls) -> Capsule:
        return cls()

    @property
    def is_unconditioned(self) -> bool:
        return sum(self.weights) == 0

    @property
    def quadrant(self) -> Quadrant:
        """The heaviest quadrant (Q1 for an unconditioned capsule)."""
        return Quadrant(max(range(4), key=lambda i: self.weights[i]))

    @property
    def valence(self) -> float:
        return sum(w * q.valence for w, q in zip(self.weights, Quadrant))

    @property
    def arousal(self) -> float:
        return sum(w * q.arousal for w, q in zip(self.weights, Quadrant))

    def __str__(self) -> str:
        if self.is_unconditioned:
            return "unconditioned"
        parts = [f"{q.name}:{w:.2f}" for q, w in zip(Quadrant, self.weights) if w >= 0.005]
        return f"{self.quadrant.mood} ({' '.join(parts)})"


def va_capsule(valence: float, arousal: float) -> Capsule:
    """Capsule for a valence/arousal point in [-1, 1]^2 (bilinear blend).

    Coordinates at or beyond +-0.5 count as fully on that side, so the corners
    of an XY pad are pure quadrants and its centre is an even blend.
    """
    for name, x in (("valence", valence), ("arousal", arousal)):
        if not isinstance(x, (int, float)) or not math.isfinite(x) or not -1.0 <= x <= 1.0:
            raise EmotionError(f"{name} must be a number in [-1, 1], got {x!r}")
    u = min(max(0.5 + valence, 0.0), 1.0)  # share of positive valence
    v = min(max(0.5 + arousal, 0.0), 1.0)  # share of positive arousal
    return Capsule((u * v, (1 - u) * v, (1 - u) * (1 - v), u * (1 - v)))


def cc_value(value: object, what: str = "CC value") -> int:
    """``value`` when it is a MIDI data value (an int 0..127); the one place this range is checked."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 127:
        raise EmotionError(f"{what} must be an int in range 0..127, got {value!r}")
    return value


def knob_capsule(value: int) -> Capsule:
    """Capsule for one knob (0..127) walking Q3 -> Q4 -> Q1 -> Q2.

    The four quadrants sit at knob values 0, 42, 85 and 127 with a plateau
    around each where the quadrant is pure; between plateaus the two
    neighbours cross-fade linearly.
    """
    t = cc_value(value, "knob value") / 127 * (len(KNOB_ORDER) - 1)
    lower = min(int(t), len(KNOB_ORDER) - 2)
    frac = t - lower
    span = 1.0 - 2 * KNOB_PLATEAU
    mix = min(max((frac - KNOB_PLATEAU) / span, 0.0), 1.0)
    w = [0.0] * 4
    w[int(KNOB_ORDER[lower])] += 1.0 - mix
    w[int(KNOB_ORDER[lower + 1])] += mix
    return Capsule((w[0], w[1], w[2], w[3]))


def knob_value(quadrant: Quadrant) -> int:
    """The knob value at the centre of a quadrant's plateau."""
    index = KNOB_ORDER.index(quadrant)
    return round(index * 127 / (len(KNOB_ORDER) - 1))


def knob_for(capsule: Capsule) -> int:
    """The knob value (0..127) whose capsule is nearest ``capsule`` (the knob walks the circle's rim);
    among equally near ones, the nearest to the heaviest quadrant's own position."""
    target = np.array(capsule.weights)
    gaps = np.array([np.abs(np.array(knob_capsule(v).weights) - target).sum() for v in range(128)])
    nearest = np.flatnonzero(gaps <= gaps.min() + 1e-9)
    home = knob_value(capsule.quadrant)
    return int(nearest[np.argmin(np.abs(nearest - home))])


def cc_unit(value: int) -> float:
    """A CC value 0..127 as a coordinate in [-1, 1] (64 is just above 0)."""
    return cc_value(value) / 127 * 2 - 1


def parse_emotion(text: str) -> Capsule:
    """Parse ``Q1``..``Q4``, a mood name, ``none``, ``V,A`` with both in [-1, 1], or mood words
    ("melancholic, slow": see :mod:`affetto.analysis.lexicon`)."""
    key = str(text).strip().lower()
    if key in ("none", "unconditioned", "off"):
        return Capsule.unconditioned()
    if "," in key:
        try:
            v, a = (float(part) for part in key.split(","))
        except ValueError as err:
            if any(ch.isdigit() for ch in key):
                raise EmotionError(f"emotion {text!r} is not V,A with two numbers") from err
        else:
            return va_capsule(v, a)  # else words with commas: "melancholic, slow"
    try:
        return Capsule.of(Quadrant.parse(key))
    except EmotionError:
        return va_capsule(*mood_point(key))
