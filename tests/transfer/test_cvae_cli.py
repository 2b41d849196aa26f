"""``affetto train-transfer --data`` on folders of tiny MIDI files the tests write (EMOPIA and MAESTRO layouts),
and ``export-transfer`` on what it trained."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from tiny_things import make_midi_folder

from affetto.cli import cli

pytest.importorskip("torch", reason="training needs the train extra")
pytestmark = [pytest.mark.torch, pytest.mark.slow]

TINY = ["--steps", "3", "--eval-every", "2", "--batch", "4", "--width", "32", "--z-dim", "4", "--no-progress"]


def emopia_folder(root):
    """Clips named as EMOPIA names them, each file's quadrant in its name (make_midi_folder: file i in Q(i % 4))."""
    paths = make_midi_folder(root / "made", 8, bars=4)
    (root / "emopia" / "midis").mkdir(parents=True)
    for i, path in enumerate(paths):
        path.rename(root / "emopia" / "midis" / f"Q{i % 4 + 1}_song{i // 2}-x_{i % 2}.mid")
    return root / "emopia"


def maestro_folder(root, missing: bool = False):
    paths = make_midi_folder(root / "made", 6, bars=4)
    folder = root / "maestro"
    rows = ["canonical_composer,canonical_title,split,year,midi_filename,audio_filename,duration"]
    for i, path in enumerate(paths):
        year = 2017 + i % 2
        (folder / str(year)).mkdir(parents=True, exist_ok=True)
        name = f"{year}/perf{i}.midi"
        path.rename(folder / name)
        rows.append(f"Composer {i % 3},Piece {i % 3},train,{year},{name},{name[:-5]}.wav,10.0")
    if missing:
        rows.append("Nobody,Lost,train,2018,2018/lost.midi,2018/lost.wav,1.0")
    (folder / "maestro-v3.0.0.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize("layout", ["emopia", "maestro"])
def test_train_transfer_on_a_folder_then_export(tmp_path, layout):
    folder = emopia_folder(tmp_path) if layout == "emopia" else maestro_folder(tmp_path)
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train-transfer", "--data", str(folder), "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    assert "step 3" in result.output
    meta = json.loads((out / "last.json").read_text())
    assert meta["family"] == "transfer" and meta["step"] == 3
    assert meta["data_summary"]["source"].startswith(layout)
    assert meta["data_summary"]["pieces"] == (8 if layout == "emopia" else 6)
    if layout == "emopia":
        assert meta["data_summary"]["labelled"] == 8
    assert (out / "last.safetensors").exists() and (out / "last.optim.safetensors").exists()
    assert "active_units" in meta["history"][-1]

    resumed = CliRunner().invoke(cli, ["train-transfer", "--data", str(folder), "--out", str(out), "--resume",
                                       *[a if a != "3" else "5" for a in TINY]])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((out / "last.json").read_text())["step"] == 5

    onnx_path = tmp_path / "t.onnx"
    exported = CliRunner().invoke(cli, ["export-transfer", str(out / "last"), "--out", str(onnx_path)])
    assert exported.exit_code == 0, exported.output
    assert "parity" in exported.output and "pass" in exported.output
    assert onnx_path.exists() and (tmp_path / "t.safetensors").exists()
    assert "optimizer_groups" not in json.loads((tmp_path / "t.json").read_text())
    from affetto.manifest import read_manifest
    from affetto.transfer.model import CvaeTransfer

    decode = read_manifest(onnx_path)["decode"]
    assert (decode["anchor"], decode["contrast"], decode["anchor_bias"]) == (1, 1.5, 5.0)  # anchored by default
    free = CliRunner().invoke(cli, ["export-transfer", str(out / "last"), "--out", str(onnx_path), "--anchor", "0"])
    assert free.exit_code == 0, free.output
    assert CvaeTransfer(onnx_path).settings.anchor == 0

    # re-exported in place (the shipped model's way): its weights and JSON stay as they were
    weights = (tmp_path / "t.safetensors").read_bytes()
    again = CliRunner().invoke(cli, ["export-transfer", str(tmp_path / "t"), "--out", str(onnx_path)])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "t.safetensors").read_bytes() == weights


def test_train_transfer_bad_input_errors(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(cli, ["train-transfer", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r"),
                                  *TINY])
    assert missing.exit_code != 0 and "no such folder" in missing.output
    (tmp_path / "empty").mkdir()
    empty = runner.invoke(cli, ["train-transfer", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "r"),
                                *TINY])
    assert empty.exit_code != 0 and "no .mid or .midi files" in empty.output
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "maestro-v3.0.0.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    wrong = runner.invoke(cli, ["train-transfer", "--data", str(bad), "--out", str(tmp_path / "r"), *TINY])
    assert wrong.exit_code != 0 and "midi_filename" in wrong.output
    lead = runner.invoke(cli, ["export-transfer", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.onnx")])
    assert lead.exit_code != 0 and "no checkpoint metadata" in lead.output
