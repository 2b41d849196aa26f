"""The ensemble family's training and evaluation commands (the front door finds them by name)."""

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
              help="Weight of the expected parallel unisons/fifths/octaves between any two voices, per bar.")
@click.option("--emotion-weight", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Weight of the emotion term: a draw's written voices and those of the same draw asked the "
                   "opposite capsule, classified alone, should differ as the capsules say.")
@click.option("--emotion-level-weight", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Weight of the plain term: each of the two draws, classified alone, should read as asked.")
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
def train_ensemble(out, steps, batch, lr_g, lr_d, n_critic, recon_weight, voice_leading_weight, emotion_weight,
                   emotion_level_weight, melody_rate, cond_dropout, minutes, eval_every, limit, seed, threads, resume,
                   verbose) -> None:
    """Train the ensemble MuseGAN on the Bach chorales (needs the 'train' extra)."""
    _logging(verbose)
    try:
        from affetto.models.musegan.train import EnsembleTrainConfig, train
    except ImportError as err:
        raise click.ClickException(f"training needs the 'train' extra (pip install 'affetto[train]'): {err}") from err
    try:
        cfg = EnsembleTrainConfig(out=out, steps=steps, batch=batch, lr_g=lr_g, lr_d=lr_d, n_critic=n_critic,
                                  recon_weight=recon_weight, voice_leading_weight=voice_leading_weight,
                                  emotion_weight=emotion_weight, emotion_level_weight=emotion_level_weight,
                                  melody_rate=melody_rate, cond_dropout=cond_dropout,
                                  minutes=minutes, eval_every=eval_every, limit=limit, seed=seed, threads=threads)
        result = train(cfg, resume=resume)
    except (ValueError, OSError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"step {result['step']} after {result['minutes']:.1f} min in all "
               f"({result['phrases_per_second']:.0f} phrases/s this run); checkpoints in {result['out']}")


@click.command("eval-ensemble")
@click.option("--model", type=click.Path(dir_okay=False), help="An ensemble .onnx model (default: the shipped one).")
@click.option("--out", "-o", default="eval-ensemble.json", show_default=True, type=click.Path(dir_okay=False),
              help="JSON report (a Markdown table is printed).")
@click.option("--phrases", type=click.IntRange(min=8), default=200, show_default=True,
              help="Held-out phrases measured (at most all of them).")
@click.option("--seed-value", type=int, default=0, show_default=True)
def eval_ensemble(model, out, phrases, seed_value) -> None:
    """The ensemble against the held-out chorales (MuseGAN's metrics, harmonisation figures), and under
    melodies from outside the corpus as music21's key finders hear its voices."""
    try:
        from affetto.models.evaluation.ensemble import compared, evaluate, markdown
    except ImportError as err:
        raise click.ClickException(f"evaluation needs the 'train' extra (music21): {err}") from err
    import json
    from pathlib import Path

    from affetto.ensemble.engine import Ensemble
    from affetto.models.evaluation.ensemble_outside import harmonise_outside
    from affetto.models.evaluation.ensemble_outside import markdown as outside_markdown

    try:
        report = evaluate(model, phrases=phrases, seed=seed_value)
        ens = Ensemble(model)
        outside = {str(k): harmonise_outside(model, candidates=k, seed=seed_value) for k in compared(ens)}
    except (ValueError, OSError) as err:
        raise click.ClickException(str(err)) from err
    report["outside_melodies"] = outside
    Path(out).write_text(json.dumps(report, indent=1), encoding="utf-8")
    click.echo(markdown(report))
    for k, result in outside.items():
        label = f"{k} candidate{'s' if k != '1' else ''}" + (" (the default)" if k == str(ens.candidates) else "")
        click.echo(f"\n{label}: " + outside_markdown(result))
