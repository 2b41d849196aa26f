"""Fixtures for the PyTorch side: tiny models and small MIDI data sets made here."""

from pathlib import Path

import numpy as np
import pytest

from affetto.midifile import write_midi
from affetto.music import Note, TimeSignature


def make_midi_folder(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` short MIDI files: random diatonic melodies with a bass, in 4/4 or 3/4."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        meter = TimeSignature(4, 4) if i % 3 else TimeSignature(3, 4)
        scale = [0, 2, 4, 5, 7, 9, 11] if i % 2 else [0, 2, 3, 5, 7, 8, 10]
        tonic = 57 + int(rng.integers(0, 8))
        step = [0.25, 0.5, 1.0][i % 3]
        notes, t = [], 0.0
        while t < 8 * meter.beats_per_bar:
            pitch = tonic + scale[int(rng.integers(0, 7))] + 12 * int(rng.integers(0, 2))
            notes.append(Note(pitch, t, step, int(rng.integers(40, 120))))
            if t % meter.beats_per_bar == 0:
                notes.append(Note(tonic - 12, t, meter.beats_per_bar, 70))
            t += step
        path = folder / f"piece{i:03d}.mid"
        write_midi(path, notes, meter=meter, bpm=100)
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def midi_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("midis")
    make_midi_folder(folder, 24)
    return folder
