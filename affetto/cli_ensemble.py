"""The ensemble's commands for musicians: harmonise a melody, or four voices alone.

They need only ONNX Runtime (:mod:`affetto.ensemble.engine`), never torch; training,
export and evaluation of the family live in its wings (``models/musegan/cli.py``,
``export/cli.py``).
"""

from __future__ import annotations

import click


@click.command()
@click.argument("melody", type=click.Path(dir_okay=False))
@click.option("--emotion", "-e", default="none", show_default=True,
              help="Q1..Q4, happy/tense/sad/calm, V,A in [-1, 1], mood words, or none.")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="The .mid file to write.")
@click.option("--model", type=click.Path(dir_okay=False), help="An ensemble .onnx model (default: the shipped one).")
@click.option("--candidates", type=click.IntRange(min=1),
              help="Draws per phrase; the judge keeps the one that fits the emotion best (default: the model's).")
@click.option("--seed-value", type=int, default=0, show_default=True, help="Random seed: same value, same voices.")
def harmonise(melody, emotion, out, model, candidates, seed_value) -> None:
    """Write alto, tenor and bass under a melody: melody on channel 1, voices on channels 2, 3 and 4."""
    from affetto.analysis.emotion import parse_emotion
    from affetto.ensemble.engine import Ensemble
    from affetto.music.midifile import read_midi
    from affetto.music.multitrack import write_tracks
    from affetto.music.notes import Note

    try:
        capsule = parse_emotion(emotion)
        phrase = read_midi(melody)
        ens = Ensemble(model)
        tune = [Note(n.pitch, n.onset, n.duration, n.velocity, 0) for n in phrase.notes]
        voices = ens.harmonise(tune, phrase.meter, capsule, seed=seed_value, candidates=candidates)
        write_tracks(out, {"melody": tune, **{name: [n for n in voices if n.channel == ch]
                                              for ch, name in ((1, "alto"), (2, "tenor"), (3, "bass"))}},
                     meter=phrase.meter, bpm=phrase.tempo)
    except (ValueError, OSError) as err:
        raise click.ClickException(str(err)) from err
    bars = int(max(n.onset for n in tune) // phrase.meter.beats_per_bar) + 1
    click.echo(f"wrote {out}: {bars} bars in {phrase.meter} at {phrase.tempo:g} BPM, {capsule}; "
               f"melody on channel 1, {len(voices)} notes on channels 2-4")


@click.command("generate-ensemble")
@click.option("--emotion", "-e", default="none", show_default=True,
              help="Q1..Q4, happy/tense/sad/calm, V,A in [-1, 1], mood words, or none.")
@click.option("--bars", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--meter", default="4/4", show_default=True, help="4/4 or 3/4 (bars of 3 or 4 beats).")
@click.option("--bpm", type=click.FloatRange(min=1), default=80.0, show_default=True)
@click.option("--model", type=click.Path(dir_okay=False), help="An ensemble .onnx model (default: the shipped one).")
@click.option("--candidates", type=click.IntRange(min=1),
              help="Draws per phrase; the judge keeps the one that fits the emotion best (default: the model's).")
@click.option("--seed-value", type=int, default=0, show_default=True)
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="The .mid file to write.")
def generate_ensemble(emotion, bars, meter, bpm, model, candidates, seed_value, out) -> None:
    """Four voices from the ensemble model alone, on tracks/channels 1-4 (also: affetto generate --ensemble)."""
    click.echo(write_ensemble(emotion=emotion, bars=bars, meter=meter, bpm=bpm, model=model, candidates=candidates,
                              seed_value=seed_value, out=out))


def write_ensemble(*, emotion: str, bars: int, meter: str, bpm: float, model: str | None, candidates: int | None,
                   seed_value: int, out: str) -> str:
    """Four voices from the ensemble model alone to the MIDI file ``out``; returns a one-line summary."""
    from affetto.analysis.emotion import parse_emotion
    from affetto.ensemble.engine import VOICES, Ensemble
    from affetto.music.multitrack import write_tracks
    from affetto.music.notes import TimeSignature

    try:
        capsule = parse_emotion(emotion)
        ts = TimeSignature.parse(meter)
        notes = Ensemble(model).generate(bars, ts, capsule, seed=seed_value, candidates=candidates)
        write_tracks(out, {name: [n for n in notes if n.channel == ch] for ch, name in enumerate(VOICES)},
                     meter=ts, bpm=bpm)
    except (ValueError, OSError) as err:
        raise click.ClickException(str(err)) from err
    return f"wrote {out}: {bars} bars in {meter}, {capsule}, {len(notes)} notes on channels 1-4"


COMMANDS = (harmonise, generate_ensemble)
