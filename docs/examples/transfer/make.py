"""Transfer examples: two seeds from outside the corpus re-played as sad and as happy by ``affetto transfer``.

- ``nocturne``: F major, written here as a two-hand file (right hand on
  track 1 / channel 1, left hand on track 2 / channel 2) so the tracks are
  seen to be kept;
- ``lament``: A minor, one line in 6/8.

For each: ``<seed>-source``, ``<seed>-sad`` and ``<seed>-happy`` (the rule) and
``<seed>-sad-cvae``, ``<seed>-happy-cvae`` (the shipped CVAE, anchored) as MIDI, a
piano roll (the source in grey, then the transfer) and Ogg Vorbis rendered by
FluidSynth with FluidR3 (``bash docs/make_examples.sh`` installs them), and
the mode music21's Aarden-Essen key finder hears, printed for the README.
Run: ``.venv/bin/python docs/examples/transfer/make.py``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from affetto.cli_transfer import transfer_file
from affetto.models.evaluation.listening import independent_keys
from affetto.models.outside_seeds import outside_seeds
from affetto.music.multitrack import write_tracks
from affetto.music.notes import Note
from affetto.music.plot import piano_roll
from affetto.transfer.phrase import read_source

OUT = Path(__file__).resolve().parent
SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def render(midi: Path, ogg: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "out.wav"
        subprocess.run(["fluidsynth", "-ni", "-q", "-F", str(wav), "-r", "44100", "-g", "0.6", SOUNDFONT, str(midi)],
                       check=True)
        subprocess.run(["oggenc", "-Q", "-q", "2", "-o", str(ogg), str(wav)], check=True)


def heard(path: Path) -> str:
    keys = independent_keys(read_source(path).notes)
    return ", ".join(f"{name.split('_')[0]}: {NAMES[k[0]]} {k[1]}" for name, k in keys.items() if k)


def main() -> int:
    seeds = {s.name: s for s in outside_seeds()}
    noct = seeds["nocturne"]
    right = [Note(n.pitch, n.onset, n.duration, n.velocity, 0) for n in noct.notes if n.pitch >= 65]
    left = [Note(n.pitch, n.onset, n.duration, n.velocity, 1) for n in noct.notes if n.pitch < 65]
    write_tracks(OUT / "nocturne-source.mid", {"right hand": right, "left hand": left}, meter=noct.meter,
                 bpm=noct.tempo)
    lament = seeds["lament"]
    write_tracks(OUT / "lament-source.mid", {"melody": list(lament.notes)}, meter=lament.meter, bpm=lament.tempo)
    for seed in ("nocturne", "lament"):
        source = OUT / f"{seed}-source.mid"
        src = read_source(source)
        piano_roll(OUT / f"{seed}-source.png", src.notes, meter=src.meter, title=f"{seed}: the source")
        render(source, OUT / f"{seed}-source.ogg")
        print(f"{seed}-source: {heard(source)}")
        for method, suffix in (("rule", ""), ("cvae", "-cvae")):
            for mood in ("sad", "happy"):
                name = f"{seed}-{mood}{suffix}"
                out = OUT / f"{name}.mid"
                for line in transfer_file(source=str(source), emotion=mood, out=str(out), method=method,
                                          plot=str(OUT / f"{name}.png")):
                    print("  " + line)
                render(out, OUT / f"{name}.ogg")
                print(f"{name}: {heard(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
