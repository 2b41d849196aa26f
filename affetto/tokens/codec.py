"""Encoding notes to tokens and decoding tokens to notes.

The encoder writes each bar's header from the bar's own music (:mod:`affetto.analysis.attributes`);
the decoder is lenient about an unfinished note at the end of a stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from affetto.analysis.attributes import bar_attributes, key_class
from affetto.errors import VocabularyError
from affetto.music.notes import Note, TimeSignature, sort_notes
from affetto.tokens.layout import BAR, BOS, DENS, DUR, KEY, METER, PAD, PITCH, POLY, POS, VEL, VocabLayout


class Codec(VocabLayout):
    """Notes <-> tokens."""

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

    def decode(self, tokens: Iterable[int], meter: TimeSignature, *, channel: int = 0) -> list[Note]:
        """Notes of a token stream; the first BAR starts at beat 0.

        A bar is ``meter`` long unless its METER token says otherwise.
        Decoding is lenient: a note left incomplete at the end of the stream
        (a pitch without a duration) is dropped, and tokens that break the
        grammar raise :class:`VocabularyError` naming the position.
        """
        return sort_notes(self.decode_from(tokens, meter, channel=channel)[0])

    def decode_from(self, tokens: Iterable[int], meter: TimeSignature, *, channel: int = 0,
                    at: tuple[float, float] | None = None) -> tuple[list[Note], tuple[float, float]]:
        """:meth:`decode` in parts: the notes of ``tokens`` in the order written (not sorted), and where the
        stream stands after them (its last bar's start and length in beats), which ``at`` takes to go on
        with tokens that begin with a BAR. Decoding a stream in parts cut before its BARs gives the notes of
        decoding it whole, to the bit: onsets add up bar by bar either way."""
        bar_start, bar_beats = (-meter.beats_per_bar, meter.beats_per_bar) if at is None else at
        bar_index = -1 if at is None else 0
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
        return notes, (bar_start, bar_beats)
