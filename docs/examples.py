"""One example per emotion: the nocturne seed (from outside the corpus) continued for 8 bars, and
8 bars with no seed at all; a knob sweep (sad -> happy -> tense -> calm over 16 bars after an outside
seed); and two melodies from outside the corpus looped and harmonised live as happy and as sad.

Run through docs/make_examples.sh, which installs the renderer. Writes
docs/examples/<quadrant>-<mood>.{mid,png,ogg}, docs/examples/harmonise-<seed>-<mood>.{mid,png,ogg}
and docs/examples/README.md.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.models.evaluation.listening import independent_keys
from affetto.models.outside_seeds import SEED_FOLDER
from affetto.music.midifile import read_midi, write_midi
from affetto.music.notes import Note
from affetto.music.plot import piano_roll
from affetto.runtime.engine import Engine, default_model_path

OUT = Path(__file__).with_name("examples")
SEED_BARS, BARS = 4, 8


def render(midi: Path, ogg: Path, soundfont: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "out.wav"
        subprocess.run(["fluidsynth", "-ni", "-q", "-F", str(wav), "-r", "44100", "-g", "0.6", soundfont, str(midi)],
                       check=True)
        subprocess.run(["oggenc", "-Q", "-q", "2", "-o", str(ogg), str(wav)], check=True)


SWEEP_SEED, SWEEP_BARS = "pop-pattern", 16
SWEEP = (("sad", 0), ("happy", 85), ("tense", 127), ("calm", 42))  # knob values, 4 bars each
SMOOTHING = 0.3  # the daemon's default emotion_smoothing


def knob_sweep(model: Path, soundfont: str, rng_seed: int) -> str:
    """The daemon's knob (CC values, smoothed at each bar line as the daemon does) over 16 bars after a seed."""
    from affetto.analysis.emotion import knob_capsule

    phrase = read_midi(SEED_FOLDER / f"{SWEEP_SEED}.mid")
    length = phrase.meter.beats_per_bar
    seed = [n for n in phrase.notes if n.onset < SEED_BARS * length]
    engine = Engine(model, meter=phrase.meter)
    engine.prime(seed, bars=SEED_BARS)
    rng = np.random.default_rng(rng_seed)
    notes, capsule = list(seed), knob_capsule(SWEEP[0][1])
    per = SWEEP_BARS // len(SWEEP)
    for b in range(SWEEP_BARS):
        target = knob_capsule(SWEEP[b // per][1]).weights
        capsule = Capsule(tuple(SMOOTHING * o + (1 - SMOOTHING) * t for o, t in zip(capsule.weights, target)))
        offset = (SEED_BARS + b) * length
        notes += [Note(n.pitch, n.onset + offset, n.duration, n.velocity)
                  for n in engine.generate_bar(capsule, rng=rng)]
    stem = OUT / "knob-sweep"
    write_midi(stem.with_suffix(".mid"), notes, meter=phrase.meter, bpm=phrase.tempo)
    piano_roll(stem.with_suffix(".png"), notes, meter=phrase.meter, seed_beats=SEED_BARS * length,
               title=f"{SWEEP_SEED} seed (grey), then the knob: " + " -> ".join(m for m, _ in SWEEP)
               + f", {per} bars each")
    render(stem.with_suffix(".mid"), stem.with_suffix(".ogg"), soundfont)
    print(stem)
    return (f"\n## A knob sweep\n\nThe `{SWEEP_SEED}` seed (4 bars, grey), then {SWEEP_BARS} bars with the knob at "
            + ", ".join(f"{m} (CC {v})" for m, v in SWEEP) + f", {per} bars each, smoothed at each bar line as the "
            "daemon does (`emotion_smoothing` 0.3): [knob-sweep.ogg](knob-sweep.ogg), "
            "[knob-sweep.mid](knob-sweep.mid)\n\n![knob sweep](knob-sweep.png)\n")


HARMONISE_SEEDS = ("lament", "lullaby")  # melodies (one note at a time) among the outside seeds
LOOP_BARS, PASSES = 4, 2


def ensemble_candidates(ensemble: str | None) -> int:
    from affetto.ensemble.engine import Ensemble

    return Ensemble(ensemble).candidates


def harmonise_examples(ensemble: str | None, soundfont: str) -> list[str]:
    """The first 4 bars of each melody looped twice, with the voices harmonise mode plays under them
    (the daemon's own LoopHarmoniser, bar by bar), as happy and as sad; rows of the README's table."""
    from affetto.ensemble.accompany import LoopHarmoniser
    from affetto.ensemble.engine import load_voices
    from affetto.music.multitrack import write_tracks

    rows = []
    for name in HARMONISE_SEEDS:
        phrase = read_midi(SEED_FOLDER / f"{name}.mid")
        length = phrase.meter.beats_per_bar
        loop = tuple(Note(n.pitch, n.onset, n.duration, n.velocity) for n in phrase.notes
                     if n.onset < LOOP_BARS * length)
        for q in (Quadrant.Q1, Quadrant.Q3):
            harmoniser = LoopHarmoniser(load_voices(ensemble, phrase.meter))
            melody, voices = [], []
            for bar in range(LOOP_BARS * PASSES):
                base = bar * length
                first = (bar % LOOP_BARS) * length
                melody += [Note(n.pitch, n.onset - first + base, n.duration, n.velocity) for n in loop
                           if first <= n.onset < first + length]
                voices += [Note(n.pitch, n.onset + base, n.duration, n.velocity, n.channel)
                           for n in harmoniser.harmonise_bar(loop, LOOP_BARS, bar, Capsule.of(q))]
            stem = OUT / f"harmonise-{name}-{q.mood}"
            write_tracks(stem.with_suffix(".mid"), {
                "melody": melody, **{part: [n for n in voices if n.channel == ch]
                                     for ch, part in ((1, "alto"), (2, "tenor"), (3, "bass"))}},
                meter=phrase.meter, bpm=phrase.tempo)
            piano_roll(stem.with_suffix(".png"), melody + voices, meter=phrase.meter,
                       title=f"{name} (4 bars, looped twice) with affetto's voices, {q.name} {q.mood}")
            render(stem.with_suffix(".mid"), stem.with_suffix(".ogg"), soundfont)
            keys = independent_keys(melody + voices)
            heard = ", ".join(f"{k.replace('_', '-')}: {v[1]}" for k, v in keys.items() if v)
            rows.append(f"| {name} | {q.name} {q.mood} | [{stem.name}.ogg]({stem.name}.ogg) | "
                        f"[{stem.name}.mid]({stem.name}.mid) | ![{name} {q.mood}]({stem.name}.png) | {heard} |")
            print(stem)
    return rows


def described(manifest: dict) -> str:
    """What a model file is, in brackets, where its manifest says it was distilled (else nothing)."""
    distilled = manifest.get("distillation")
    if not distilled:
        return ""
    return (f" ({manifest.get('dtype')}, the guidance-distilled student of {distilled.get('teacher')}: one row per "
            "candidate)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--seed-file", default=str(SEED_FOLDER / "nocturne.mid"))
    parser.add_argument("--soundfont", required=True)
    parser.add_argument("--rng", type=int, default=1)
    parser.add_argument("--ensemble", default=None, help="ensemble .onnx for the harmonised examples")
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
    unseeded = []
    for q in Quadrant:
        engine.prime([])
        rng = np.random.default_rng([args.rng, 10 + int(q)])
        notes = []
        for b in range(BARS):
            notes += [Note(n.pitch, n.onset + b * length, n.duration, n.velocity)
                      for n in engine.generate_bar(Capsule.of(q), rng=rng)]
        stem = OUT / f"unseeded-{q.name}-{q.mood}"
        write_midi(stem.with_suffix(".mid"), notes, meter=phrase.meter, bpm=phrase.tempo)
        piano_roll(stem.with_suffix(".png"), notes, meter=phrase.meter, title=f"no seed, {q.name} {q.mood}")
        render(stem.with_suffix(".mid"), stem.with_suffix(".ogg"), args.soundfont)
        keys = independent_keys(notes)
        names = ", ".join(f"{k.replace('_', '-')}: {v[1]}" for k, v in keys.items() if v)
        unseeded.append(f"| {q.name} {q.mood} | [{stem.name}.ogg]({stem.name}.ogg) | "
                        f"[{stem.name}.mid]({stem.name}.mid) | ![{q.mood}]({stem.name}.png) | {names} |")
        print(stem)
    (OUT / "README.md").write_text(
        f"# Examples\n\nThe `{Path(args.seed_file).name}` seed (4 bars, from outside the training corpus) "
        f"continued for {BARS} bars by `{model.name}`{described(engine.manifest)} at the default settings, once per "
        "emotion; made by "
        "`bash docs/make_examples.sh` (FluidSynth, FluidR3 General MIDI piano). The last column is the mode "
        "music21's key finders hear in the generated bars.\n\n"
        "| emotion | listen | MIDI | piano roll | mode heard |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
        f"\n## No seed\n\n{BARS} bars from nothing, once per emotion: the emotion sets the texture.\n\n"
        "| emotion | listen | MIDI | piano roll | mode heard |\n|---|---|---|---|---|\n" + "\n".join(unseeded) + "\n"
        + knob_sweep(model, args.soundfont, args.rng) +
        "\n## Harmonise mode\n\nTwo melodies from outside the corpus, their first 4 bars looped twice, with the "
        "alto, tenor and bass that `affetto run --mode harmonise` plays under them (its own `LoopHarmoniser`, "
        f"bar by bar, with the shipped ensemble at its default {ensemble_candidates(args.ensemble)} "
        "candidate(s)), as happy and as sad. In the MIDI "
        "files the melody is track/channel 1 and the voices channels 2-4. The last column is the mode music21's "
        "key finders hear in melody and voices together.\n\n"
        "| melody | emotion | listen | MIDI | piano roll | mode heard |\n|---|---|---|---|---|---|\n"
        + "\n".join(harmonise_examples(args.ensemble, args.soundfont)) + "\n",
        encoding="utf-8")


if __name__ == "__main__":
    main()
