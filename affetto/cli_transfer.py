"""``affetto transfer``: a MIDI file re-played in another emotion, offline.

It needs no torch: the rule baseline is numpy, the CVAE runs in ONNX
Runtime. Every track and channel of the source is kept (its notes changed,
everything else copied), so a two-hand piano file comes back with two hands.
"""

from __future__ import annotations

from pathlib import Path

import click


def transfer_file(*, source: str, emotion: str, out: str, strength: float = 1.0, seed_value: int = 0,
                  method: str = "auto", model: str | None = None, plot: str | None = None) -> list[str]:
    """Transfer ``source`` into ``emotion`` and write ``out``; the lines to print (which method, what was
    written)."""
    import numpy as np

    from affetto.transfer.methods import load_method
    from affetto.transfer.phrase import pack, read_source, unpack, write_like

    capsule = parse_capsule(emotion)
    src = read_source(source)
    chosen, said = load_method(method, model=model, threads=1)
    notes, order = pack(src.parts)
    moved = chosen.transfer(notes, src.meter, capsule, strength=strength, rng=np.random.default_rng(seed_value))
    parts = unpack(moved, order)
    write_like(src, parts, out)
    lines = [said, f"wrote {out}: {src.bars} bars in {src.meter} at {src.tempo:g} BPM, {capsule}, strength "
                   f"{strength:g}; {len(moved)} notes in {len(order)} part(s) (source: {len(notes)} notes)"]
    if src.drum_notes:
        lines.append(f"drums (channel 10, {src.drum_notes} notes) copied unchanged")
    if len(set(src.meters)) > 1:
        lines.append(f"note: the file changes meter; bars are counted in its first meter, {src.meter}")
    if plot:
        from affetto.music.notes import Note
        from affetto.music.plot import piano_roll

        shift = src.bars * src.meter.beats_per_bar  # the source (grey), then the transfer after it
        both = [*src.notes, *(Note(n.pitch, n.onset + shift, n.duration, n.velocity, n.channel) for n in moved)]
        piano_roll(plot, both, meter=src.meter, seed_beats=shift,
                   title=f"{Path(src.path).name} (grey), then in {capsule} ({chosen.name}, strength {strength:g})")
        lines.append(f"piano roll: {plot}")
    return lines


@click.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--emotion", "-e", required=True,
              help="Q1..Q4, happy/tense/sad/calm, a knob value 0..127 (knob:N), V,A in [-1, 1], or mood words.")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="The .mid file to write.")
@click.option("--strength", type=click.FloatRange(0.0, 1.0), default=1.0, show_default=True,
              help="How far to move: 0 returns the source, 1 goes as far as the method goes.")
@click.option("--seed-value", type=int, default=0, show_default=True, help="Random seed: same value, same output.")
@click.option("--method", type=click.Choice(["auto", "cvae", "rule"]), default="auto", show_default=True,
              help="auto: the CVAE when its model is shipped, else the rule baseline.")
@click.option("--model", type=click.Path(dir_okay=False), help="A transfer .onnx model for --method cvae.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Also draw a piano roll PNG (needs matplotlib).")
def transfer(source, emotion, out, strength, seed_value, method, model, plot) -> None:
    """Re-play SOURCE (a MIDI file) in another emotion: same length, meter, tempo, tracks and channels."""
    try:
        lines = transfer_file(source=source, emotion=emotion, out=out, strength=strength,
                              seed_value=seed_value, method=method, model=model, plot=plot)
    except (ValueError, OSError, ImportError) as err:
        raise click.ClickException(str(err)) from err
    for line in lines:
        click.echo(line)


def parse_capsule(emotion: str):
    """The capsule of ``emotion``: a knob value (``knob:N`` or a bare integer 0..127) as the knob gives
    it, anything else through the emotion parser (Q1..Q4, names, ``V,A``, mood words)."""
    from affetto.analysis.emotion import knob_capsule, parse_emotion

    text = str(emotion).strip().lower()
    value = text.removeprefix("knob:").strip()
    if value.isdigit() and (text.startswith("knob:") or value == text):
        return knob_capsule(int(value))
    return parse_emotion(emotion)


COMMANDS = (transfer,)
