"""Every folder of code ships: pyproject's package list names each package the source tree holds.

An editable install finds a folder missing from the list anyway, so tests on a
checkout pass; a musician's ``pip install .`` would lack it. This test reads
the list the way setuptools does (``packages`` mapped through ``package-dir``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def folder_of(package: str, package_dir: dict[str, str]) -> Path:
    """The folder setuptools takes ``package`` from: the longest mapped prefix, then the rest as folders."""
    parts = package.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in package_dir:
            return ROOT / package_dir[prefix] / Path(*parts[cut:])
    return ROOT / Path(*parts)


def test_every_package_folder_in_the_tree_is_listed_and_every_listed_one_exists():
    config = _setuptools()
    listed = set(config["packages"])
    mapping = config.get("package-dir", {})
    folders = {folder_of(p, mapping).resolve(): p for p in listed}
    for package, folder in ((p, folder_of(p, mapping)) for p in listed):
        assert (folder / "__init__.py").is_file(), f"{package} is listed but {folder} holds no __init__.py"
    roots = {folder_of(p, mapping) for p in ("affetto", "affetto.models", "affetto.export", "affetto.daemon",
                                             "affetto.bench")}
    missing = []
    for root in roots:
        for init in root.rglob("__init__.py"):
            if ".venv" in init.parts or "__pycache__" in init.parts:
                continue
            if init.parent.resolve() not in folders:
                missing.append(str(init.parent.relative_to(ROOT)))
    assert not missing, f"package folders missing from pyproject's packages: {sorted(missing)}"


@pytest.mark.parametrize("asset", sorted(p.name for p in (ROOT / "affetto" / "assets").glob("*.onnx")))
def test_every_shipped_model_describes_itself(asset):
    from click.testing import CliRunner

    from affetto.cli import cli

    result = CliRunner().invoke(cli, ["info", str(ROOT / "affetto" / "assets" / asset)])
    assert result.exit_code == 0, result.output
    assert "None" not in result.output, result.output
    assert "family" in result.output or "layers" in result.output, result.output
