"""``affetto describe``: a phrase in a sentence and in fields (ONNX Runtime only, never torch)."""

from __future__ import annotations

import json
from pathlib import Path

import click


def _no_notes_reason(path: Path) -> str:
    """Why a readable file has nothing to describe: only drums, or no notes at all."""
    import mido

    try:
        drums = any(msg.type == "note_on" and msg.velocity > 0 and msg.channel == 9
                    for track in mido.MidiFile(path, clip=True).tracks for msg in track)
    except (OSError, EOFError, ValueError, KeyError, IndexError):
        drums = False
    return f"{path}: only drums (channel 10), no pitched notes to describe" if drums else f"{path}: no notes"


def describe_file(path: str | Path, model_path: str | Path | None = None) -> dict:
    """Fields and sentence of a MIDI phrase; raises MidiFileError / ModelFileError with one clear line."""
    from affetto.errors import MidiFileError
    from affetto.music.midifile import read_midi
    from affetto.words.describe import measure, sentence, show
    from affetto.words.textmodel import TextModel, note_steps

    path = Path(path)
    if path.is_dir():
        raise MidiFileError(f"{path}: a folder, not a MIDI file")
    phrase = read_midi(path, require_notes=False)
    if not phrase.notes:
        raise MidiFileError(_no_notes_reason(path))
    fields = measure(phrase.notes, phrase.meter, phrase.tempo)
    model = TextModel(model_path)
    import numpy as np

    steps = note_steps(np.array([n.pitch for n in phrase.notes]), np.array([n.onset for n in phrase.notes]),
                       np.array([n.duration for n in phrase.notes]))
    latent = model.phrase_latent(steps, phrase.meter, phrase.tempo)
    said = sentence(model, latent, fields)
    proper = model.manifest.get("proper_nouns", [])
    return {"text": show(said["tokens"], proper), **fields.to_dict(), "text_source": said["source"],
            "free_caption": show(said["free_caption"], proper), "free_contradictions": said["free_contradictions"],
            "file": str(path)}


@click.command()
@click.argument("phrase", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print every field as JSON.")
@click.option("--model", type=click.Path(dir_okay=False), help="A text model (default: the shipped one).")
def describe(phrase, as_json, model) -> None:
    """Describe a MIDI phrase in a sentence (the trained text decoder) and in fields (the analysis)."""
    from affetto.errors import AffettoError

    try:
        out = describe_file(phrase, model)
    except (AffettoError, ValueError, OSError) as err:
        raise click.ClickException(str(err)) from err
    if as_json:
        click.echo(json.dumps(out, indent=1))
        return
    click.echo(out["text"])
    click.echo(f"  {out['quadrant']} ({out['confidence']:.2f}, valence {out['valence']:+.2f}, arousal "
               f"{out['arousal']:+.2f}, by the {out['mood_source']}); {out['key']}, {out['meter']}, "
               f"{out['tempo_bpm']:g} BPM, {out['density']:.2f} onsets per beat ({out['density_word']}), "
               f"{out['register']} register, {out['texture']}, {out['contour']} line")


COMMANDS = (describe,)
