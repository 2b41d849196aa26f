"""Standard MIDI files in and out (mido), as notes in beats.

Reading merges every track and channel except General MIDI drums (channel
10) into one part, which is what a seed phrase or a piano data set needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mido

from affetto.errors import MidiFileError
from affetto.music.notes import Note, TimeSignature, sort_notes

DRUM_CHANNEL = 9


@dataclass(frozen=True)
class MidiPhrase:
    notes: list[Note]
    meter: TimeSignature
    tempo: float  # BPM of the first tempo event (120 when there is none)
    path: str = ""


def read_midi(path: str | Path, *, require_notes: bool = True) -> MidiPhrase:
    """Read a MIDI file; raise :class:`MidiFileError` naming the file on failure."""
    path = Path(path)
    try:
        mid = mido.MidiFile(path, clip=True)
    except FileNotFoundError as err:
        raise MidiFileError(f"{path}: no such file") from err
    except (OSError, EOFError, ValueError, KeyError, IndexError) as err:
        raise MidiFileError(f"{path}: not a readable MIDI file ({err})") from err
    if mid.type == 2:
        raise MidiFileError(f"{path}: MIDI type 2 (independent sequences) is not supported")
    tpq = mid.ticks_per_beat or 480
    meter = None
    tempo = None
    notes: list[Note] = []
    for track in mid.tracks:
        now = 0
        open_notes: dict[tuple[int, int], tuple[int, int]] = {}
        for msg in track:
            now += msg.time
            if msg.type == "time_signature" and meter is None:
                try:
                    meter = TimeSignature(msg.numerator, msg.denominator)
                except ValueError:
                    meter = None
            elif msg.type == "set_tempo" and tempo is None:
                tempo = mido.tempo2bpm(msg.tempo)
            elif msg.type in ("note_on", "note_off"):
                if msg.channel == DRUM_CHANNEL:
                    continue
                key = (msg.channel, msg.note)
                if msg.type == "note_on" and msg.velocity > 0:
                    if key in open_notes:  # re-struck before release: end the old one
                        _close(notes, key, open_notes.pop(key), now, tpq)
                    open_notes[key] = (now, msg.velocity)
                elif key in open_notes:
                    _close(notes, key, open_notes.pop(key), now, tpq)
        for key, start in open_notes.items():  # never released: end at track end
            _close(notes, key, start, max(now, start[0] + 1), tpq)
    if require_notes and not notes:
        raise MidiFileError(f"{path}: no notes")
    return MidiPhrase(sort_notes(notes), meter or TimeSignature(4, 4), float(tempo or 120.0), str(path))


def _close(notes: list[Note], key: tuple[int, int], start: tuple[int, int], end: int, tpq: int) -> None:
    on, velocity = start
    if end <= on:
        end = on + 1
    notes.append(Note(key[1], on / tpq, (end - on) / tpq, max(1, min(velocity, 127)), key[0]))


def write_midi(
    path: str | Path,
    notes: Sequence[Note],
    *,
    meter: TimeSignature = TimeSignature(4, 4),
    bpm: float = 120.0,
    tpq: int = 480,
    name: str = "affetto",
) -> None:
    """Write a type-1 MIDI file with a conductor track and one note track."""
    if not bpm > 0:
        raise ValueError(f"bpm must be > 0, got {bpm}")
    conductor = mido.MidiTrack()
    conductor.append(mido.MetaMessage("track_name", name=name, time=0))
    conductor.append(
        mido.MetaMessage("time_signature", numerator=meter.numerator, denominator=meter.denominator, time=0)
    )
    conductor.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    events: list[tuple[int, int, mido.Message]] = []
    for n in notes:
        on = round(n.onset * tpq)
        off = max(on + 1, round(n.end * tpq))
        # Sort key: time, then note-offs before note-ons at the same tick.
        events.append((off, 0, mido.Message("note_off", note=n.pitch, velocity=0, channel=n.channel)))
        events.append((on, 1, mido.Message("note_on", note=n.pitch, velocity=n.velocity, channel=n.channel)))
    events.sort(key=lambda e: (e[0], e[1]))
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name="notes", time=0))
    now = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    end = max(now, 0)
    conductor.append(mido.MetaMessage("end_of_track", time=end))
    track.append(mido.MetaMessage("end_of_track", time=0))
    mid = mido.MidiFile(type=1, ticks_per_beat=tpq)
    mid.tracks.extend([conductor, track])
    mid.save(str(path))
