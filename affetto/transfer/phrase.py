"""A MIDI file's notes by part, for transfer, and the file written back with only its notes changed.

A part is one (track, channel) pair of a standard MIDI file, so a two-hand
piano file (right hand and left hand on two tracks of one channel) keeps its
hands, and a file of several instruments keeps its channels. For a method the
parts are packed into one phrase whose ``Note.channel`` names the part (at most
16 parts: :func:`pack`), so that the key is heard from every part together,
and unpacked afterwards. Writing copies the source file and replaces only its
note events: tempo map, meter, program changes, controllers, track names and
the file's length stay as they were. General MIDI drums (channel 10) are never
transferred and are written back untouched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mido

from affetto.errors import MidiFileError
from affetto.music.midifile import DRUM_CHANNEL
from affetto.music.notes import Note, TimeSignature, sort_notes
from affetto.tokens.layout import DEFAULT_METERS

Part = tuple[int, int]  # (track index, MIDI channel)
VOCABULARY_METERS = tuple(TimeSignature.parse(m) for m in DEFAULT_METERS)
MAX_PARTS = 16


@dataclass
class SourceFile:
    """A MIDI file read for transfer: its notes by part, its first meter and tempo, its length."""

    path: str
    midi: mido.MidiFile
    parts: dict[Part, list[Note]]
    meter: TimeSignature
    tempo: float  # BPM of the first tempo event (120 when none)
    end_tick: int  # the file's length: its longest track's end
    drum_notes: int = 0
    meters: list[TimeSignature] = field(default_factory=list)  # every meter the file declares

    @property
    def notes(self) -> list[Note]:
        return sort_notes(n for notes in self.parts.values() for n in notes)

    @property
    def beats(self) -> float:
        return self.end_tick / self.midi.ticks_per_beat

    @property
    def bars(self) -> int:
        """Whole bars that hold the file (its last onset and its end)."""
        length = self.meter.beats_per_bar
        last = max((n.onset for n in self.notes), default=0.0)
        return max(int(last // length) + 1, int(-(-(self.beats - 1e-6) // length)))


def read_source(path: str | Path) -> SourceFile:
    """Read ``path`` for transfer; a :class:`MidiFileError` with one line naming the file says why not:
    missing, unreadable, type 2, no notes, drums alone, or a meter the vocabulary lacks."""
    path = Path(path)
    if not path.exists():
        raise MidiFileError(f"{path}: no such file")
    try:
        mid = mido.MidiFile(path, clip=True)
    except (OSError, EOFError, ValueError, KeyError, IndexError) as err:
        raise MidiFileError(f"{path}: not a readable MIDI file ({err})") from err
    if mid.type == 2:
        raise MidiFileError(f"{path}: MIDI type 2 (independent sequences) is not supported")
    tpq = mid.ticks_per_beat or 480
    meters: list[TimeSignature] = []
    tempo: float | None = None
    parts: dict[Part, list[Note]] = {}
    drums = 0
    end_tick = 0
    for index, track in enumerate(mid.tracks):
        now = 0
        held: dict[tuple[int, int], tuple[int, int]] = {}
        for msg in track:
            now += msg.time
            if msg.type == "time_signature":
                try:
                    meters.append(TimeSignature(msg.numerator, msg.denominator))
                except ValueError as err:
                    raise MidiFileError(f"{path}: meter {msg.numerator}/{msg.denominator} is not understood") \
                        from err
            elif msg.type == "set_tempo" and tempo is None:
                tempo = mido.tempo2bpm(msg.tempo)
            elif msg.type in ("note_on", "note_off"):
                if msg.channel == DRUM_CHANNEL:
                    drums += msg.type == "note_on" and msg.velocity > 0
                    continue
                key = (msg.channel, msg.note)
                if msg.type == "note_on" and msg.velocity > 0:
                    if key in held:
                        _close(parts, index, key, held.pop(key), now, tpq)
                    held[key] = (now, msg.velocity)
                elif key in held:
                    _close(parts, index, key, held.pop(key), now, tpq)
        for key, start in held.items():
            _close(parts, index, key, start, max(now, start[0] + 1), tpq)
        end_tick = max(end_tick, now)
    if not parts:
        if drums:
            raise MidiFileError(f"{path}: only drums (channel 10): no pitched notes to transfer")
        raise MidiFileError(f"{path}: no notes")
    meter = meters[0] if meters else TimeSignature(4, 4)
    if meter not in VOCABULARY_METERS:
        raise MidiFileError(f"{path}: meter {meter} is not in the vocabulary "
                            f"({', '.join(DEFAULT_METERS)})")
    if len(parts) > MAX_PARTS:
        raise MidiFileError(f"{path}: {len(parts)} track/channel parts; transfer takes at most {MAX_PARTS}")
    return SourceFile(str(path), mid, {k: sort_notes(v) for k, v in sorted(parts.items())}, meter,
                      float(tempo or 120.0), end_tick, drums, meters)


def _close(parts: dict[Part, list[Note]], track: int, key: tuple[int, int], start: tuple[int, int], end: int,
           tpq: int) -> None:
    on, velocity = start
    end = max(end, on + 1)
    channel, pitch = key
    parts.setdefault((track, channel), []).append(
        Note(pitch, on / tpq, (end - on) / tpq, max(1, min(velocity, 127)), channel))


def pack(parts: Mapping[Part, Sequence[Note]]) -> tuple[list[Note], list[Part]]:
    """One phrase of every part, ``Note.channel`` the part's index in the returned list."""
    order = sorted(parts)
    if len(order) > MAX_PARTS:
        raise MidiFileError(f"transfer takes at most {MAX_PARTS} parts, got {len(order)}")
    notes = [Note(n.pitch, n.onset, n.duration, n.velocity, i) for i, part in enumerate(order) for n in parts[part]]
    return sort_notes(notes), order


def unpack(notes: Sequence[Note], order: Sequence[Part]) -> dict[Part, list[Note]]:
    """Inverse of :func:`pack`: the notes by part, each on its part's own channel."""
    out: dict[Part, list[Note]] = {part: [] for part in order}
    for n in notes:
        track, channel = order[n.channel]
        out[(track, channel)].append(Note(n.pitch, n.onset, n.duration, n.velocity, channel))
    return {part: sort_notes(v) for part, v in out.items()}


def write_like(source: SourceFile, parts: Mapping[Part, Sequence[Note]], path: str | Path) -> None:
    """Write ``source``'s file again with each part's notes replaced by ``parts``' (drums, meta events and
    controllers as they were; the file's length kept unless a note now ends later)."""
    tpq = source.midi.ticks_per_beat or 480
    out = mido.MidiFile(type=source.midi.type, ticks_per_beat=tpq)
    for index, track in enumerate(source.midi.tracks):
        events: list[tuple[int, int, mido.Message]] = []  # (tick, order, message)
        now = 0
        end = 0
        for msg in track:
            now += msg.time
            if msg.type == "end_of_track":
                end = now
                continue
            if msg.type in ("note_on", "note_off") and msg.channel != DRUM_CHANNEL:
                continue
            events.append((now, 1, msg))
        for (t, _channel), notes in parts.items():
            if t != index:
                continue
            for n in notes:
                on = round(n.onset * tpq)
                off = max(on + 1, round(n.end * tpq))
                events.append((off, 0, mido.Message("note_off", note=n.pitch, velocity=0, channel=n.channel)))
                events.append((on, 2, mido.Message("note_on", note=n.pitch, velocity=n.velocity,
                                                   channel=n.channel)))
        events.sort(key=lambda e: (e[0], e[1]))
        new = mido.MidiTrack()
        now = 0
        for tick, _order, msg in events:
            new.append(msg.copy(time=tick - now))
            now = tick
        new.append(mido.MetaMessage("end_of_track", time=max(end, now) - now))
        out.tracks.append(new)
    out.save(str(path))
