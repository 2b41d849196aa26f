"""The token vocabulary: a REMI-style event language, one bar at a time.

A bar is written as::

    BAR  [METER_m  KEY_k  DENS_d  POLY_p]  (POS_p  (PITCH_n VEL_v DUR_d)+ )*

The bracketed header is present in vocabularies that have meters and
controls (version 2): ``METER`` names the bar's time signature, so the bar's
length is known to the grammar and a 4/4 bar is written as 4/4 rather than as
two bars of the 2/4 most folk tunes are notated in; ``KEY``, ``DENS`` and
``POLY`` are attributes measured from the bar's own music (the key of the
passage, onsets per beat, notes per onset; see :mod:`affetto.attributes`),
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

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np

from affetto.attributes import (
    DENSITY_EDGES,
    KEY_CLARITY,
    N_KEYS,
    POLYPHONY_EDGES,
    bar_attributes,
    key_class,
    key_name,
    transpose_key,
)
from affetto.errors import ConfigError, VocabularyError
from affetto.music import Grid, Note, TimeSignature, sort_notes

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


class Vocabulary:
    """Token ids, encoding notes to tokens and back, and the grammar masks."""

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
        return isinstance(other, Vocabulary) and other.config == self.config

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

    # ---- encoding --------------------------------------------------------
    def fold_pitch(self, pitch: int) -> int:
        """Move a pitch by octaves into the vocabulary's range."""
        lo, hi = self.config.pitch_min, self.config.pitch_max
        while pitch < lo:
            pitch += 12
        while pitch > hi:
            pitch -= 12
        return pitch if lo <= pitch <= hi else min(max(pitch, lo), hi)

    def encode(
        self, notes: Sequence[Note], meter: TimeSignature, *, bos: bool = True, key: int | None = None
    ) -> list[int]:
        """Tokens of a phrase whose onsets are in beats from its first bar line.

        Onsets and durations are snapped to the grid and pitches outside the
        range are folded by octaves; the stream has one BAR per bar up to the
        last onset. With controls, ``key`` is the key class every bar carries
        (None: estimated from the notes).
        """
        bar_steps = self.grid.steps_per_bar(meter)
        steps = self.notes_to_steps(notes)
        body = self.encode_steps(steps, bar_steps, meter=meter, key=key).tolist()
        return [self.bos, *body] if bos else body

    def notes_to_steps(self, notes: Iterable[Note]) -> np.ndarray:
        """(N, 4) int array of onset step, duration steps, pitch, velocity."""
        rows = []
        for n in notes:
            on = self.grid.to_steps(n.onset)
            off = max(self.grid.to_steps(n.onset + n.duration), on + 1)
            rows.append((on, off - on, n.pitch, n.velocity))
        return np.array(rows, dtype=np.int64).reshape(-1, 4)

    def encode_steps(
        self,
        notes: np.ndarray,
        bar_steps: int,
        n_bars: int | None = None,
        *,
        meter: TimeSignature | None = None,
        key: int | None = None,
    ) -> np.ndarray:
        """Tokens (no BOS) of an (N, 4) array of onset step, duration steps, pitch, velocity.

        Onsets count from the first bar line. ``n_bars`` pads the stream with
        empty bars (or must be at least the bars the notes need). Rows may come
        in any order; duplicates of (onset, pitch) keep the longest. A
        vocabulary with a header needs the ``meter`` (whose bar is
        ``bar_steps`` long); ``key`` is the key class of every bar (None:
        estimated from these notes).
        """
        body = self.encode_body(notes, bar_steps, n_bars)
        if not self.header:
            return body
        return self._insert_headers(body, notes, bar_steps, meter, key)

    def _insert_headers(
        self, body: np.ndarray, notes: np.ndarray, bar_steps: int, meter: TimeSignature | None, key: int | None
    ) -> np.ndarray:
        """Put each bar's header after its BAR (the body came from :meth:`encode_body`)."""
        bars_at = np.flatnonzero(body == self.bar)
        n_bars = len(bars_at)
        head = np.empty((n_bars, len(self.header)), dtype=np.int64)
        column = 0
        if self.meters:
            if meter is None:
                raise VocabularyError("this vocabulary writes the meter of every bar: encode needs the meter")
            if self.grid.steps_per_bar(meter) != bar_steps:
                raise VocabularyError(f"meter {meter} is not {bar_steps} steps long")
            head[:, column] = self.meter(meter)
            column += 1
        if self.config.controls:
            notes = np.asarray(notes, dtype=np.int64).reshape(-1, 4)
            notes = notes[notes[:, 0] < n_bars * bar_steps]
            if key is None:
                spb = self.config.steps_per_beat
                key = key_class(notes[:, 2], notes[:, 1] / spb, self.config.key_clarity)
            density, poly = bar_attributes(notes, bar_steps, n_bars, self.config.steps_per_beat,
                                           self.config.density_edges, self.config.polyphony_edges)
            head[:, column] = self.key(key)
            head[:, column + 1] = self.dens0 + density
            head[:, column + 2] = self.poly0 + poly
        width = len(self.header)
        out = np.empty(len(body) + n_bars * width, dtype=np.int64)
        shift = np.cumsum(body == self.bar) * width  # header tokens written before each body token
        keep = np.arange(len(body)) + shift - np.where(body == self.bar, width, 0)
        out[keep] = body
        slots = (bars_at + np.arange(n_bars) * width)[:, None] + 1 + np.arange(width)[None, :]
        out[slots.ravel()] = head.ravel()
        return out

    def encode_body(self, notes: np.ndarray, bar_steps: int, n_bars: int | None) -> np.ndarray:
        """The version 1 stream: BAR, positions and notes."""
        if not 1 <= bar_steps <= self.config.max_bar_steps:
            raise VocabularyError(
                f"a bar of {bar_steps} steps does not fit this vocabulary (max {self.config.max_bar_steps})"
            )
        notes = np.asarray(notes, dtype=np.int64).reshape(-1, 4)
        if len(notes) and notes[:, 0].min() < 0:
            raise VocabularyError("note onsets must be >= 0 steps")
        onset, dur, pitch, vel = (notes[:, i] for i in range(4))
        cfg = self.config
        # Fold pitches by octaves into range.
        below = np.maximum(0, -((pitch - cfg.pitch_min) // 12))
        above = np.maximum(0, -((cfg.pitch_max - pitch) // 12))
        pitch = np.clip(pitch + 12 * below - 12 * above, cfg.pitch_min, cfg.pitch_max)
        # Sort by onset, pitch, then longest first so the first of a duplicate wins.
        order = np.lexsort((-dur, pitch, onset))
        onset, dur, pitch, vel = onset[order], dur[order], pitch[order], vel[order]
        keep = np.ones(len(onset), dtype=bool)
        keep[1:] = (onset[1:] != onset[:-1]) | (pitch[1:] != pitch[:-1])
        onset, dur, pitch, vel = onset[keep], dur[keep], pitch[keep], vel[keep]

        needed = int(onset[-1] // bar_steps) + 1 if len(onset) else 0
        if n_bars is None:
            n_bars = needed
        elif n_bars < needed:
            raise VocabularyError(f"notes need {needed} bars but n_bars is {n_bars}")
        bar = onset // bar_steps
        new_pos = np.ones(len(onset), dtype=np.int64)
        new_pos[1:] = onset[1:] != onset[:-1]
        bars_before = np.diff(bar, prepend=-1)
        count = bars_before + new_pos + 3
        total = int(count.sum()) + (n_bars - needed)
        out = np.full(total, self.bar, dtype=np.int64)  # BAR fills the gaps and the tail
        start = np.cumsum(count) - count + bars_before
        pos_at = start[new_pos == 1]
        out[pos_at] = self.pos0 + (onset % bar_steps)[new_pos == 1]
        note_at = start + new_pos
        out[note_at] = self.pitch0 + pitch - cfg.pitch_min
        velocity_bin = np.minimum(np.clip(vel, 1, 127) * cfg.velocity_bins // 128, cfg.velocity_bins - 1)
        out[note_at + 1] = self.vel0 + velocity_bin
        dur_index = np.abs(self._durations[None, :] - dur[:, None]).argmin(axis=1)
        out[note_at + 2] = self.dur0 + dur_index
        return out

    # ---- decoding --------------------------------------------------------
    def decode(self, tokens: Iterable[int], meter: TimeSignature, *, channel: int = 0) -> list[Note]:
        """Notes of a token stream; the first BAR starts at beat 0.

        A bar is ``meter`` long unless its METER token says otherwise.
        Decoding is lenient: a note left incomplete at the end of the stream
        (a pitch without a duration) is dropped, and tokens that break the
        grammar raise :class:`VocabularyError` naming the position.
        """
        bar_beats = meter.beats_per_bar
        bar_start = -bar_beats
        bar_index = -1
        step = None
        pitch = velocity = None
        notes: list[Note] = []
        for i, tok in enumerate(tokens):
            tok = int(tok)
            if not 0 <= tok < self.size:
                raise VocabularyError(f"token {tok} at index {i} is outside the vocabulary of size {self.size}")
            t = self.types[tok]
            if t == BAR:
                bar_index += 1
                bar_start += bar_beats
                bar_beats = meter.beats_per_bar
                step, pitch, velocity = None, None, None
            elif t in (PAD, BOS, KEY, DENS, POLY):
                continue
            elif t == METER:
                bar_beats = self.meters[tok - self.meter0].beats_per_bar
            elif t == POS:
                if bar_index < 0:
                    raise VocabularyError(f"POS before any BAR at index {i}")
                step = tok - self.pos0
            elif t == PITCH:
                if step is None:
                    raise VocabularyError(f"PITCH without a POS at index {i}")
                pitch = tok - self.pitch0 + self.config.pitch_min
            elif t == VEL:
                if pitch is None:
                    raise VocabularyError(f"VEL without a PITCH at index {i}")
                velocity = self.bin_velocity(tok - self.vel0)
            elif t == DUR:
                if pitch is None or velocity is None or step is None:
                    raise VocabularyError(f"DUR without PITCH and VEL at index {i}")
                length = self.config.durations[tok - self.dur0]
                onset = bar_start + self.grid.to_beats(step)
                notes.append(Note(pitch, onset, self.grid.to_beats(length), velocity, channel))
                pitch = velocity = None
        return sort_notes(notes)

    # ---- grammar ---------------------------------------------------------
    def new_state(self, bar_steps: int) -> GrammarState:
        if not 1 <= bar_steps <= self.config.max_bar_steps:
            raise VocabularyError(
                f"a bar of {bar_steps} steps does not fit this vocabulary (max {self.config.max_bar_steps})"
            )
        return GrammarState(bar_steps=bar_steps)

    def advance(self, state: GrammarState, token: int) -> None:
        """Move the grammar state past ``token`` (which must be allowed)."""
        t = int(self.types[token])
        if t == BAR:
            state.pos = -1
            state.pitch = -1
            state.bars += 1
            state.notes_in_bar = 0
        elif t == POS:
            state.pos = token - self.pos0
            state.pitch = -1
        elif t == METER:
            state.bar_steps = self.steps_of_meter(token)
        elif t == PITCH:
            state.pitch = token - self.pitch0
            state.notes_in_bar += 1
        state.last = t

    def allowed(self, state: GrammarState, out: np.ndarray | None = None) -> np.ndarray:
        """Boolean mask of tokens allowed after ``state`` (written into ``out``)."""
        if out is None:
            out = np.empty(self.size, dtype=bool)
        np.copyto(out, self.follow_masks[state.last])
        last = state.last
        if last in (self.opens, DUR):
            # Positions strictly after the current one and inside the bar.
            lo = self.pos0 + state.pos + 1
            out[self.pos0 : lo] = False
            out[self.pos0 + state.bar_steps : self.pitch0] = False
        if last == DUR:
            # Another pitch at the same position must be higher.
            out[self.pitch0 : self.pitch0 + state.pitch + 1] = False
            if state.pitch >= self.n_pitches - 1:
                out[self.pitch0 : self.vel0] = False
        return out

    def transpose(self, tokens: np.ndarray, shift: int) -> np.ndarray:
        """Tokens moved by ``shift`` semitones: pitches, and the tonic of KEY tokens.

        The caller keeps pitches inside the range (see :meth:`pitch_span`).
        """
        tokens = np.asarray(tokens, dtype=np.int64)
        types = self.types[tokens]
        out = tokens + (types == PITCH) * shift
        if self.n_keys:
            keys = types == KEY
            if keys.any():
                out[keys] = self.key0 + transpose_key(tokens[keys] - self.key0, shift)
        return out

    def random_walk(self, length: int, rng: np.random.Generator, bar_steps: int = 16) -> list[int]:
        """``length`` tokens (BOS first) drawn uniformly among those the grammar allows.

        Valid streams with no musical sense: inputs for parity checks and benchmarks.
        """
        state = self.new_state(bar_steps)
        tokens = [self.bos]
        mask = np.empty(self.size, dtype=bool)
        while len(tokens) < length:
            token = int(rng.choice(np.flatnonzero(self.allowed(state, mask))))
            tokens.append(token)
            self.advance(state, token)
        return tokens

    def check(self, tokens: Sequence[int], bar_steps: int) -> None:
        """Raise :class:`VocabularyError` at the first token the grammar forbids."""
        state = GrammarState(bar_steps=bar_steps)
        state.last = PAD
        mask = np.empty(self.size, dtype=bool)
        for i, tok in enumerate(tokens):
            tok = int(tok)
            if not 0 <= tok < self.size:
                raise VocabularyError(f"token {tok} at index {i} is outside the vocabulary")
            if i == 0:
                if tok not in (self.bos, self.bar):
                    raise VocabularyError(f"a stream must start with BOS or BAR, got {self.name(tok)}")
            else:
                self.allowed(state, mask)
                if not mask[tok]:
                    raise VocabularyError(
                        f"{self.name(tok)} may not follow {TYPE_NAMES[state.last]} at index {i}"
                    )
            self.advance(state, tok)

    # ---- persistence -----------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": "affetto-vocab", **asdict(self.config), "size": self.size}

    @classmethod
    def from_dict(cls, data: dict) -> Vocabulary:
        if data.get("format") != "affetto-vocab":
            raise VocabularyError("not an affetto vocabulary (missing format: affetto-vocab)")
        fields = {k: v for k, v in data.items() if k in VocabConfig.__dataclass_fields__}
        for name in ("durations", "meters", "density_edges", "polyphony_edges"):
            if name in fields:
                fields[name] = tuple(fields[name])
        vocab = cls(VocabConfig(**fields))
        if "size" in data and data["size"] != vocab.size:
            raise VocabularyError(f"vocabulary size {data['size']} does not match its config ({vocab.size})")
        return vocab

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Vocabulary:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise VocabularyError(f"vocabulary JSON is malformed: {err}") from err
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


@dataclass
class GrammarState:
    """Where a token stream is: last token type, position and pitch in the bar."""

    bar_steps: int
    last: int = BOS
    pos: int = -1  # current position step, -1 before the first POS of a bar
    pitch: int = -1  # last pitch index at this position, -1 before the first
    bars: int = 0  # BAR tokens seen
    notes_in_bar: int = 0
