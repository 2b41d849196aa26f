"""Export parity on a real ONNX Runtime session; the torch-free harmoniser and its commands."""

import mido
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.cli import cli
from affetto.ensemble.engine import Ensemble, binarise, melody_roll, roll_notes
from affetto.errors import ConfigError, ModelFileError
from affetto.export.musegan import ATOL, INPUTS, _Graph, example_inputs
from affetto.manifest import read_manifest
from affetto.music.midifile import write_midi
from affetto.music.notes import Note, TimeSignature

pytestmark = pytest.mark.torch

TUNE = [72, 74, 76, 77, 79, 77, 76, 74, 72, 71, 72, 74, 76, 74, 72, 72]


def test_export_manifest_and_parity_on_a_real_session(tiny_onnx, tiny_generator):
    m = read_manifest(tiny_onnx)
    assert m["family"] == "ensemble"
    assert m["inputs"] == list(INPUTS) and m["roll"]["pitches"] == 64
    assert m["parity"]["max_abs_diff"] <= ATOL
    ens = Ensemble(tiny_onnx)
    x = example_inputs(tiny_generator, batch=3, seed=7)
    with torch.no_grad():
        expected = _Graph(tiny_generator)(*(x[name] for name in INPUTS)).numpy()
    got = ens.run(*(x[name].numpy() for name in INPUTS[:4]), {k: x[k].numpy() for k in INPUTS[4:]})
    assert got.shape == (3, 4, 4, 16, 64)
    assert np.abs(got - expected).max() <= ATOL


def test_a_lead_model_file_is_not_an_ensemble(tmp_path):
    from tiny_things import export, make_checkpoint

    lead = export(make_checkpoint(tmp_path), tmp_path / "lead.onnx")
    with pytest.raises(ModelFileError, match="not an ensemble model"):
        Ensemble(lead)


def test_binarise_keeps_one_pitch_per_voice_and_step():
    probs = np.zeros((2, 16, 64))
    probs[0, 0, [10, 11, 12]] = [0.2, 0.3, 0.25]  # unsure, but the voice sounds
    probs[0, 1, 20] = 0.1  # too quiet
    out = binarise(probs, 0.5)
    assert out.sum(-1).max() == 1
    assert out[0, 0, 11] and not out[0, 1].any()


def test_melody_roll_and_back():
    meter = TimeSignature(4, 4)
    tune = [Note(60, 0, 1), Note(60, 1, 1), Note(64, 2, 2), Note(67, 4.5, 0.5)]
    roll = melody_roll(tune, meter, 2)
    assert roll.shape == (2, 16, 64)
    back = roll_notes(roll > 0.5, meter, channel=0)
    assert [(n.pitch, n.onset) for n in back] == [(60, 0), (60, 1), (64, 2), (67, 4.5)]
    with pytest.raises(ConfigError, match="bars of 3 or 4"):
        melody_roll(tune, TimeSignature(5, 4), 2)


@pytest.mark.parametrize("meter", [TimeSignature(4, 4), TimeSignature(3, 4)])
def test_harmonise_writes_three_voices_in_the_melody_meter(tiny_onnx, meter):
    tune = [Note(p, float(i), 1.0, 90) for i, p in enumerate(TUNE[: 4 * int(meter.beats_per_bar)])]
    voices = Ensemble(tiny_onnx).harmonise(tune, meter, Capsule.of(Quadrant.Q3), seed=3)
    assert voices and {n.channel for n in voices} <= {1, 2, 3}
    length = 4 * meter.beats_per_bar
    assert max(n.end for n in voices) <= length + 1e-9
    for n in voices:  # nothing sounds in a 3/4 bar's missing fourth beat
        assert (n.onset % meter.beats_per_bar) < meter.beats_per_bar
    again = Ensemble(tiny_onnx).harmonise(tune, meter, Capsule.of(Quadrant.Q3), seed=3)
    assert again == voices


def note_tracks(path):
    mid = mido.MidiFile(str(path))
    out = []
    for track in mid.tracks[1:]:
        ons = [m for m in track if m.type == "note_on" and m.velocity > 0]
        out.append((track.name, sorted({m.channel for m in ons}), [m.note for m in ons]))
    return mid, out


def test_affetto_harmonise_on_a_small_midi_file(tiny_onnx, tmp_path):
    melody = tmp_path / "tune.mid"
    write_midi(melody, [Note(p, float(i), 1.0) for i, p in enumerate(TUNE[:12])], meter=TimeSignature(3, 4), bpm=84)
    out = tmp_path / "voices.mid"
    result = CliRunner().invoke(cli, ["harmonise", str(melody), "--emotion", "sad", "-o", str(out),
                                      "--model", str(tiny_onnx)])
    assert result.exit_code == 0, result.output
    mid, tracks = note_tracks(out)
    assert [t[0] for t in tracks] == ["melody", "alto", "tenor", "bass"]
    assert tracks[0][1:] == ([0], TUNE[:12])  # the melody as played, on channel 1
    for channel, (_, channels, notes) in enumerate(tracks[1:], start=1):
        assert channels == [channel] and notes
    meta = {m.type: m for m in mid.tracks[0]}
    assert (meta["time_signature"].numerator, meta["time_signature"].denominator) == (3, 4)
    assert round(mido.tempo2bpm(meta["set_tempo"].tempo)) == 84


@pytest.mark.parametrize("command", [["generate-ensemble"], ["generate", "--ensemble"]])
def test_affetto_generate_ensemble(tiny_onnx, tmp_path, command):
    out = tmp_path / "four.mid"
    result = CliRunner().invoke(cli, [*command, "-e", "happy", "--bars", "6", "-o", str(out),
                                      "--model", str(tiny_onnx)])
    assert result.exit_code == 0, result.output
    _, tracks = note_tracks(out)
    assert [t[0] for t in tracks] == ["soprano", "alto", "tenor", "bass"]
    assert [t[1] for t in tracks if t[2]] == [[c] for c, t in enumerate(tracks) if t[2]]


@pytest.mark.parametrize(("args", "message"), [
    (["harmonise", "missing.mid", "-o", "x.mid"], "missing.mid: no such file"),
    (["harmonise", "{tune}", "-e", "ecstatic", "-o", "x.mid"], "ecstatic"),
    (["harmonise", "{five}", "-o", "x.mid"], "bars of 3 or 4"),
    (["harmonise", "{tune}", "-o", "x.mid", "--model", "{tune}"], "not an ONNX model"),
    (["generate", "--ensemble", "-e", "sad", "--seed", "{tune}", "-o", "x.mid"], "--seed: only for the lead"),
    (["generate", "--ensemble", "-e", "sad", "--meter", "5/4", "-o", "x.mid"], "bars of 3 or 4"),
])
def test_bad_input_is_one_clear_line(tiny_onnx, tmp_path, args, message):
    tune, five = tmp_path / "tune.mid", tmp_path / "five.mid"
    write_midi(tune, [Note(60, 0, 1)])
    write_midi(five, [Note(60, 0, 1)], meter=TimeSignature(5, 4))
    args = [a.format(tune=tune, five=five) for a in args]
    if "--model" not in args:
        args += ["--model", str(tiny_onnx)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], result.output
