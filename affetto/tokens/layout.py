"""The token vocabulary's layout: a REMI-style event language, one bar at a time.

A bar is written as::

    BAR  [METER_m  KEY_k  DENS_d  POLY_p]  (POS_p  (PITCH_n VEL_v DUR_d)+ )*

The bracketed header is present in vocabularies that have meters and
controls (version 2): ``METER`` names the bar's time signature, so the bar's
length is known to the grammar and a 4/4 bar is written as 4/4 rather than as
two bars of the 2/4 most folk tunes are notated in; ``KEY``, ``DENS`` and
``POLY`` are attributes measured from the bar's own music (the key of the
passage, onsets per beat, notes per onset; see :mod:`affetto.analysis.attributes`),
which the engine sets from the knob and the seed at run time. Version 1
vocabularies (no header) keep their ids: the new blocks come after ``DUR``.

``POS_p`` is the onset inside the bar in grid steps; positions rise strictly
inside a bar and pitches rise strictly inside a position, so every stream has
exactly one spelling and a decoder never sees the same key struck twice at
once. A stream of tokens for a phrase starts with ``BOS`` and is followed by
its bars. The grammar below states which token may follow which; the engine
masks the model's logits with it, so every generated bar decodes to notes
that fit inside the bar.

The vocabulary is written by hand rather than borrowed from a tokenising
library because the daemon decodes it bar by bar while streaming, masks every
step with the grammar, and must stay free of heavy dependencies; the whole
definition is a small frozen config that every model file carries as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from affetto.analysis.attributes import (
    DENSITY_EDGES,
    KEY_CLARITY,
    N_KEYS,
    POLYPHONY_EDGES,
    key_name,
)
from affetto.errors import ConfigError, VocabularyError
from affetto.music.notes import Grid, TimeSignature

# Token types, in the order their blocks appear in the id space.
PAD, BOS, BAR, POS, PITCH, VEL, DUR, METER, KEY, DENS, POLY = range(11)
TYPE_NAMES = ("PAD", "BOS", "BAR", "POS", "PITCH", "VEL", "DUR", "METER", "KEY", "DENS", "POLY")
CONTROL_TYPES = (KEY, DENS, POLY)

DEFAULT_DURATIONS = (*tuple(range(1, 17)), 20, 24, 28, 32, 40, 48, 64)
# The meters of the version 2 vocabulary: those of the music21 corpus and of common DAW sessions.
DEFAULT_METERS = ("2/4", "3/4", "4/4", "6/8", "3/8", "9/8", "12/8", "2/2", "3/2", "6/4", "5/4", "4/2")


@dataclass(frozen=True)
class VocabConfig:
    """Everything that defines the id space; stored in every model file."""

    steps_per_beat: int = 4  # grid: sixteenth notes
    max_bar_steps: int = 32  # positions 0..31: bars up to 8 quarter notes
    pitch_min: int = 21  # A0, the piano's range
    pitch_max: int = 108  # C8
    velocity_bins: int = 8
    durations: tuple[int, ...] = field(default=DEFAULT_DURATIONS)  # in grid steps
    version: int = 1
    meters: tuple[str, ...] = ()  # a METER token per bar when not empty
    controls: bool = False  # KEY, DENS and POLY tokens per bar
    density_edges: tuple[float, ...] = DENSITY_EDGES
    polyphony_edges: tuple[float, ...] = POLYPHONY_EDGES
    key_clarity: float = KEY_CLARITY

    @classmethod
    def with_controls(cls) -> VocabConfig:
        """The version 2 vocabulary: meters and control tokens."""
        return cls(version=2, meters=DEFAULT_METERS, controls=True)

    def __post_init__(self) -> None:
        Grid(self.steps_per_beat)  # validates
        if not 1 <= self.max_bar_steps <= 256:
            raise VocabularyError(f"max_bar_steps must be in range 1..256, got {self.max_bar_steps}")
        if not 0 <= self.pitch_min <= self.pitch_max <= 127:
            raise VocabularyError(
                f"pitch range must satisfy 0 <= min <= max <= 127, got {self.pitch_min}..{self.pitch_max}"
            )
        if not 1 <= self.velocity_bins <= 128:
            raise VocabularyError(f"velocity_bins must be in range 1..128, got {self.velocity_bins}")
        durs = tuple(int(d) for d in self.durations)
        if not durs or any(d < 1 for d in durs) or list(durs) != sorted(set(durs)):
            raise VocabularyError("durations must be distinct positive step counts in rising order")
        object.__setattr__(self, "durations", durs)
        meters = tuple(str(m) for m in self.meters)
        try:
            parsed = [TimeSignature.parse(m) for m in meters]
        except ConfigError as err:
            raise VocabularyError(f"meters: {err}") from err
        if len(set(parsed)) != len(parsed):
            raise VocabularyError("meters must be distinct")
        grid = Grid(self.steps_per_beat)
        for m in parsed:
            try:
                steps = grid.steps_per_bar(m)
            except ConfigError as err:
                raise VocabularyError(f"meters: {err}") from err
            if steps > self.max_bar_steps:
                raise VocabularyError(f"meter {m} is longer than max_bar_steps ({self.max_bar_steps})")
        object.__setattr__(self, "meters", tuple(str(m) for m in parsed))
        for name in ("density_edges", "polyphony_edges"):
            edges = tuple(float(e) for e in getattr(self, name))
            if not edges or list(edges) != sorted(set(edges)):
                raise VocabularyError(f"{name} must be distinct numbers in rising order")
            object.__setattr__(self, name, edges)


class VocabLayout:
    """Token ids and names of a :class:`VocabConfig`; the codec and the grammar build on it."""

    def __init__(self, config: VocabConfig | None = None) -> None:
        self.config = config = config or VocabConfig()
        self.grid = Grid(config.steps_per_beat)
        self.pad, self.bos, self.bar = 0, 1, 2
        self.pos0 = 3
        self.pitch0 = self.pos0 + config.max_bar_steps
        self.n_pitches = config.pitch_max - config.pitch_min + 1
        self.vel0 = self.pitch0 + self.n_pitches
        self.dur0 = self.vel0 + config.velocity_bins
        self.meter0 = self.dur0 + len(config.durations)
        self.meters = tuple(TimeSignature.parse(m) for m in config.meters)
        self.key0 = self.meter0 + len(self.meters)
        n_controls = (N_KEYS, len(config.density_edges) + 2, len(config.polyphony_edges) + 2)
        self.n_keys, self.n_density, self.n_polyphony = n_controls if config.controls else (0, 0, 0)
        self.dens0 = self.key0 + self.n_keys
        self.poly0 = self.dens0 + self.n_density
        self.size = self.poly0 + self.n_polyphony
        self._meter_steps = np.array([self.grid.steps_per_bar(m) for m in self.meters], dtype=np.int64)

        types = np.empty(self.size, dtype=np.int8)
        types[: self.pos0] = (PAD, BOS, BAR)
        types[self.pos0 : self.pitch0] = POS
        types[self.pitch0 : self.vel0] = PITCH
        types[self.vel0 : self.dur0] = VEL
        types[self.dur0 : self.meter0] = DUR
        types[self.meter0 : self.key0] = METER
        types[self.key0 : self.dens0] = KEY
        types[self.dens0 : self.poly0] = DENS
        types[self.poly0 :] = POLY
        self.types = types
        self._durations = np.asarray(config.durations, dtype=np.int64)
        # The header after each BAR, and the type after which a bar's notes may begin.
        self.header: tuple[int, ...] = ((METER,) if self.meters else ()) + (CONTROL_TYPES if config.controls else ())
        self.opens = self.header[-1] if self.header else BAR
        self.header_after = dict(zip((BAR, *self.header[:-1]), self.header))  # type -> the header type after it
        # Which token types may follow each type (rows: previous type).
        chain = (BAR, *self.header)
        follow: dict[int, tuple[int, ...]] = {t: () for t in range(len(TYPE_NAMES))}
        follow.update({BOS: (BAR,), POS: (PITCH,), PITCH: (VEL,), VEL: (DUR,), DUR: (PITCH, POS, BAR)})
        for prev, nxt in pairwise(chain):
            follow[prev] = (nxt,)
        follow[self.opens] = (BAR, POS)
        self.follow_masks = np.zeros((len(TYPE_NAMES), self.size), dtype=bool)
        for prev, nexts in follow.items():
            for t in nexts:
                self.follow_masks[prev] = self.follow_masks[prev] | (types == t)

    # ---- ids and names ---------------------------------------------------
    def __len__(self) -> int:
        return self.size

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VocabLayout) and other.config == self.config

    def __hash__(self) -> int:
        return hash(self.config)

    def pos(self, step: int) -> int:
        return self.pos0 + step

    def pitch(self, midi: int) -> int:
        return self.pitch0 + midi - self.config.pitch_min

    def vel(self, velocity: int) -> int:
        return self.vel0 + self.velocity_bin(velocity)

    def dur(self, steps: int) -> int:
        return self.dur0 + self.duration_index(steps)

    def meter(self, meter: TimeSignature) -> int:
        """The METER token of ``meter``; :class:`VocabularyError` if the vocabulary lacks it."""
        try:
            return self.meter0 + self.meters.index(meter)
        except ValueError:
            raise VocabularyError(
                f"meter {meter} is not in this vocabulary ({', '.join(map(str, self.meters)) or 'no meters'})"
            ) from None

    def key(self, key_class: int) -> int:
        return self.key0 + int(key_class)

    def density(self, index: int) -> int:
        return self.dens0 + int(index)

    def polyphony(self, index: int) -> int:
        return self.poly0 + int(index)

    def steps_of_meter(self, token: int) -> int:
        return int(self._meter_steps[token - self.meter0])

    def velocity_bin(self, velocity: int) -> int:
        return min(int(velocity) * self.config.velocity_bins // 128, self.config.velocity_bins - 1)

    def bin_velocity(self, index: int) -> int:
        """The velocity a bin decodes to: its centre, at least 1."""
        width = 128 / self.config.velocity_bins
        return max(1, min(127, int((index + 0.5) * width)))

    def duration_index(self, steps: int) -> int:
        """Index of the nearest representable duration (ties go to the shorter)."""
        return int(np.argmin(np.abs(self._durations - steps)))

    def name(self, token: int) -> str:
        t = int(self.types[token]) if 0 <= token < self.size else -1
        if t in (PAD, BOS, BAR):
            return TYPE_NAMES[t]
        if t == POS:
            return f"POS_{token - self.pos0}"
        if t == PITCH:
            return f"PITCH_{token - self.pitch0 + self.config.pitch_min}"
        if t == VEL:
            return f"VEL_{self.bin_velocity(token - self.vel0)}"
        if t == DUR:
            return f"DUR_{self.config.durations[token - self.dur0]}"
        if t == METER:
            return f"METER_{self.meters[token - self.meter0]}"
        if t == KEY:
            return f"KEY_{key_name(token - self.key0)}"
        if t == DENS:
            return f"DENS_{token - self.dens0}"
        if t == POLY:
            return f"POLY_{token - self.poly0}"
        raise VocabularyError(f"token {token} is outside the vocabulary of size {self.size}")

    def fold_pitch(self, pitch: int) -> int:
        """Move a pitch by octaves into the vocabulary's range."""
        lo, hi = self.config.pitch_min, self.config.pitch_max
        while pitch < lo:
            pitch += 12
        while pitch > hi:
            pitch -= 12
        return pitch if lo <= pitch <= hi else min(max(pitch, lo), hi)

