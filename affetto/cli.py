"""The ``affetto`` command: one front door for the daemon, generation, training and tools.

Every command imports its heavy modules inside its function, so ``affetto run``
never loads torch and ``affetto --help`` is instant.
"""

from __future__ import annotations

import logging
import sys

import click

import affetto


def _setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose >= 0 else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(affetto.__version__, prog_name="affetto")
def cli() -> None:
    """affetto: emotion-conditioned music, generated live and streamed into your DAW."""


@cli.command()
@click.option("--out", "-o", default="runs/default", show_default=True, help="Folder for checkpoints.")
@click.option("--data", default="corpus", show_default=True,
              help="'corpus' (the music21 corpus), a folder of MIDI files, or an EMOPIA folder.")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), help="CSV (file,quadrant) for a MIDI folder.")
@click.option("--emopia", is_flag=True, help="Read --data as EMOPIA (clips named Q1_<id>_<n>.mid).")
@click.option("--group", "groups", multiple=True, help="music21 corpus group (repeatable); default: a curated set.")
@click.option("--limit", type=click.IntRange(min=1), help="Use at most this many corpus files (quick runs).")
@click.option("--steps", type=click.IntRange(min=1), default=6000, show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--layers", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--width", type=click.IntRange(min=8), default=192, show_default=True, help="Model width (d_model).")
@click.option("--heads", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--context", type=click.IntRange(min=16), default=512, show_default=True, help="Tokens of context.")
@click.option("--cond-dropout", type=click.FloatRange(0, 1, max_open=True), default=0.15, show_default=True)
@click.option("--eval-every", type=click.IntRange(min=1), default=250, show_default=True)
@click.option("--seed", type=int, default=1234, show_default=True)
@click.option("--threads", type=click.IntRange(min=0), default=0, help="Torch CPU threads (0: torch's default).")
@click.option("--resume", is_flag=True, help="Continue from OUT/last if it exists.")
@click.option("-v", "--verbose", count=True)
def train(out, data, labels, emopia, groups, limit, steps, batch, lr, layers, width, heads, context,
          cond_dropout, eval_every, seed, threads, resume, verbose) -> None:
    """Train the emotion-conditioned Transformer (needs the 'train' extra).

    Runs on one process, or on several under torchrun:
    torchrun --nproc_per_node 2 -m affetto.cli train ...
    """
    _setup_logging(verbose)
    try:
        from affetto.models.data import DataConfig
        from affetto.models.train import TrainConfig
        from affetto.models.train import train as run_training
        from affetto.models.transformer import ModelConfig
    except ImportError as err:
        raise click.ClickException(f"training needs the 'train' extra (pip install 'affetto[train]'): {err}") from err
    try:
        cfg = TrainConfig(
            out=out, data=data, labels=labels, emopia=emopia, groups=tuple(groups), limit=limit, steps=steps,
            batch=batch, lr=lr, min_lr=lr / 10, cond_dropout=cond_dropout, eval_every=eval_every, seed=seed,
            threads=threads,
            model=ModelConfig(n_layer=layers, d_model=width, n_head=heads, d_ff=4 * width, max_len=context),
            data_config=DataConfig(max_tokens=context - 1),
        )
        result = run_training(cfg, resume=resume)
    except (ValueError, OSError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"step {result['step']}: validation loss {result['val_loss']:.4f} nats/token "
               f"(best {result['best_val_loss']:.4f}); checkpoints in {result['out']}")


def main() -> None:
    cli(prog_name="affetto")


if __name__ == "__main__":
    sys.exit(main())
