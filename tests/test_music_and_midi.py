"""Music types and MIDI files in and out."""

import mido
import pytest

from affetto.errors import ConfigError, MidiFileError
from affetto.music.midifile import read_midi, write_midi
from affetto.music.notes import Grid, Note, TimeSignature, join_bars, quantise, split_bars


def test_note_validation_messages():
    with pytest.raises(ValueError, match="pitch must be an int in range 0..127"):
        Note(128, 0, 1)
    with pytest.raises(ValueError, match="duration must be > 0"):
        Note(60, 0, 0)
    with pytest.raises(ValueError, match="channel must be"):
        Note(60, 0, 1, channel=16)


def test_meters_and_grid():
    assert TimeSignature.parse("6/8").beats_per_bar == 3.0
    assert Grid(4).steps_per_bar(TimeSignature(7, 8)) == 14
    with pytest.raises(ConfigError, match="meter must look like"):
        TimeSignature.parse("four")
    with pytest.raises(ConfigError, match="does not fit a grid"):
        Grid(1).steps_per_bar(TimeSignature(3, 8))


def test_quantise_and_bars():
    notes = quantise([Note(60, 0.1, 0.05), Note(62, 4.9, 1.0)], Grid(4))
    assert [(n.onset, n.duration) for n in notes] == [(0.0, 0.25), (5.0, 1.0)]
    bars = split_bars(notes, TimeSignature(4, 4))
    assert [[n.onset for n in bar] for bar in bars] == [[0.0], [1.0]]
    assert join_bars(bars, TimeSignature(4, 4)) == notes


def test_midi_round_trip(tmp_path):
    notes = [Note(60, 0, 1, 90), Note(64, 0.5, 1.5, 70, channel=2), Note(67, 3.75, 0.25, 100)]
    path = tmp_path / "phrase.mid"
    write_midi(path, notes, meter=TimeSignature(3, 4), bpm=96)
    phrase = read_midi(path)
    assert phrase.notes == notes
    assert phrase.meter == TimeSignature(3, 4) and phrase.tempo == pytest.approx(96)


def test_drums_are_ignored_and_unreleased_notes_end(tmp_path):
    mid = mido.MidiFile()
    track = mido.MidiTrack()
    track.append(mido.Message("note_on", note=36, velocity=100, channel=9, time=0))
    track.append(mido.Message("note_on", note=60, velocity=100, time=0))
    track.append(mido.Message("note_on", note=62, velocity=100, time=480))
    mid.tracks.append(track)
    path = tmp_path / "open.mid"
    mid.save(path)
    notes = read_midi(path).notes
    assert [(n.pitch, n.onset) for n in notes] == [(60, 0.0), (62, 1.0)]
    assert all(n.duration > 0 for n in notes)


def test_bad_files_name_the_file(tmp_path):
    junk = tmp_path / "junk.mid"
    junk.write_bytes(b"not midi at all")
    with pytest.raises(MidiFileError, match="junk.mid: not a readable MIDI file"):
        read_midi(junk)
    with pytest.raises(MidiFileError, match="missing.mid: no such file"):
        read_midi(tmp_path / "missing.mid")
    empty = tmp_path / "empty.mid"
    write_midi(empty, [])
    with pytest.raises(MidiFileError, match="empty.mid: no notes"):
        read_midi(empty)
    assert read_midi(empty, require_notes=False).notes == []
