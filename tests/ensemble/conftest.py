"""Tiny ensemble models built here: a generator with random weights and its real export."""

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the ensemble's model side needs the train extra")


def tiny_config():
    from affetto.models.musegan.model import GanConfig

    return GanConfig(z_dim=8, cond_dim=8, enc_dim=8, enc_maps=2, trunk=32, head_maps=2, critic=4)


@pytest.fixture(scope="session")
def tiny_generator():
    from affetto.models.musegan.model import Generator

    torch.manual_seed(0)
    gen = Generator(tiny_config()).eval()
    with torch.no_grad():  # louder than a fresh init, so that rolls have notes to compare
        gen.head_bias.fill_(0.0)
    return gen


@pytest.fixture(scope="session")
def tiny_onnx(tiny_generator, tmp_path_factory) -> Path:
    from affetto.export.musegan import export_generator

    out = tmp_path_factory.mktemp("ensemble") / "tiny-ensemble.onnx"
    export_generator(tiny_generator, {"train": {"out": "tiny", "cond_dropout": 0.2}, "step": 0}, out)
    return out
