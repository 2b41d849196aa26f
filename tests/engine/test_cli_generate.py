"""The front door: generate, export and info through click, on real files."""

import mido
import pytest
from click.testing import CliRunner

from affetto.cli import cli
from affetto.music.midifile import read_midi, write_midi
from affetto.music.notes import Note, TimeSignature

pytestmark = pytest.mark.torch


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_generate_writes_a_midi_file_a_daw_can_open(tiny_model, tmp_path):
    out = tmp_path / "sad.mid"
    result = invoke("generate", "--emotion", "sad", "--bars", 4, "--bpm", 90, "--model", tiny_model, "-o", out)
    assert result.exit_code == 0, result.output
    assert "4 bars of 4/4 at 90 BPM" in result.output
    mid = mido.MidiFile(out)
    assert mid.type == 1 and len(mid.tracks) == 2
    tempos = [m.tempo for m in mid.tracks[0] if m.type == "set_tempo"]
    assert tempos == [mido.bpm2tempo(90)]
    phrase = read_midi(out, require_notes=False)
    assert all(n.onset < 16 for n in phrase.notes)


def test_generate_is_deterministic_and_continues_a_seed(tiny_model, tmp_path):
    seed = tmp_path / "seed.mid"
    write_midi(seed, [Note(57 + i % 7, i * 0.5, 0.5, 90) for i in range(12)], meter=TimeSignature(3, 4), bpm=80)
    runs = []
    for name in ("a.mid", "b.mid"):
        out = tmp_path / name
        result = invoke("generate", "-e", "0.7,-0.6", "--seed", seed, "--bars", 3, "--seed-value", 11,
                        "--model", tiny_model, "-o", out, "--with-seed")
        assert result.exit_code == 0, result.output
        runs.append(read_midi(out, require_notes=False))
    assert runs[0].notes == runs[1].notes
    assert runs[0].meter == TimeSignature(3, 4) and runs[0].tempo == pytest.approx(80)
    assert runs[0].notes[:12] == read_midi(seed).notes  # the seed comes first, unchanged


def test_generate_plot(tiny_model, tmp_path):
    pytest.importorskip("matplotlib")
    out, png = tmp_path / "x.mid", tmp_path / "x.png"
    result = invoke("generate", "-e", "Q1", "--bars", 2, "--model", tiny_model, "-o", out, "--plot", png)
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (["-e", "joyfull"], "unknown mood word 'joyfull'; did you mean joyful"),
        (["-e", "2,0"], "valence must be a number in [-1, 1]"),
        (["-e", "sad", "--bars", "0"], "bars must be >= 1"),
        (["-e", "sad", "--temperature", "0"], "temperature must be in range 0.01..5.0"),
        (["-e", "sad", "--candidates", "0"], "candidates must be in range 1..16"),
        (["-e", "sad", "--model", "nowhere.onnx"], "nowhere.onnx: no such model file"),
    ],
)
def test_generate_bad_input(tmp_path, tiny_model, args, message):
    if "--model" not in args:
        args = [*args, "--model", str(tiny_model)]
    result = CliRunner().invoke(cli, ["generate", *args, "-o", str(tmp_path / "o.mid")])
    assert result.exit_code != 0
    assert message in result.output


def test_generate_with_an_empty_seed_warns_and_still_works(tiny_model, tmp_path, caplog):
    empty = tmp_path / "empty.mid"
    write_midi(empty, [])
    result = invoke("generate", "-e", "calm", "--seed", empty, "--bars", 2, "--model", tiny_model,
                    "-o", tmp_path / "o.mid")
    assert result.exit_code == 0, result.output
    assert "has no notes" in caplog.text


def test_export_and_info_commands(tiny_checkpoint, tmp_path):
    out = tmp_path / "cli.onnx"
    result = invoke("export", tiny_checkpoint, "-o", out)
    assert result.exit_code == 0, result.output
    assert "parity vs PyTorch" in result.output and "pass" in result.output
    result = invoke("info", out)
    assert result.exit_code == 0 and "2 layers, width 32" in result.output and "sha256:" in result.output
    result = CliRunner().invoke(cli, ["info", str(tmp_path / "none.onnx")])
    assert result.exit_code != 0 and "no such model file" in result.output


def test_info_reports_the_int8_caches_agreement_where_the_file_has_one(tiny_model, tiny_kv8_model):
    from affetto.manifest import read_manifest

    kv = read_manifest(tiny_kv8_model)["kv_cache"]
    result = invoke("info", tiny_kv8_model)
    assert result.exit_code == 0, result.output
    assert "cache in int8" in result.output
    assert f"int8 KV cache against fp32, decoding {kv['tokens']} rows x tokens: top-1 agreement " \
           f"{100 * kv['top1_agreement']:.2f}%" in result.output
    result = invoke("info", tiny_model)
    assert result.exit_code == 0 and "KV cache against fp32" not in result.output


def test_the_shipped_model_generates_without_torch_or_network(tmp_path):
    """The package's own model: a fresh process that cannot import torch still generates."""
    import subprocess
    import sys

    from affetto.manifest import read_manifest
    from affetto.runtime.engine import default_model_path

    manifest = read_manifest(default_model_path())  # checks the content hash too
    assert manifest["conditioning"]["guidance_ready"]
    out = tmp_path / "sad.mid"
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any import of torch now fails
        "from affetto.cli import main; sys.argv = ['affetto', 'generate', '--emotion', 'sad', '--bars', '4',"
        f" '-o', {str(out)!r}]; main()"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    notes = read_midi(out).notes
    assert notes and all(0 <= n.onset < 16 for n in notes)


def test_the_daemon_uses_the_shipped_model_when_none_is_given():
    import numpy as np

    from affetto.analysis.emotion import Capsule, Quadrant
    from affetto.daemon.config import DaemonConfig
    from affetto.daemon.service import default_factory
    from affetto.runtime.engine import default_model_path

    engine = default_factory(DaemonConfig(meter=TimeSignature(3, 4)))().model
    assert engine.model_path == default_model_path()
    assert engine.manifest["dtype"] == "int8" and engine.provider == "CPUExecutionProvider"  # int8 on the CPU
    engine.prime([])
    bar = engine.generate_bar(Capsule.of(Quadrant.Q4), rng=np.random.default_rng(0))
    assert all(0 <= n.onset < 3 for n in bar)


def test_the_daemon_runs_the_shipped_model_in_the_precision_asked():
    from affetto.daemon.config import DaemonConfig
    from affetto.daemon.service import default_factory
    from affetto.runtime.engine import default_model_path

    for precision in ("fp32", "int8"):
        engine = default_factory(DaemonConfig(precision=precision))().model
        assert engine.model_path == default_model_path(precision)
        assert engine.manifest["dtype"] == precision


def test_generate_takes_the_shipped_model_in_the_precision_asked(tmp_path, monkeypatch):
    import affetto.runtime.families as families
    from affetto.runtime.engine import default_model_path

    loaded = []
    load = families.load_model
    monkeypatch.setattr("affetto.runtime.load_model", lambda path=None, **kw: loaded.append(path) or load(path, **kw))
    result = invoke("generate", "-e", "calm", "--bars", 2, "--precision", "fp32", "-o", tmp_path / "calm.mid")
    assert result.exit_code == 0, result.output
    assert loaded == [str(default_model_path("fp32"))] and (tmp_path / "calm.mid").stat().st_size > 0
    refused = CliRunner().invoke(cli, ["generate", "-e", "calm", "--precision", "int8", "--model", "x.onnx",
                                       "-o", str(tmp_path / "x.mid")])
    assert refused.exit_code != 0 and "nothing to pick" in refused.output
