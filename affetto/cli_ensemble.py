"""Commands of the ensemble family: train, export, harmonise, generate and evaluate four voices.

Heavy modules are imported inside the commands: ``harmonise`` and
``generate-ensemble`` need only ONNX Runtime, never torch.
"""

from __future__ import annotations

import logging

import click


def _logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose >= 0 else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


@click.command("train-ensemble")
@click.option("--out", "-o", default="runs/ensemble", show_default=True, help="Folder for checkpoints.")
@click.option("--steps", type=click.IntRange(min=1), default=3000, show_default=True, help="Generator steps.")
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--lr-g", type=float, default=1e-3, show_default=True)
@click.option("--lr-d", type=float, default=1e-3, show_default=True)
@click.option("--n-critic", type=click.IntRange(min=1), default=5, show_default=True,
              help="Critic steps per generator step.")
@click.option("--recon-weight", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Weight of the reconstruction term on rows given the soprano (0: the plain WGAN-GP objective).")
@click.option("--voice-leading-weight", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Weight of the expected parallel fifths/octaves against the given soprano, per bar.")
@click.option("--melody-rate", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Share of rows given the soprano (track-conditional); the rest is free generation.")
@click.option("--cond-dropout", type=click.FloatRange(0, 1), default=0.2, show_default=True)
@click.option("--minutes", type=click.FloatRange(min=0), default=0.0, help="Stop with a checkpoint after this long.")
@click.option("--eval-every", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), help="Parse at most this many chorale files (quick runs).")
@click.option("--seed", type=int, default=1234, show_default=True)
@click.option("--threads", type=click.IntRange(min=0), default=1, show_default=True, help="Torch CPU threads.")
@click.option("--resume", is_flag=True, help="Continue from OUT/last if it exists.")
@click.option("-v", "--verbose", count=True)
def train_ensemble(out, steps, batch, lr_g, lr_d, n_critic, recon_weight, voice_leading_weight, melody_rate,
                   cond_dropout, minutes, eval_every, limit, seed, threads, resume, verbose) -> None:
    """Train the ensemble MuseGAN on the Bach chorales (needs the 'train' extra)."""
    _logging(verbose)
    try:
        from affetto.models.musegan.train import EnsembleTrainConfig, train
    except ImportError as err:
        raise click.ClickException(f"training needs the 'train' extra (pip install 'affetto[train]'): {err}") from err
    try:
        cfg = EnsembleTrainConfig(out=out, steps=steps, batch=batch, lr_g=lr_g, lr_d=lr_d, n_critic=n_critic,
                                  recon_weight=recon_weight, voice_leading_weight=voice_leading_weight,
                                  melody_rate=melody_rate, cond_dropout=cond_dropout,
                                  minutes=minutes, eval_every=eval_every, limit=limit, seed=seed, threads=threads)
        result = train(cfg, resume=resume)
    except (ValueError, OSError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"step {result['step']} after {result['minutes']:.1f} min in all "
               f"({result['phrases_per_second']:.0f} phrases/s this run); checkpoints in {result['out']}")


@click.command("export-ensemble")
@click.argument("checkpoint")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="The .onnx file to write.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="A voice sounds where its probabilities sum to this (stored in the manifest).")
@click.option("--candidates", type=click.IntRange(min=1), default=8, show_default=True,
              help="Draws per phrase the runtime judge chooses from (stored in the manifest).")
def export_ensemble(checkpoint, out, threshold, candidates) -> None:
    """Export an ensemble checkpoint (e.g. runs/ensemble/last) to one .onnx file, with parity checks."""
    try:
        from affetto.export.musegan import export_ensemble as run_export
    except ImportError as err:
        raise click.ClickException(f"export needs the 'train' extra (pip install 'affetto[train]'): {err}") from err
    try:
        result = run_export(checkpoint, out, threshold=threshold, candidates=candidates)
    except (ValueError, OSError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(result)


@click.command()
@click.argument("melody", type=click.Path(dir_okay=False))
@click.option("--emotion", "-e", default="none", show_default=True,
              help="Q1..Q4, happy/tense/sad/calm, V,A in [-1, 1], or none.")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="The .mid file to write.")
@click.option("--model", type=click.Path(dir_okay=False), help="An ensemble .onnx model (default: the shipped one).")
@click.option("--candidates", type=click.IntRange(min=1),
              help="Draws per phrase; the judge keeps the one that fits the emotion best (default: the model's).")
@click.option("--seed-value", type=int, default=0, show_default=True, help="Random seed: same value, same voices.")
def harmonise(melody, emotion, out, model, candidates, seed_value) -> None:
    """Write alto, tenor and bass under a melody: melody on channel 1, voices on channels 2, 3 and 4."""
    from affetto.emotion import parse_emotion
    from affetto.ensemble import Ensemble
    from affetto.midifile import read_midi
    from affetto.multitrack import write_tracks
    from affetto.music import Note

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
              help="Q1..Q4, happy/tense/sad/calm, V,A in [-1, 1], or none.")
@click.option("--bars", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--meter", default="4/4", show_default=True, help="4/4 or 3/4 (bars of 3 or 4 beats).")
@click.option("--bpm", type=click.FloatRange(min=1), default=80.0, show_default=True)
@click.option("--model", type=click.Path(dir_okay=False), help="An ensemble .onnx model (default: the shipped one).")
@click.option("--candidates", type=click.IntRange(min=1),
              help="Draws per phrase; the judge keeps the one that fits the emotion best (default: the model's).")
@click.option("--seed-value", type=int, default=0, show_default=True)
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="The .mid file to write.")
def generate_ensemble(emotion, bars, meter, bpm, model, candidates, seed_value, out) -> None:
    """Four voices from the ensemble model alone, on tracks/channels 1-4."""
    from affetto.emotion import parse_emotion
    from affetto.ensemble import VOICES, Ensemble
    from affetto.multitrack import write_tracks
    from affetto.music import TimeSignature

    try:
        capsule = parse_emotion(emotion)
        ts = TimeSignature.parse(meter)
        notes = Ensemble(model).generate(bars, ts, capsule, seed=seed_value, candidates=candidates)
        write_tracks(out, {name: [n for n in notes if n.channel == ch] for ch, name in enumerate(VOICES)},
                     meter=ts, bpm=bpm)
    except (ValueError, OSError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"wrote {out}: {bars} bars in {meter}, {capsule}, {len(notes)} notes on channels 1-4")


@click.command("eval-ensemble")
@click.option("--model", type=click.Path(dir_okay=False), help="An ensemble .onnx model (default: the shipped one).")
@click.option("--out", "-o", default="eval-ensemble.json", show_default=True, type=click.Path(dir_okay=False),
              help="JSON report (a Markdown table is printed).")
@click.option("--phrases", type=click.IntRange(min=8), default=200, show_default=True,
              help="Held-out phrases measured (at most all of them).")
@click.option("--seed-value", type=int, default=0, show_default=True)
def eval_ensemble(model, out, phrases, seed_value) -> None:
    """The ensemble against the held-out chorales: MuseGAN's metrics and harmonisation figures."""
    try:
        from affetto.models.evaluation_ensemble import evaluate, markdown
    except ImportError as err:
        raise click.ClickException(f"evaluation needs the 'train' extra (music21): {err}") from err
    import json
    from pathlib import Path

    try:
        report = evaluate(model, phrases=phrases, seed=seed_value)
    except (ValueError, OSError) as err:
        raise click.ClickException(str(err)) from err
    Path(out).write_text(json.dumps(report, indent=1), encoding="utf-8")
    click.echo(markdown(report))


COMMANDS = (train_ensemble, export_ensemble, harmonise, generate_ensemble, eval_ensemble)
