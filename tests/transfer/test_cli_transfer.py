"""``affetto transfer IN.mid --emotion E -o OUT.mid``: real MIDI files written here, read back with mido."""

from __future__ import annotations

import mido
import numpy as np
import pytest
from click.testing import CliRunner

from affetto.cli import cli
from affetto.transfer.methods import shipped_model
from affetto.transfer.phrase import read_source
from affetto.transfer.rule import mode_margin

TPQ = 480


def _track(name, notes, channel=0, extra=()):
    """A track of (pitch, onset beats, duration beats, velocity) notes, with ``extra`` (tick, message)."""
    events = [(round(o * TPQ), 1, mido.Message("note_on", note=p, velocity=v, channel=channel))
              for p, o, d, v in notes]
    events += [(round((o + d) * TPQ), 0, mido.Message("note_off", note=p, velocity=0, channel=channel))
               for p, o, d, v in notes]
    events += [(tick, 0, msg) for tick, msg in extra]
    events.sort(key=lambda e: (e[0], e[1]))
    track = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
    now = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    return track


def two_hands(path, *, meter=(4, 4), bpm=96.0, drums=True, tail_beats=2.0):
    """C major, two hands on two tracks of channel 0, a drum track, a program change and a pedal;
    the file ends ``tail_beats`` after its last note."""
    right = [(64, 0, 1, 80), (65, 1, 1, 80), (67, 2, 1, 80), (69, 3, 1, 80),
             (67, 4, 1, 80), (64, 5, 1, 80), (62, 6, 1, 80), (60, 7, 1, 80)]
    left = [(48, 0, 2, 64), (52, 0, 2, 64), (55, 0, 2, 64), (53, 2, 2, 64), (57, 2, 2, 64),
            (43, 4, 2, 64), (47, 4, 2, 64), (48, 6, 2, 64), (52, 6, 2, 64)]
    mid = mido.MidiFile(type=1, ticks_per_beat=TPQ)
    conductor = mido.MidiTrack([
        mido.MetaMessage("time_signature", numerator=meter[0], denominator=meter[1], time=0),
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0),
        mido.MetaMessage("end_of_track", time=round((8 + tail_beats) * TPQ)),
    ])
    mid.tracks.append(conductor)
    mid.tracks.append(_track("right hand", right, extra=[(0, mido.Message("program_change", program=0))]))
    mid.tracks.append(_track("left hand", left, extra=[(0, mido.Message("control_change", control=64, value=127)),
                                                       (TPQ * 4, mido.Message("control_change", control=64, value=0))]))
    if drums:
        mid.tracks.append(_track("drums", [(36, b, 0.5, 100) for b in range(8)], channel=9))
    mid.save(str(path))
    return path


def notes_of(path):
    src = read_source(path)
    return src, {part: [(n.pitch, n.onset, n.duration, n.velocity) for n in notes] for part, notes in src.parts.items()}


def run(*args):
    result = CliRunner().invoke(cli, ["transfer", *map(str, args)])
    return result.exit_code, result.output


def margin(notes):
    return mode_margin(np.array([n.pitch for n in notes]), np.array([n.duration for n in notes]))


def test_a_two_hand_file_keeps_its_tracks_channels_length_meter_tempo_and_drums(tmp_path):
    src_path = two_hands(tmp_path / "in.mid", meter=(3, 4), bpm=72.0)
    code, out = run(src_path, "--emotion", "sad", "-o", tmp_path / "out.mid")
    assert code == 0, out
    a, b = mido.MidiFile(src_path), mido.MidiFile(tmp_path / "out.mid")
    assert [t.name for t in a.tracks] == [t.name for t in b.tracks]
    assert a.length == pytest.approx(b.length) and sum(m.time for m in b.tracks[0]) == 10 * TPQ
    kept = ("time_signature", "set_tempo", "program_change", "control_change")
    for ta, tb in zip(a.tracks, b.tracks):
        assert [m for m in ta if m.type in kept] == [m for m in tb if m.type in kept]
    assert [m for m in a.tracks[3]] == [m for m in b.tracks[3]]  # drums untouched
    src, before = notes_of(src_path)
    res, after = notes_of(tmp_path / "out.mid")
    assert set(before) == set(after) == {(1, 0), (2, 0)}  # right hand on track 1, left hand on track 2
    assert max(p for p, *_ in after[(2, 0)]) < min(p for p, *_ in after[(1, 0)])
    assert res.meter == src.meter and res.tempo == pytest.approx(72.0)
    assert margin(src.notes) > 0 > margin(res.notes)  # heard minor now
    assert "transfer method:" in out and "2 part(s)" in out and "drums" in out


def test_strength_zero_writes_the_source_notes_and_the_seed_value_repeats(tmp_path):
    src_path = two_hands(tmp_path / "in.mid")
    assert run(src_path, "-e", "happy", "--strength", "0", "-o", tmp_path / "zero.mid")[0] == 0
    assert notes_of(tmp_path / "zero.mid")[1] == notes_of(src_path)[1]
    for name in ("a.mid", "b.mid"):
        assert run(src_path, "-e", "tense", "--seed-value", "7", "-o", tmp_path / name)[0] == 0
    assert (tmp_path / "a.mid").read_bytes() == (tmp_path / "b.mid").read_bytes()


@pytest.mark.parametrize("emotion, minor", [("Q3", True), ("sad", True), ("melancholic, slow", True),
                                            ("10", True), ("knob:85", False), ("-0.6,-0.5", True),
                                            ("Q1", False)])
def test_every_way_of_saying_an_emotion(tmp_path, emotion, minor):
    src_path = two_hands(tmp_path / "in.mid", drums=False)
    code, out = run(src_path, "-e", emotion, "-o", tmp_path / "out.mid")
    assert code == 0, out
    assert (margin(read_source(tmp_path / "out.mid").notes) < 0) == minor


def test_the_method_is_said_and_chosen(tmp_path):
    src_path = two_hands(tmp_path / "in.mid")
    code, out = run(src_path, "-e", "sad", "--method", "rule", "-o", tmp_path / "out.mid")
    assert code == 0 and out.startswith("transfer method: rule")
    code, out = run(src_path, "-e", "sad", "-o", tmp_path / "auto.mid")
    assert code == 0 and out.startswith("transfer method: rule")  # auto: the rule, which keeps more
    code, out = run(src_path, "-e", "sad", "--method", "cvae", "-o", tmp_path / "cvae.mid")
    if shipped_model() is None:
        assert code != 0 and "needs a transfer model" in out and not (tmp_path / "cvae.mid").exists()
    else:
        assert code == 0 and out.startswith("transfer method: cvae") and (tmp_path / "cvae.mid").exists()


def test_the_plot_is_drawn(tmp_path):
    pytest.importorskip("matplotlib")
    src_path = two_hands(tmp_path / "in.mid")
    code, out = run(src_path, "-e", "sad", "-o", tmp_path / "out.mid", "--plot", tmp_path / "roll.png")
    assert code == 0, out
    assert (tmp_path / "roll.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _empty(path):
    mid = mido.MidiFile(type=1, ticks_per_beat=TPQ)
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000, time=0)]))
    mid.save(str(path))


def _drums_only(path):
    mid = mido.MidiFile(type=1, ticks_per_beat=TPQ)
    mid.tracks.append(_track("drums", [(36, b, 0.5, 100) for b in range(4)], channel=9))
    mid.save(str(path))


@pytest.mark.parametrize("make, said", [
    (_empty, "no notes"),
    (_drums_only, "only drums"),
    (lambda p: two_hands(p, meter=(7, 8)), "meter 7/8 is not in the vocabulary"),
    (lambda p: p.write_bytes(b"not a midi file at all"), "not a readable MIDI file"),
    (None, "no such file"),
])
def test_bad_input_gets_one_clear_line_and_a_non_zero_exit(tmp_path, make, said):
    path = tmp_path / "bad.mid"
    if make is not None:
        make(path)
    code, out = run(path, "-e", "sad", "-o", tmp_path / "out.mid")
    assert code != 0
    assert out.strip().count("\n") == 0 and said in out and out.startswith("Error: ")
    assert not (tmp_path / "out.mid").exists()


def test_bad_strength_and_emotion_are_refused(tmp_path):
    src_path = two_hands(tmp_path / "in.mid")
    assert run(src_path, "-e", "sad", "--strength", "2", "-o", tmp_path / "o.mid")[0] != 0
    code, out = run(src_path, "-e", "glorbish", "-o", tmp_path / "o.mid")
    assert code != 0 and "unknown mood word" in out
