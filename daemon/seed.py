"""Seed capture: notes the player sends, quantised and kept for the last bars.

Note-ons and note-offs arrive with song positions (beats, from the clock).
A note is complete at its note-off (or when it is cut off by :meth:`take`);
:meth:`phrase` returns the notes of a span of bars, quantised to the grid,
with onsets measured from the first bar line of the span, as the generator's
``prime`` expects.
"""

from __future__ import annotations

from affetto.music.notes import Grid, Note, TimeSignature, quantise

MAX_NOTES = 2048  # a flood of notes cannot grow the buffer without bound


class SeedBuffer:
    def __init__(self, meter: TimeSignature, grid: Grid | None = None, *, keep_bars: int = 2) -> None:
        self.meter = meter
        self.grid = grid or Grid()
        self.keep_bars = keep_bars
        self._open: dict[tuple[int, int], tuple[float, int]] = {}  # (channel, pitch) -> (onset, velocity)
        self._done: list[Note] = []  # absolute onsets in beats
        self.latest_onset: float | None = None

    def note_on(self, channel: int, pitch: int, velocity: int, beat: float) -> None:
        if beat < 0:
            # Before the song's first beat: a note played with Start (or held into it) whose clock
            # tick came a hair late sits within half a grid step before beat 0, and snaps onto it;
            # anything earlier is not part of the song.
            if beat < -self._half_step:
                return
            beat = 0.0
        key = (channel, pitch)
        if key in self._open:
            self.note_off(channel, pitch, beat)
        self._open[key] = (beat, velocity)
        self.latest_onset = beat

    def note_off(self, channel: int, pitch: int, beat: float) -> None:
        started = self._open.pop((channel, pitch), None)
        if started is None:
            return  # a note-off for a note we never saw (e.g. held across Start)
        onset, velocity = started
        duration = max(beat - onset, 1e-3)
        self._done.append(Note(pitch, onset, duration, velocity, channel))
        if len(self._done) > MAX_NOTES:
            del self._done[: len(self._done) - MAX_NOTES]

    def clear(self) -> None:
        self._open.clear()
        self._done.clear()
        self.latest_onset = None

    def bar_has_notes(self, bar: int) -> bool:
        """Whether any note started in ``bar`` (or is still held from it)."""
        lo, hi = self._span(bar, bar + 1)
        return any(lo <= n.onset < hi for n in self._done) or any(
            lo <= o < hi for o, _ in self._open.values()
        )

    def phrase(self, first_bar: int, end_bar: int) -> list[Note]:
        """Notes that start in bars ``first_bar .. end_bar - 1``, quantised, onsets from ``first_bar``'s line.

        Notes still held are cut at ``end_bar``'s line.
        """
        lo, hi = self._span(first_bar, end_bar)
        notes = [n for n in self._done if lo <= n.onset < hi]
        for (channel, pitch), (onset, velocity) in self._open.items():
            if lo <= onset < hi:
                notes.append(Note(pitch, onset, max(hi - onset, 1e-3), velocity, channel))
        origin = first_bar * self.meter.beats_per_bar
        rel = [Note(n.pitch, max(n.onset - origin, 0.0), n.duration, n.velocity, n.channel) for n in notes]
        return quantise(rel, self.grid)

    def onsets(self, lo: float, hi: float) -> list[tuple[float, int]]:
        """(song beat, pitch) of every note started from beat ``lo`` up to ``hi``, held ones too, as
        played (not quantised), in order."""
        found = [(n.onset, n.pitch) for n in self._done if lo <= n.onset < hi]
        found += [(onset, pitch) for (_channel, pitch), (onset, _v) in self._open.items() if lo <= onset < hi]
        return sorted(found)

    def recent(self, current_bar: int, *, bars: int | None = None) -> tuple[int, list[Note]]:
        """The last ``bars`` (default ``keep_bars``) complete bars before ``current_bar``: (first bar,
        notes); older notes are forgotten."""
        first = max(0, current_bar - (self.keep_bars if bars is None else bars))
        self.forget_before(first)
        return first, self.phrase(first, current_bar)

    def forget_before(self, bar: int) -> None:
        lo, _ = self._span(bar, bar)
        self._done = [n for n in self._done if n.onset >= lo]

    def _span(self, first_bar: int, end_bar: int) -> tuple[float, float]:
        # a note played a little early (within half a grid step) belongs to the bar it snaps into
        length = self.meter.beats_per_bar
        half = self._half_step
        return first_bar * length - half, end_bar * length - half

    @property
    def _half_step(self) -> float:
        return 0.5 / self.grid.steps_per_beat
