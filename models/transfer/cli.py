"""``affetto train-transfer``: train the transfer family (the front door finds it by name)."""

from __future__ import annotations

import click

from affetto.cli import setup_logging


@click.command("train-transfer")
@click.option("--out", "-o", default="runs/transfer", show_default=True, help="Folder for checkpoints.")
@click.option("--data", default="corpus", show_default=True,
              help="'corpus' (the music21 corpus) or a folder of performed MIDI: any folder of .mid/.midi files, "
                   "EMOPIA (midis/Q1_<id>_<n>.mid) or MAESTRO (maestro-v*.csv and YYYY/*.midi).")
@click.option("--layout", type=click.Choice(["auto", "folder", "emopia", "maestro"]), default="auto",
              show_default=True, help="How to read --data (auto: from what the folder holds).")
@click.option("--group", "groups", multiple=True, help="music21 corpus group (repeatable); default: a curated set.")
@click.option("--limit", type=click.IntRange(min=1), help="Read at most this many corpus files or performances.")
@click.option("--init", "init_from", help="Start from this transfer checkpoint's weights (fine-tuning).")
@click.option("--steps", type=click.IntRange(min=1), default=4000, show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--beta", type=click.FloatRange(min=0), default=0.1, show_default=True, help="KL weight after warm-up.")
@click.option("--anneal-steps", type=click.IntRange(min=1), default=500, show_default=True,
              help="Steps over which the KL weight rises from 0 (KL annealing).")
@click.option("--free-bits", type=click.FloatRange(min=0), default=0.1, show_default=True,
              help="Nats per latent dimension the KL counts at least (free bits).")
@click.option("--pair-rate", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Share of windows with a parallel-mode partner trained as transfer pairs.")
@click.option("--chord-weight", type=click.FloatRange(min=1), default=1.0, show_default=True,
              help="Draw windows of chords (>= 1.5 notes per onset) this many times as often (piano textures).")
@click.option("--width", type=click.IntRange(min=16), default=128, show_default=True, help="d_model.")
@click.option("--z-dim", type=click.IntRange(min=1), default=8, show_default=True,
              help="Size of each latent (one per eighth note).")
@click.option("--minutes", type=click.FloatRange(min=0), default=0.0, help="Stop with a checkpoint after this long.")
@click.option("--eval-every", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--seed", type=int, default=1234, show_default=True)
@click.option("--threads", type=click.IntRange(min=0), default=1, show_default=True, help="Torch CPU threads.")
@click.option("--resume", is_flag=True, help="Continue from OUT/last if it exists.")
@click.option("--no-progress", is_flag=True, help="No progress bar (logs only).")
@click.option("-v", "--verbose", count=True)
def train_transfer(out, data, layout, groups, limit, init_from, steps, batch, lr, beta, anneal_steps, free_bits,
                   pair_rate, chord_weight, width, z_dim, minutes, eval_every, seed, threads, resume, no_progress,
                   verbose) -> None:
    """Train the transfer CVAE and its performance decoder (needs the 'train' extra)."""
    setup_logging(verbose)
    try:
        from affetto.models.transfer.data import PhraseConfig
        from affetto.models.transfer.model import TransferConfig
        from affetto.models.transfer.train import TransferTrainConfig, train
    except ImportError as err:
        raise click.ClickException(f"training needs the 'train' extra (pip install 'affetto[train]'): {err}") from err
    try:
        cfg = TransferTrainConfig(out=out, data=data, layout=layout, groups=tuple(groups), limit=limit, steps=steps,
                                  batch=batch, lr=lr, beta=beta, anneal_steps=anneal_steps, free_bits=free_bits,
                                  pair_rate=pair_rate, eval_every=eval_every, minutes=minutes, seed=seed,
                                  threads=threads, init=init_from,
                                  model=TransferConfig(d_model=width, z_dim=z_dim),
                                  phrases=PhraseConfig(chord_weight=chord_weight))
        result = train(cfg, resume=resume, progress=not no_progress)
    except (ValueError, OSError) as err:
        raise click.ClickException(str(err)) from err
    last = result["last"]
    click.echo(f"step {result['step']} after {result['minutes']:.1f} min: reconstruction onset F1 "
               f"{last.get('recon_onset_f1', float('nan')):.3f}, active units {last.get('active_units', '?')}, "
               f"velocity error {last.get('velocity_mae', float('nan')):.1f}; checkpoints in {result['out']}")
