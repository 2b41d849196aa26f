"""``affetto describe``: the fields of phrases written here, the sentence checked against them, bad input."""

from __future__ import annotations

import importlib.util
import json

import mido
import pytest
from click.testing import CliRunner

from affetto.cli import cli
from affetto.music.notes import Note, TimeSignature
from affetto.words.describe import banned_words, claims, contradictions, measure, names_key_and_mood
from affetto.words.textmodel import Vocabulary, tokenize

HAS_RECOGNISER = importlib.util.find_spec("affetto.words.mood") is not None


def run(*args: str):
    return CliRunner().invoke(cli, ["describe", *args])


def test_json_holds_the_fields_of_the_analysis(tiny_text, write_phrase, scale):
    _, model = tiny_text
    path = write_phrase("a-minor.mid", scale(9, minor=True, meter=TimeSignature(3, 4)),
                        meter=TimeSignature(3, 4), bpm=72)
    result = run(str(path), "--json", "--model", str(model))
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    for name in ("text", "quadrant", "confidence", "valence", "arousal", "key", "meter", "tempo_bpm", "density",
                 "register", "texture", "contour"):
        assert name in out
    assert out["key"] == "A minor" and out["meter"] == "3/4" and out["tempo_bpm"] == 72.0
    assert out["quadrant"] in ("Q1", "Q2", "Q3", "Q4") and 0 <= out["confidence"] <= 1
    assert out["density"] == pytest.approx(11 / 12, abs=1e-3)  # 11 onsets (the last a chord) in 4 bars of 3 beats
    assert out["register"] == "high" and out["texture"] == "single line"
    if not HAS_RECOGNISER:
        assert out["mood_source"] == "judge" and out["valence"] < 0  # a minor key: negative valence


def test_the_sentence_names_the_key_and_the_mood_and_contradicts_no_field(tiny_text, write_phrase, scale):
    _, model = tiny_text
    for name, notes in (("c.mid", scale(0, minor=False)), ("fsharp.mid", scale(6, minor=True))):
        out = json.loads(run(str(write_phrase(name, notes)), "--json", "--model", str(model)).output)
        fields = measure(notes, TimeSignature(4, 4), 90.0)
        said = claims(tokenize(out["text"][:1].lower() + out["text"][1:]))
        assert names_key_and_mood(said), out["text"]
        assert not contradictions(said, fields), out["text"]
        assert f"{next(iter(said['tonic']))} {next(iter(said['mode']))}" == out["key"] == fields.key
        assert out["text_source"].startswith("decoder")


def test_plain_output_is_a_sentence_and_a_line_of_fields(tiny_text, write_phrase, scale):
    _, model = tiny_text
    result = run(str(write_phrase("c.mid", scale(0, minor=False))), "--model", str(model))
    assert result.exit_code == 0
    sentence, fields = result.output.strip().splitlines()
    assert sentence.endswith(".") and "C major" in sentence
    assert "C major" in fields and "4/4" in fields and "BPM" in fields


def test_constraints_ban_every_word_that_contradicts_the_fields(scale):
    fields = measure(scale(2, minor=False), TimeSignature(4, 4), 120.0, recognise=False)
    words = Vocabulary.of(["D", "E", "major", "minor", "4/4", "3/4", "happy", "sad", "calm", "tense", "in", "."]).words
    banned = {w for w, b in zip(words, banned_words(words, fields)) if b}
    assert banned == {"E", "minor", "3/4"} | ({"happy", "sad", "calm", "tense"} - {
        {"Q1": "happy", "Q2": "tense", "Q3": "sad", "Q4": "calm"}[fields.quadrant]})
    assert not contradictions(claims(["in", "D", "major", "4/4"]), fields)
    assert contradictions(claims(["in", "E", "major"]), fields) == {"tonic": {"E"}}
    assert not names_key_and_mood(claims(["in", "D", "major"]))


def test_the_mood_comes_from_the_recogniser_when_it_is_installed(scale):
    fields = measure(scale(0, minor=True), TimeSignature(4, 4), 100.0)
    if not HAS_RECOGNISER:
        pytest.skip("affetto.words.mood (the learned mood recogniser) is not installed yet")
    from affetto.words.mood import recognise  # type: ignore[import-not-found,unused-ignore]

    mood = recognise(scale(0, minor=True), TimeSignature(4, 4))
    assert fields.mood_source == "recogniser"
    assert fields.confidence == pytest.approx(float(mood.confidence))


def test_a_missing_file_is_one_clear_line(tmp_path, tiny_text):
    result = run(str(tmp_path / "absent.mid"), "--model", str(tiny_text[1]))
    assert result.exit_code != 0
    assert result.output.strip() == f"Error: {tmp_path / 'absent.mid'}: no such file"


def test_an_empty_file_is_one_clear_line(tmp_path, tiny_text):
    path = tmp_path / "empty.mid"
    mid = mido.MidiFile()
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("end_of_track", time=0)]))
    mid.save(path)
    result = run(str(path), "--model", str(tiny_text[1]))
    assert result.exit_code != 0
    assert result.output.strip() == f"Error: {path}: no notes"


def test_a_drum_only_file_is_one_clear_line(tmp_path, tiny_text):
    path = tmp_path / "drums.mid"
    track = mido.MidiTrack()
    for i in range(8):
        track.append(mido.Message("note_on", channel=9, note=36 + i % 3, velocity=100, time=0 if i == 0 else 240))
        track.append(mido.Message("note_off", channel=9, note=36 + i % 3, velocity=0, time=240))
    mid = mido.MidiFile()
    mid.tracks.append(track)
    mid.save(path)
    result = run(str(path), "--model", str(tiny_text[1]))
    assert result.exit_code != 0
    assert result.output.strip() == f"Error: {path}: only drums (channel 10), no pitched notes to describe"


def test_a_file_that_is_not_midi_is_one_clear_line(tmp_path, tiny_text):
    path = tmp_path / "notes.mid"
    path.write_text("not a MIDI file")
    result = run(str(path), "--model", str(tiny_text[1]))
    assert result.exit_code != 0
    assert len(result.output.strip().splitlines()) == 1 and "not a readable MIDI file" in result.output


def test_phrase_notes_only_with_a_rest_first(tiny_text, write_phrase, scale):
    _, model = tiny_text
    notes = [Note(n.pitch, n.onset + 4.0, n.duration) for n in scale(7, minor=False)]
    out = json.loads(run(str(write_phrase("late.mid", notes)), "--json", "--model", str(model)).output)
    assert out["key"] == "G major" and out["bars"] == 5
