"""One example per emotion: the nocturne seed (from outside the corpus) continued for 8 bars.

Run through docs/make_examples.sh, which installs the renderer. Writes
docs/examples/<quadrant>-<mood>.{mid,png,ogg} and docs/examples/README.md.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from affetto.emotion import Capsule, Quadrant
from affetto.midifile import read_midi, write_midi
from affetto.models.evaluation.listening import independent_keys
from affetto.models.outside_seeds import SEED_FOLDER
from affetto.music import Note
from affetto.plot import piano_roll
from affetto.runtime.engine import Engine, default_model_path

OUT = Path(__file__).with_name("examples")
SEED_BARS, BARS = 4, 8


def render(midi: Path, ogg: Path, soundfont: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "out.wav"
        subprocess.run(["fluidsynth", "-ni", "-q", "-F", str(wav), "-r", "44100", "-g", "0.6", soundfont, str(midi)],
                       check=True)
        subprocess.run(["oggenc", "-Q", "-q", "2", "-o", str(ogg), str(wav)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--seed-file", default=str(SEED_FOLDER / "nocturne.mid"))
    parser.add_argument("--soundfont", required=True)
    parser.add_argument("--rng", type=int, default=1)
    args = parser.parse_args()
    model = Path(args.model) if args.model else default_model_path()
    phrase = read_midi(args.seed_file)
    length = phrase.meter.beats_per_bar
    seed = [n for n in phrase.notes if n.onset < SEED_BARS * length]
    engine = Engine(model, meter=phrase.meter)
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for q in Quadrant:
        engine.prime(seed, bars=SEED_BARS)
        rng = np.random.default_rng([args.rng, int(q)])
        notes = list(seed)
        for b in range(BARS):
            offset = (SEED_BARS + b) * length
            notes += [Note(n.pitch, n.onset + offset, n.duration, n.velocity)
                      for n in engine.generate_bar(Capsule.of(q), rng=rng)]
        stem = OUT / f"{q.name}-{q.mood}"
        write_midi(stem.with_suffix(".mid"), notes, meter=phrase.meter, bpm=phrase.tempo)
        piano_roll(stem.with_suffix(".png"), notes, meter=phrase.meter, seed_beats=SEED_BARS * length,
                   title=f"{Path(args.seed_file).stem} seed (grey), then affetto in {q.name} {q.mood}")
        render(stem.with_suffix(".mid"), stem.with_suffix(".ogg"), args.soundfont)
        generated = [n for n in notes if n.onset >= SEED_BARS * length]
        keys = independent_keys(generated)
        names = ", ".join(f"{k.replace('_', '-')}: {v[1]}" for k, v in keys.items() if v)
        rows.append(f"| {q.name} {q.mood} | [{stem.name}.ogg]({stem.name}.ogg) | [{stem.name}.mid]({stem.name}.mid) "
                    f"| ![{q.mood}]({stem.name}.png) | {names} |")
        print(stem)
    (OUT / "README.md").write_text(
        f"# Examples\n\nThe `{Path(args.seed_file).name}` seed (4 bars, from outside the training corpus) "
        f"continued for {BARS} bars by `{model.name}` at the default settings, once per emotion; made by "
        "`bash docs/make_examples.sh` (FluidSynth, FluidR3 General MIDI piano). The last column is the mode "
        "music21's key finders hear in the generated bars.\n\n"
        "| emotion | listen | MIDI | piano roll | mode heard |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n",
        encoding="utf-8")


if __name__ == "__main__":
    main()
