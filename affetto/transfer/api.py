"""Transfer: the player's phrase re-played in another emotion (the interface every method meets).

A method takes a phrase (notes in beats, the first bar line at beat 0, any
number of bars of ``meter``), a target capsule and a strength, and returns
the phrase re-played: same length, same meter, same bar lines. ``strength``
0 returns the source unchanged; 1 moves as far as the method goes.
``rng`` makes it deterministic (same generator state, same output).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from affetto.analysis.emotion import Capsule
from affetto.music.notes import Note, TimeSignature


@runtime_checkable
class Transfer(Protocol):
    name: str  # "rule", "cvae", ...

    def transfer(
        self,
        notes: Sequence[Note],
        meter: TimeSignature,
        capsule: Capsule,
        *,
        strength: float = 1.0,
        rng: np.random.Generator | None = None,
    ) -> list[Note]: ...
