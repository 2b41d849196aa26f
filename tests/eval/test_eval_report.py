"""``affetto eval --quick`` on a tiny model exported here, with seeds from a MIDI folder made here."""

import json

import pytest
from click.testing import CliRunner

from affetto.models.cli import eval_command

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_report(tiny_model, midi_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    result = CliRunner().invoke(eval_command, [
        "--model", str(tiny_model), "--data", str(midi_folder), "--seeds", str(midi_folder), "--quick",
        "--guidance-scales", "1,3", "--temperatures", "0.9", "--candidates", "1,2", "--seed", "3", "-o", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out, result.output


def test_quick_run_writes_every_file(quick_report):
    out, output = quick_report
    for name in ("report.json", "report.md", "confusion.png", "metrics.png"):
        assert (out / name).stat().st_size > 0, name
    for name in ("confusion.png", "metrics.png"):
        assert (out / name).read_bytes()[:8] == PNG
    assert "4-quadrant accuracy: feature judge" in output and "learned judge" in output


def test_report_json_holds_every_section(quick_report):
    out, _ = quick_report
    report = json.loads((out / "report.json").read_text())  # strict JSON: NaN was written as null
    main = report["main"]
    assert main["phrases"] == 8 and main["bars"] == 32  # --quick: 8 bars per quadrant, phrases of 4
    for judge in ("feature", "learned"):
        summary = main[judge]
        assert sum(map(sum, summary["confusion"])) == 8
        assert set(summary["per_quadrant"]) == {"Q1", "Q2", "Q3", "Q4"}
        low, high = summary["accuracy"]["ci95"]
        assert 0 <= low <= summary["accuracy"]["value"] <= high <= 1
        assert report["ceiling"][judge]["accuracy"]["n"] == report["ceiling"]["phrases"] > 0
    assert report["chance"]["accuracy"] == 0.25
    assert [g["guidance"] for g in report["guidance"]] == [1.0, 3.0]
    assert [t["temperature"] for t in report["temperature"]] == [0.9]
    assert [c["candidates"] for c in report["candidates"]] == [1, 2]
    assert all(c["phrases"] == 4 for c in report["candidates"])  # --quick: 4 sweep bars per quadrant
    assert len(report["blends"]) == 4 and all(b["phrases"] == 1 for b in report["blends"])
    metrics = report["metrics"]["per_quadrant"]["Q3"]
    assert set(metrics) >= {"generated", "corpus", "gap_percent"}
    assert "notes_per_bar" in metrics["gap_percent"]
    # the plain-emotion seeds (a scale over its tonic) have clear keys: every main-setting phrase counts
    assert report["coherence"]["clear_seeds"] == report["main"]["phrases"] > 0
    assert report["nll"]["notes"] > 0 and report["nll"]["bits_per_note"] > 0
    assert report["learned_judge"]["training"]["steps"] == 30
    assert report["timing"]["generated_bars"] >= 32
    listening = report["listening"]  # the independent ears, at 1 candidate and at the default
    assert set(listening["unseeded"]) == {"1", "default"}
    for cells in listening["unseeded"].values():
        assert {m: c["phrases"] for m, c in cells.items()} == {"4/4": 4, "3/4": 4, "6/8": 4}
    assert listening["seeded"]["1"]["phrases"] == 8 * 4  # eight outside seeds, four quadrants


def test_report_md_names_the_judge_of_each_claim(quick_report):
    out, _ = quick_report
    text = (out / "report.md").read_text()
    for heading in ("## Independent ears", "## Emotion control", "## Guidance, temperature and candidates",
                    "## Blended capsules (feature judge)", "## Music metrics", "## Continuation coherence",
                    "## Held-out likelihood"):
        assert heading in text
    assert "| feature judge | 4 quadrants |" in text and "| learned judge | 4 quadrants |" in text
    assert "Confusion matrix, feature judge" in text and "bits per note" in text


def test_seed_folder_alone_skips_what_needs_the_training_data(tiny_model, midi_folder, tmp_path):
    result = CliRunner().invoke(eval_command, [
        "--model", str(tiny_model), "--seeds", str(midi_folder), "--quick", "--guidance-scales", "1.5",
        "--temperatures", "1", "--no-listen", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = json.loads((tmp_path / "report.json").read_text())
    assert "skipped" in report["learned_judge"] and "skipped" in report["nll"]
    assert report["material"]["heldout_is_seed_folder"] and "learned" not in report["main"]
    assert "Learned judge: skipped" in (tmp_path / "report.md").read_text()
    assert "listening" not in report  # --no-listen


def test_held_out_seeds_need_the_models_data(tiny_model, tmp_path):
    result = CliRunner().invoke(eval_command, ["--model", str(tiny_model), "--quick", "-o", str(tmp_path)])
    assert result.exit_code != 0
    assert "nowhere" in result.output and "--seeds FOLDER" in result.output


def test_bad_lists_are_usage_errors(tiny_model, tmp_path):
    result = CliRunner().invoke(eval_command, ["--model", str(tiny_model), "--guidance-scales", "a,b"])
    assert result.exit_code == 2 and "--guidance-scales" in result.output
    result = CliRunner().invoke(eval_command, ["--model", str(tiny_model), "--quick", "--temperatures", "0",
                                               "-o", str(tmp_path)])
    assert result.exit_code == 1 and "temperatures must be > 0" in result.output
