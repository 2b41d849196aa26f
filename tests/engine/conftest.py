"""Tiny models built here, exported through the real exporter, run by real ONNX Runtime."""

from pathlib import Path

import pytest

pytest.importorskip("torch", reason="export needs the train extra")

from tiny_things import export, make_checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tiny_checkpoint) -> Path:
    return export(tiny_checkpoint, tmp_path_factory.mktemp("onnx") / "tiny.onnx")
