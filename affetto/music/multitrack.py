"""Several named note tracks in one standard MIDI file (the ensemble's voices, one track each)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import mido

from affetto.music.notes import Note, TimeSignature


def write_tracks(
    path: str | Path,
    tracks: Mapping[str, Sequence[Note]],
    *,
    meter: TimeSignature = TimeSignature(4, 4),
    bpm: float = 120.0,
    tpq: int = 480,
) -> None:
    """A type-1 file: a conductor track, then one track per entry of ``tracks`` in order.

    Each note keeps its own channel, so a voice's track and channel agree
    when its notes were made on one channel.
    """
    if not bpm > 0:
        raise ValueError(f"bpm must be > 0, got {bpm}")
    mid = mido.MidiFile(type=1, ticks_per_beat=tpq)
    conductor = mido.MidiTrack()
    conductor.append(mido.MetaMessage("time_signature", numerator=meter.numerator, denominator=meter.denominator))
    conductor.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))
    conductor.append(mido.MetaMessage("end_of_track", time=0))
    mid.tracks.append(conductor)
    for name, notes in tracks.items():
        events = []
        for n in notes:
            on = round(n.onset * tpq)
            off = max(on + 1, round(n.end * tpq))
            events.append((off, 0, mido.Message("note_off", note=n.pitch, velocity=0, channel=n.channel)))
            events.append((on, 1, mido.Message("note_on", note=n.pitch, velocity=n.velocity, channel=n.channel)))
        events.sort(key=lambda e: (e[0], e[1]))
        track = mido.MidiTrack()
        track.append(mido.MetaMessage("track_name", name=name, time=0))
        now = 0
        for tick, _, msg in events:
            track.append(msg.copy(time=tick - now))
            now = tick
        track.append(mido.MetaMessage("end_of_track", time=0))
        mid.tracks.append(track)
    mid.save(str(path))
