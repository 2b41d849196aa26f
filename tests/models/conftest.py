"""Fixtures for the PyTorch side: small MIDI data sets made here."""

from pathlib import Path

import pytest
from tiny_things import make_midi_folder


@pytest.fixture(scope="session")
def midi_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("midis")
    make_midi_folder(folder, 24)
    return folder
