"""A tiny music-text model built here, exported to its three real ONNX graphs, and MIDI phrases written here."""

from __future__ import annotations

from pathlib import Path

import pytest

from affetto.music.midifile import write_midi
from affetto.music.notes import Note, TimeSignature


def tiny_model(**extra):
    import torch

    from affetto.models.text.model import MusicTextModel, TextModelConfig
    from affetto.models.text.train import vocabulary

    torch.manual_seed(0)
    cfg = TextModelConfig(vocab_size=len(vocabulary()), d_model=16, n_head=2, n_layer=1, d_ff=32, latent=8,
                          max_text=48, dropout=0.0, **extra)
    return MusicTextModel(cfg).eval()


def exported(tmp_path_factory, model) -> Path:
    from affetto.export.text import export_model
    from affetto.models.text.train import vocabulary

    meta = {"vocabulary": list(vocabulary().words), "train": {"out": "tiny", "loss": {"gtp": 1.0}}, "step": 0}
    out = tmp_path_factory.mktemp("text") / "affetto-text.onnx"
    export_model(model, meta, out)
    return out


@pytest.fixture(scope="session")
def tiny_text(tmp_path_factory) -> tuple[object, Path]:
    """(the PyTorch model, the path of its exported music graph)."""
    pytest.importorskip("torch", reason="building the tiny model needs the train extra")
    model = tiny_model()
    return model, exported(tmp_path_factory, model)


@pytest.fixture(scope="session")
def tiny_text_fields(tmp_path_factory) -> tuple[object, Path]:
    """The same with attribute heads, the pitch-class profile and the wide pooling (the shipped layout)."""
    pytest.importorskip("torch", reason="building the tiny model needs the train extra")
    model = tiny_model(attributes=True, profile=True, summed=True)
    return model, exported(tmp_path_factory, model)


def scale_phrase(tonic: int, minor: bool, bars: int = 4, meter: TimeSignature = TimeSignature(4, 4)) -> list[Note]:
    """A phrase up and down the scale of a key, a note a beat, with its tonic triad at the end."""
    steps = (0, 2, 3, 5, 7, 8, 10) if minor else (0, 2, 4, 5, 7, 9, 11)
    line = [0, 1, 2, 3, 4, 3, 2, 1, 0, 2, 4, 2, 0]
    beats = int(bars * meter.beats_per_bar)
    notes = [Note(60 + tonic + steps[line[i % len(line)]], float(i), 1.0) for i in range(beats - 2)]
    triad = (0, steps[2], 7)
    notes += [Note(60 + tonic + s, float(beats - 2), 2.0) for s in triad]
    return notes


@pytest.fixture
def scale():
    """:func:`scale_phrase`, for tests."""
    return scale_phrase


@pytest.fixture
def write_phrase(tmp_path):
    def write(name: str, notes: list[Note], meter: TimeSignature = TimeSignature(4, 4), bpm: float = 90.0) -> Path:
        path = tmp_path / name
        write_midi(path, notes, meter=meter, bpm=bpm)
        return path

    return write
