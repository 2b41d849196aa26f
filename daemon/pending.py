"""Bars asked for and not yet back, and what a knob turn asks again.

The conductor keeps a :class:`Pending` per bar asked for. :class:`Asked`
remembers what was asked for each bar not yet over, so that a knob turn can
ask the sounding bar again from its next reachable half beat, and the bars
asked after it from their start: each as a bar already begun (``join``), so
that when it comes back what of it is not yet due replaces what was scheduled
of it (``replaces``), and when it comes too late the old notes go on: no gap,
nothing doubled, no miss counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from affetto.daemon.modes import Ask


@dataclass
class Pending:
    bar: int
    requested_ns: int
    join: bool = False  # asked after its bar line: what is not yet due when it comes back is played
    replaces: float | None = None  # asked again after a knob turn: what was scheduled of it from this
    # beat (in the bar) gives way when it comes back


class Asked:
    """What was asked for each bar not yet over, and the beat of the last turn's revision."""

    def __init__(self, bar_beats: float) -> None:
        self.bar_beats = bar_beats
        self.asks: dict[int, Ask] = {}
        self.turned_at = -1.0

    def add(self, ask: Ask) -> None:
        self.asks[ask.bar] = ask

    def clear(self) -> None:
        self.asks.clear()

    def again(self, bar: int, reach: float) -> list[tuple[Ask, float]] | None:
        """After a turn while ``bar`` sounds: the asks to make again with the beat (in their bar) each is
        asked from, the first half beat at or after ``reach`` (the earliest beat an answer can make);
        None when the last turn's revision is not behind yet (one a half beat at most)."""
        target = math.ceil(2 * reach - 1e-9) / 2
        if target <= self.turned_at:
            return None
        self.turned_at = target
        again = [(ask, max(0.0, target - b * self.bar_beats)) for b, ask in sorted(self.asks.items())
                 if b >= bar and target < (b + 1) * self.bar_beats]
        self.asks.clear()
        return again
