"""Loading user data sets from real MIDI files written into tmp_path."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from affetto.analysis.emotion import Quadrant
from affetto.errors import DatasetError
from affetto.models.userdata import load_emopia, load_midi_folder
from affetto.music.midifile import write_midi
from affetto.music.notes import Grid, Note, TimeSignature

MELODY = [Note(60, 0.0, 1.0, 90), Note(64, 1.5, 0.5, 70), Note(67, 4.0, 2.0, 100)]
# Steps at 4 per beat: (onset, duration, pitch, velocity)
MELODY_STEPS = [[0, 4, 60, 90], [6, 2, 64, 70], [16, 8, 67, 100]]


def write(path, notes=MELODY, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    write_midi(path, notes, **kwargs)
    return path


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_folder_pieces_names_and_steps(tmp_path):
    write(tmp_path / "b.mid")
    write(tmp_path / "sub" / "a.MIDI", [Note(62, 0.0, 3.0)], meter=TimeSignature(6, 8), bpm=90)
    (tmp_path / "notes.txt").write_text("not music")
    data = load_midi_folder(tmp_path)
    assert [p.name for p in data.pieces] == ["b.mid", "sub/a.MIDI"]  # sorted relative paths
    assert {p.group for p in data.pieces} == {"user"}
    assert data.labels == {} and data.skipped == []
    first, second = data.pieces
    assert first.notes.dtype == np.int32
    np.testing.assert_array_equal(first.notes, MELODY_STEPS)
    assert first.meter == TimeSignature(4, 4) and first.tempo == pytest.approx(120.0)
    # 6/8 at 90 BPM; a dotted half (3 beats) is 12 steps.
    assert second.meter == TimeSignature(6, 8) and second.tempo == pytest.approx(90.0, abs=1e-3)
    np.testing.assert_array_equal(second.notes, [[0, 12, 62, 80]])


def test_quantisation_to_the_grid(tmp_path):
    notes = [
        Note(60, 0.26, 1.0),  # 0.26 beats * 4 = 1.04 steps -> step 1
        Note(62, 2.0, 0.05),  # 0.2 steps long -> at least one step
        Note(64, 3.0, 1.0, channel=0),  # same onset and pitch on two channels:
        Note(64, 3.0, 2.0, channel=1),  # keep the longer, 8 steps
        Note(65, 1 / 3, 1 / 3),  # triplet: onset 1.33 -> step 1, end 2.67 -> step 3: 2 steps
    ]
    write(tmp_path / "q.mid", notes)
    (piece,) = load_midi_folder(tmp_path).pieces
    np.testing.assert_array_equal(
        piece.notes, [[1, 2, 65, 80], [1, 4, 60, 80], [8, 1, 62, 80], [12, 8, 64, 80]]
    )
    # On a 12-step grid the triplet is exact: onset 4, duration 4 steps.
    (piece,) = load_midi_folder(tmp_path, grid=Grid(12)).pieces
    assert [4, 4, 65, 80] in piece.notes.tolist()


def test_labels_from_csv(tmp_path):
    write(tmp_path / "a.mid")
    write(tmp_path / "sub" / "b.mid")
    write(tmp_path / "c.mid")
    csv = tmp_path / "labels.csv"
    # Header in any case and order, an extra column, a bare file name, a mood name.
    csv.write_text("Quadrant,File,comment\nQ2,a.mid,loud\nsad,b.mid,\n\n")
    data = load_midi_folder(tmp_path, csv)
    assert [p.name for p in data.pieces] == ["a.mid", "c.mid", "sub/b.mid"]
    assert data.labels == {0: Quadrant.Q2, 2: Quadrant.Q3}  # c.mid has no row


def test_bad_files_are_skipped_with_reasons(tmp_path, caplog):
    write(tmp_path / "good.mid")
    (tmp_path / "corrupt.mid").write_bytes(b"this is not a MIDI file at all")
    (tmp_path / "empty.mid").write_bytes(b"")
    write(tmp_path / "meta.mid", [])  # conductor and track names, tempo, meter: no notes
    write(tmp_path / "odd.mid", meter=TimeSignature(3, 32))  # 1.5 steps a bar on 4 steps a beat
    with caplog.at_level(logging.INFO, logger="affetto.models.userdata"):
        data = load_midi_folder(tmp_path)
    assert [p.name for p in data.pieces] == ["good.mid"]
    reasons = dict(data.skipped)
    assert list(reasons) == ["corrupt.mid", "empty.mid", "meta.mid", "odd.mid"]
    assert reasons["corrupt.mid"].startswith("not a readable MIDI file (")
    assert reasons["empty.mid"] == "empty file (0 bytes)"
    assert reasons["meta.mid"] == "no notes"
    assert reasons["odd.mid"] == "meter 3/32 does not fit a grid of 4 steps per beat"
    messages = warnings_of(caplog)
    for name, reason in data.skipped:
        assert f"{tmp_path / name}: skipped: {reason}" in messages
    assert messages[-1] == f"{tmp_path}: loaded 1 pieces (0 labelled) from 5 MIDI files; skipped 4"
    assert all("\n" not in m for m in messages)


def test_label_problems_are_warned_and_the_rest_loads(tmp_path, caplog):
    write(tmp_path / "a.mid")
    write(tmp_path / "b.mid")
    write(tmp_path / "c.mid")
    (tmp_path / "broken.mid").write_bytes(b"")
    write(tmp_path / "x" / "d.mid")
    write(tmp_path / "y" / "d.mid")
    csv = tmp_path / "labels.csv"
    csv.write_text(
        "file,quadrant\n"
        "a.mid,happy\n"  # line 2: fine
        "missing.mid,Q1\n"  # line 3: no such file
        "b.mid,joyful\n"  # line 4: unknown quadrant
        "broken.mid,Q3\n"  # line 5: the file failed to load
        ",Q4\n"  # line 6: no file name
        "a.mid,Q3\n"  # line 7: a second, different label
        "d.mid,Q2\n"  # line 8: two files of that name
        "./c.mid,calm\n"  # line 9: fine
    )
    with caplog.at_level(logging.WARNING, logger="affetto.models.userdata"):
        data = load_midi_folder(tmp_path, csv)
    names = [p.name for p in data.pieces]
    assert names == ["a.mid", "b.mid", "c.mid", "x/d.mid", "y/d.mid"]
    assert data.labels == {0: Quadrant.Q1, 2: Quadrant.Q4}
    assert data.skipped == [("broken.mid", "empty file (0 bytes)")]
    assert warnings_of(caplog) == [
        f"{tmp_path / 'broken.mid'}: skipped: empty file (0 bytes)",
        "labels.csv line 3: missing.mid: no such MIDI file in the folder; row ignored",
        "labels.csv line 4: b.mid: unknown quadrant 'joyful': use Q1..Q4 or happy, tense, sad, calm;"
        " left unlabelled",
        "labels.csv line 5: broken.mid: the file was skipped (empty file (0 bytes)); label ignored",
        "labels.csv line 6: no file name; row ignored",
        "labels.csv line 7: a.mid: labelled twice (Q1, then Q3); keeping Q1",
        "labels.csv line 8: d.mid: names 2 files; give the path relative to the folder; row ignored",
        f"{tmp_path}: loaded 5 pieces (2 labelled) from 6 MIDI files; skipped 1",
    ]


def test_every_file_broken_gives_an_empty_data_set(tmp_path):
    (tmp_path / "a.mid").write_bytes(b"")
    data = load_midi_folder(tmp_path)
    assert data.pieces == [] and data.skipped == [("a.mid", "empty file (0 bytes)")]


def test_folder_errors(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(DatasetError) as info:
        load_midi_folder(missing)
    assert str(info.value) == f"{missing}: no such folder"
    afile = write(tmp_path / "one.mid")
    with pytest.raises(DatasetError) as info:
        load_midi_folder(afile)
    assert str(info.value) == f"{afile}: not a folder"
    empty = tmp_path / "empty"
    (empty / "deep").mkdir(parents=True)
    (empty / "deep" / "readme.txt").write_text("no music here")
    with pytest.raises(DatasetError) as info:
        load_midi_folder(empty)
    assert str(info.value) == f"{empty}: no .mid or .midi files found (searched recursively)"


def test_csv_errors(tmp_path):
    write(tmp_path / "a.mid")
    bad = tmp_path / "bad.csv"
    bad.write_text("name,mood\na.mid,Q1\n")
    with pytest.raises(DatasetError) as info:
        load_midi_folder(tmp_path, bad)
    assert str(info.value) == (
        f"{bad}: the header must have the columns file,quadrant; missing file,quadrant in 'name,mood'"
    )
    half = tmp_path / "half.csv"
    half.write_text("file,label\na.mid,Q1\n")
    with pytest.raises(DatasetError, match=r"missing quadrant in 'file,label'$"):
        load_midi_folder(tmp_path, half)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DatasetError) as info:
        load_midi_folder(tmp_path, empty)
    assert str(info.value) == f"{empty}: empty; expected a header with the columns file,quadrant"
    with pytest.raises(DatasetError) as info:
        load_midi_folder(tmp_path, tmp_path / "none.csv")
    assert str(info.value) == f"{tmp_path / 'none.csv'}: no such label file"
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(DatasetError) as info:
        load_midi_folder(tmp_path, binary)
    assert str(info.value) == f"{binary}: not a UTF-8 text file"


def test_emopia_layout(tmp_path, caplog):
    midis = tmp_path / "midis"
    write(midis / "Q1_abc_0.mid")
    write(midis / "Q3__x-y_z_12.mid", [Note(57, 0.0, 2.0)])  # ids may hold "_" and "-"
    write(midis / "Q5_abc_0.mid")  # no such quadrant
    write(midis / "song.mid")
    (midis / "Q2_bad_1.mid").write_bytes(b"")
    (tmp_path / "label.csv").write_text("ID,4Q\n")  # EMOPIA's own files sit beside midis/
    with caplog.at_level(logging.WARNING, logger="affetto.models.userdata"):
        data = load_emopia(tmp_path)
    assert [p.name for p in data.pieces] == ["Q1_abc_0.mid", "Q3__x-y_z_12.mid"]
    assert {p.group for p in data.pieces} == {"emopia"}
    assert data.labels == {0: Quadrant.Q1, 1: Quadrant.Q3}
    np.testing.assert_array_equal(data.pieces[1].notes, [[0, 8, 57, 80]])
    pattern = "name does not match Q<1-4>_<id>_<n>.mid"
    assert data.skipped == [
        ("Q2_bad_1.mid", "empty file (0 bytes)"),
        ("Q5_abc_0.mid", pattern),
        ("song.mid", pattern),
    ]
    assert warnings_of(caplog)[-1] == f"{midis}: loaded 2 pieces (2 labelled) from 5 MIDI files; skipped 3"


def test_emopia_without_midis_folder(tmp_path):
    write(tmp_path / "Q4_id_3.midi")
    data = load_emopia(tmp_path)
    assert [p.name for p in data.pieces] == ["Q4_id_3.midi"]
    assert data.labels == {0: Quadrant.Q4}
    with pytest.raises(DatasetError) as info:
        load_emopia(tmp_path / "missing")
    assert str(info.value) == f"{tmp_path / 'missing'}: no such folder"
