"""Music types: notes in beats, time signatures, and the rhythmic grid.

Musical time is measured in quarter-note beats (floats) at this level, and in
integer grid steps inside the token vocabulary. Wall-clock time never appears
here: the daemon's clocks map beats to deadlines.

Triplets: the grid has ``steps_per_beat`` steps per quarter note (4, i.e.
sixteenth notes, by default). Onsets and durations that fall between grid
steps, triplets among them, are snapped to the nearest step; a note never
shrinks below one step. The grid is written into every model file, so a
model trained on a finer grid (e.g. 12 steps, which holds both sixteenths and
triplets) carries that choice with it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from affetto.errors import ConfigError

MIDI_MAX = 127


@dataclass(frozen=True, slots=True)
class Note:
    """One note: MIDI pitch, onset and duration in quarter-note beats."""

    pitch: int
    onset: float
    duration: float
    velocity: int = 80
    channel: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.pitch, int) or not 0 <= self.pitch <= MIDI_MAX:
            raise ValueError(f"pitch must be an int in range 0..127, got {self.pitch!r}")
        if not isinstance(self.velocity, int) or not 1 <= self.velocity <= MIDI_MAX:
            raise ValueError(f"velocity must be an int in range 1..127, got {self.velocity!r}")
        if not isinstance(self.channel, int) or not 0 <= self.channel <= 15:
            raise ValueError(f"channel must be an int in range 0..15, got {self.channel!r}")
        if not self.onset >= 0:
            raise ValueError(f"onset must be >= 0 beats, got {self.onset!r}")
        if not self.duration > 0:
            raise ValueError(f"duration must be > 0 beats, got {self.duration!r}")

    @property
    def end(self) -> float:
        return self.onset + self.duration


@dataclass(frozen=True, slots=True)
class TimeSignature:
    """A meter such as 4/4 or 6/8; ``beats_per_bar`` is in quarter notes."""

    numerator: int = 4
    denominator: int = 4

    def __post_init__(self) -> None:
        if not isinstance(self.numerator, int) or not 1 <= self.numerator <= 32:
            raise ConfigError(f"meter numerator must be in range 1..32, got {self.numerator!r}")
        if self.denominator not in (1, 2, 4, 8, 16, 32):
            raise ConfigError(
                f"meter denominator must be a power of two from 1 to 32, got {self.denominator!r}"
            )

    @classmethod
    def parse(cls, text: str) -> TimeSignature:
        """Parse ``"4/4"``-style text."""
        try:
            num, den = (int(part) for part in str(text).strip().split("/"))
        except ValueError as err:
            raise ConfigError(f"meter must look like 4/4 or 6/8, got {text!r}") from err
        return cls(num, den)

    @property
    def beats_per_bar(self) -> float:
        return self.numerator * 4.0 / self.denominator

    def __str__(self) -> str:
        return f"{self.numerator}/{self.denominator}"


@dataclass(frozen=True, slots=True)
class Grid:
    """The rhythmic grid: ``steps_per_beat`` steps per quarter-note beat."""

    steps_per_beat: int = 4

    def __post_init__(self) -> None:
        if not isinstance(self.steps_per_beat, int) or not 1 <= self.steps_per_beat <= 48:
            raise ConfigError(f"steps_per_beat must be in range 1..48, got {self.steps_per_beat!r}")

    def to_steps(self, beats: float) -> int:
        """Nearest grid step to a time in beats (half steps round up)."""
        return math.floor(beats * self.steps_per_beat + 0.5)

    def to_beats(self, steps: int) -> float:
        return steps / self.steps_per_beat

    def steps_per_bar(self, meter: TimeSignature) -> int:
        steps = meter.beats_per_bar * self.steps_per_beat
        if abs(steps - round(steps)) > 1e-9:
            raise ConfigError(f"meter {meter} does not fit a grid of {self.steps_per_beat} steps per beat")
        return round(steps)


def quantise(notes: Iterable[Note], grid: Grid) -> list[Note]:
    """Snap onsets and durations to the grid; drop exact duplicates.

    A duration never rounds to zero: it becomes at least one step. Notes of
    the same pitch and onset collapse into the longest of them, since MIDI
    cannot sound the same key twice at once.
    """
    best: dict[tuple[int, int, int], Note] = {}
    for note in notes:
        on = grid.to_steps(note.onset)
        off = max(grid.to_steps(note.end), on + 1)
        q = Note(note.pitch, grid.to_beats(on), grid.to_beats(off - on), note.velocity, note.channel)
        key = (note.channel, note.pitch, on)
        old = best.get(key)
        if old is None or q.duration > old.duration:
            best[key] = q
    return sort_notes(best.values())


def sort_notes(notes: Iterable[Note]) -> list[Note]:
    """Order by onset, then pitch: the order tokens are written in."""
    return sorted(notes, key=lambda n: (n.onset, n.pitch, n.channel))


def bar_count(notes: Sequence[Note], meter: TimeSignature) -> int:
    """Number of bars needed to hold every onset (0 for no notes)."""
    if not notes:
        return 0
    last = max(n.onset for n in notes)
    return int(last // meter.beats_per_bar) + 1


def split_bars(notes: Sequence[Note], meter: TimeSignature) -> list[list[Note]]:
    """Group notes by the bar their onset falls in; onsets become bar-relative."""
    bars: list[list[Note]] = [[] for _ in range(bar_count(notes, meter))]
    length = meter.beats_per_bar
    for n in notes:
        index = int(n.onset // length)
        bars[index].append(Note(n.pitch, n.onset - index * length, n.duration, n.velocity, n.channel))
    return bars


def join_bars(bars: Sequence[Sequence[Note]], meter: TimeSignature) -> list[Note]:
    """Inverse of :func:`split_bars`."""
    out: list[Note] = []
    for index, bar in enumerate(bars):
        offset = index * meter.beats_per_bar
        out.extend(Note(n.pitch, n.onset + offset, n.duration, n.velocity, n.channel) for n in bar)
    return sort_notes(out)
