"""The seed buffer: notes around Start, quantised phrases."""

from __future__ import annotations

from affetto.daemon.seed import SeedBuffer
from affetto.music.notes import TimeSignature


def test_a_note_a_hair_before_beat_zero_snaps_onto_it():
    # a chord played with Start whose first clock tick came ~2 ms late: onsets just below 0
    seed = SeedBuffer(TimeSignature())
    seed.note_on(0, 60, 90, -0.01)
    seed.note_on(0, 64, 90, -0.1)
    first, notes = seed.recent(1)  # still held at the bar line
    assert first == 0
    assert sorted((n.pitch, n.onset) for n in notes) == [(60, 0.0), (64, 0.0)]
    seed.note_off(0, 60, 1.5)
    _, notes = seed.recent(1)
    assert {n.pitch for n in notes} == {60, 64}
    assert seed.bar_has_notes(0)


def test_a_released_note_from_before_beat_zero_is_kept_not_dropped():
    seed = SeedBuffer(TimeSignature())
    seed.note_on(0, 67, 80, -0.05)
    seed.note_off(0, 67, 0.95)
    _, notes = seed.recent(1)
    assert [(n.pitch, n.onset, n.duration) for n in notes] == [(67, 0.0, 1.0)]


def test_a_note_well_before_the_song_is_ignored():
    seed = SeedBuffer(TimeSignature())
    seed.note_on(0, 60, 90, -1.0)  # a full beat before Start: not part of the song
    seed.note_off(0, 60, 0.5)
    assert seed.recent(1) == (0, [])
    assert seed.latest_onset is None
