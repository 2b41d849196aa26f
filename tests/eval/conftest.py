"""Fixtures for the evaluation: a tiny model exported for real, small MIDI folders, a private cache."""

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="evaluation needs the train extra")

from tiny_things import export, make_checkpoint, make_midi_folder  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """The machine is shared (a training run may be going): one torch thread, as ``affetto eval`` uses."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Keep learned-judge weights out of the user's ~/.cache/affetto (session-wide, so that
    module-scoped fixtures, which run before function-scoped ones, see it too)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AFFETTO_CACHE", str(tmp_path_factory.getbasetemp() / "affetto-cache"))
        yield


@pytest.fixture(scope="session")
def midi_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("eval-midis")
    make_midi_folder(folder, 24)
    return folder


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("eval-ckpt"), segment_bars=8)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tiny_checkpoint) -> Path:
    return export(tiny_checkpoint, tmp_path_factory.mktemp("eval-onnx") / "tiny.onnx")
