"""``affetto bench`` runs the engine benchmark shipped inside the package, not a file beside it."""

import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def test_the_benchmark_is_a_package_of_the_distribution():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert "affetto.bench" in setuptools["packages"]
    folder = ROOT / setuptools["package-dir"]["affetto.bench"]
    assert (folder / "__init__.py").is_file() and (folder / "bench_engine.py").is_file()


def test_the_bench_command_runs_the_module(tmp_path):
    # from another folder, so that nothing beside the package is found by accident
    out = subprocess.run([sys.executable, "-c", "from affetto.cli import main; main()", "bench", "--help"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert "usage: affetto bench" in out.stdout and "--checkpoint" in out.stdout


@pytest.mark.torch
def test_the_engine_benchmark_prints_the_ratios_of_its_bar_rows(tmp_path):
    from tiny_things import export, make_checkpoint

    from affetto.bench.bench_engine import run
    from affetto.runtime.window import WINDOW

    model = export(make_checkpoint(tmp_path, max_len=1024), tmp_path / "long.onnx")  # the step cells reach 1000
    lines: list[str] = []
    ratios = run(model, None, repeat=3, bars=24, echo=lines.append)["ratios"]
    assert "bar, slid / others, p99, 3 candidates" in ratios  # the engine's window slides within the run
    assert {f"bar, window {WINDOW} / whole context, 3 cand., p50", "bar, 3 candidates / 1, p50"} <= set(ratios)
    assert any(line.startswith("bar, slid / others") for line in lines)


@pytest.mark.torch
def test_a_model_beside_is_timed_with_the_others(tmp_path):
    """``--beside``: a guidance-distilled model (one row per candidate) runs in the step cells and the bar rows,
    and its ratios to the int8 model's are printed."""
    from tiny_things import export, make_checkpoint, make_distilled_checkpoint

    from affetto.bench.bench_engine import run

    model = export(make_checkpoint(tmp_path / "a", max_len=1024), tmp_path / "two-rows.onnx")
    beside = export(make_distilled_checkpoint(tmp_path / "b", max_len=1024), tmp_path / "one-row.onnx")
    lines: list[str] = []
    results = run(model, None, repeat=3, bars=5, echo=lines.append, beside=beside)
    assert results["beside"]["rows"] == 1
    expected = {"bar, beside / int8, 1 cand., p50", "bar, beside / int8, 3 cand., p99",
                "bar, beside, 3 candidates / 1, p50", "step, beside / int8, 3 cand., ctx 1000",
                "step, beside, context 1000 / 100, 1 candidates", "partial bar / whole bar, beside (3 candidates), p50"}
    assert expected <= set(results["ratios"])
    assert any(line.startswith("bar at 120 BPM, beside, 3 candidates") for line in lines)
