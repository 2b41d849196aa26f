"""The shipped ensemble model harmonises a melody with ONNX Runtime alone, torch blocked."""

import subprocess
import sys

import mido
import pytest

from affetto.music.midifile import write_midi
from affetto.music.notes import Note, TimeSignature
from affetto.runtime.assets import default_ensemble_path

SCRIPT = """
import sys
sys.modules["torch"] = None  # any import of torch now fails
from affetto.cli import cli
cli(["harmonise", sys.argv[1], "-e", "happy", "-o", sys.argv[2]], standalone_mode=True)
"""


@pytest.mark.skipif(not default_ensemble_path().exists(), reason="no shipped ensemble model")
@pytest.mark.parametrize("meter", [TimeSignature(4, 4), TimeSignature(3, 4)])
def test_the_shipped_ensemble_harmonises_without_torch(tmp_path, meter):
    tune = tmp_path / "tune.mid"
    beats = int(meter.beats_per_bar) * 4
    write_midi(tune, [Note(p, float(i), 1.0) for i, p in zip(range(beats), [67, 69, 71, 72] * 4)], meter=meter)
    out = tmp_path / "out.mid"
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tune), str(out)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    tracks = mido.MidiFile(str(out)).tracks[1:]
    channels = [{m.channel for m in t if m.type == "note_on"} for t in tracks]
    assert [t.name for t in tracks] == ["melody", "alto", "tenor", "bass"]
    assert channels == [{0}, {1}, {2}, {3}]


def test_the_shipped_ensemble_is_heard_darker_for_sad_and_tense_under_outside_melodies():
    """Under the outside seeds' melodies, at one candidate (no judge), music21's key finders (which
    nothing in affetto consults) hear the sad and tense voices darker than the happy and calm ones."""
    from affetto.models.evaluation.ensemble_outside import harmonise_outside

    summary = harmonise_outside(candidates=1)["summary"]
    assert summary["seeds"] >= 6
    for estimator in ("aarden_essen", "temperley_kostka_payne"):
        assert summary[f"darker_{estimator}"] >= 0.8, summary
        minor = summary[f"voices_minor_{estimator}"]
        assert minor["sad"] > minor["happy"] and minor["tense"] > minor["calm"], summary
    assert summary["happy_sad_notes_differ"] > 0.5
