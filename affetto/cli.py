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
@click.option("--context", type=click.IntRange(min=16), default=1024, show_default=True, help="Tokens of context.")
@click.option("--segment-bars", type=click.IntRange(min=1), default=16, show_default=True,
              help="Bars per training segment (one emotion label each).")
@click.option("--cond-dropout", type=click.FloatRange(0, 1, max_open=True), default=0.15, show_default=True)
@click.option("--transition-share", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Share of each batch from transition examples (seed in one emotion, continued in another).")
@click.option("--init", "init_from", help="Start from this checkpoint's weights (e.g. runs/default/best).")
@click.option("--mode-change-rate", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Share of augmented copies moved to the parallel mode (pieces with a clear key).")
@click.option("--transitions", type=click.IntRange(min=0), default=2, show_default=True,
              help="Transition examples per piece.")
@click.option("--mode-transition-share", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Share of transitions that change mode (the same tune going on in its parallel mode).")
@click.option("--cond-layers", is_flag=True,
              help="Also feed the capsule to every block, not only the embedding (an --init model gains them).")
@click.option("--eval-every", type=click.IntRange(min=1), default=250, show_default=True)
@click.option("--seed", type=int, default=1234, show_default=True)
@click.option("--threads", type=click.IntRange(min=0), default=0, help="Torch CPU threads (0: torch's default).")
@click.option("--resume", is_flag=True, help="Continue from OUT/last if it exists.")
@click.option("-v", "--verbose", count=True)
def train(out, data, labels, emopia, groups, limit, steps, batch, lr, layers, width, heads, context, segment_bars,
          cond_dropout, transition_share, init_from, mode_change_rate, transitions, mode_transition_share,
          cond_layers, eval_every, seed, threads,
          resume, verbose) -> None:
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
            threads=threads, transition_share=transition_share, init=init_from,
            model=ModelConfig(n_layer=layers, d_model=width, n_head=heads, d_ff=4 * width, max_len=context,
                              cond_layers=cond_layers),
            data_config=DataConfig(max_tokens=context - 1, segment_bars=segment_bars,
                                   hop_bars=max(1, segment_bars // 2), mode_change_rate=mode_change_rate,
                                   transitions=transitions, mode_transition_share=mode_transition_share),
        )
        result = run_training(cfg, resume=resume)
    except (ValueError, OSError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"step {result['step']}: validation loss {result['val_loss']:.4f} nats/token "
               f"(best {result['best_val_loss']:.4f}); checkpoints in {result['out']}")


@cli.command()
@click.argument("checkpoint")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="The .onnx file to write.")
@click.option("--int8", is_flag=True, help="Quantise weights to int8 (dynamic, for CPU); prints agreement with fp32.")
@click.option("--no-check", is_flag=True, help="Skip the parity checks against PyTorch.")
@click.option("--sampling", "sampling_path", type=click.Path(exists=True, dir_okay=False),
              help='JSON of the model\'s own sampling settings, e.g. {"default": {"guidance": 1.5}, "Q4": {...}}.')
@click.option("-v", "--verbose", count=True)
def export(checkpoint, out, int8, no_check, sampling_path, verbose) -> None:
    """Export a training checkpoint (e.g. runs/default/best) to one self-describing .onnx file."""
    _setup_logging(verbose - 1)
    try:
        from affetto.export.export import export_checkpoint
    except ImportError as err:
        raise click.ClickException(f"export needs the 'train' extra (pip install 'affetto[train]'): {err}") from err
    try:
        sampling = None
        if sampling_path:
            import json
            from pathlib import Path

            sampling = json.loads(Path(sampling_path).read_text(encoding="utf-8"))
        result = export_checkpoint(checkpoint, out, int8=int8, check=not no_check, sampling=sampling)
    except (ValueError, OSError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(result.report())


@cli.command()
@click.argument("model", required=False, type=click.Path(dir_okay=False))
def info(model) -> None:
    """Show what a model file says about itself (default: the shipped model)."""
    from affetto.errors import ModelFileError
    from affetto.manifest import read_manifest

    if model is None:
        from affetto.daemon.engine import default_model_path

        model = default_model_path()
    try:
        m = read_manifest(model)
    except ModelFileError as err:
        raise click.ClickException(str(err)) from err
    cfg, train = m["model"], m.get("training", {})
    click.echo(f"{model}")
    click.echo(f"  {m['dtype']}, {cfg['n_layer']} layers, width {cfg['d_model']}, {cfg['n_head']} heads, "
               f"context {cfg['max_len']} tokens, vocabulary {cfg['vocab_size']}")
    click.echo(f"  grid: {m['grid']['steps_per_beat']} steps per beat; conditioning: "
               f"{', '.join(m['conditioning']['quadrants'])}; guidance "
               f"{'ready' if m['conditioning']['guidance_ready'] else 'not trained'}")
    click.echo(f"  trained {train.get('step')} steps on {train.get('data', {}).get('source', '?')}; "
               f"validation loss {train.get('val_loss')}")
    click.echo(f"  {m['content_hash']}")


@cli.command()
@click.option("--emotion", "-e", required=True,
              help="Q1..Q4, happy/tense/sad/calm, or V,A with both in [-1, 1] (e.g. -0.5,0.8).")
@click.option("--seed", "seed_path", type=click.Path(dir_okay=False), help="A MIDI file to continue.")
@click.option("--bars", type=int, default=8, show_default=True, help="Bars to generate.")
@click.option("--bpm", type=float, help="Tempo written to the file (default: the seed's, else 100).")
@click.option("--meter", help="Meter such as 4/4 or 3/4 (default: the seed's, else 4/4).")
@click.option("--temperature", type=float, default=None, help="Sampling temperature (default: the model's).")
@click.option("--top-p", type=float, default=None, help="Nucleus sampling threshold.")
@click.option("--top-k", type=int, default=None, help="Keep the k most likely tokens (0: off).")
@click.option("--guidance", type=float, default=None, help="Classifier-free guidance scale (1: off).")
@click.option("--candidates", type=int, default=None,
              help="Bars drawn per bar kept; the feature judge keeps the clearest (default: the model's, 4).")
@click.option("--seed-value", type=int, default=0, show_default=True, help="Random seed: same value, same music.")
@click.option("--with-seed", is_flag=True, help="Write the seed phrase before the generated bars.")
@click.option("--model", type=click.Path(dir_okay=False), help="An affetto .onnx model (default: the shipped one).")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="The .mid file to write.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Also draw a piano roll PNG (needs matplotlib).")
@click.option("-v", "--verbose", count=True)
def generate(emotion, seed_path, bars, bpm, meter, temperature, top_p, top_k, guidance, candidates, seed_value,
             with_seed, model, out, plot, verbose) -> None:
    """Generate bars in an emotion, offline, to a standard MIDI file."""
    _setup_logging(verbose - 1)
    from affetto.generate import GenerateRequest, generate_to_file

    try:
        request = GenerateRequest.build(
            emotion=emotion, seed_path=seed_path, bars=bars, bpm=bpm, meter=meter, temperature=temperature,
            top_p=top_p, top_k=top_k, guidance=guidance, seed_value=seed_value, with_seed=with_seed, model=model,
            candidates=candidates,
        )
        summary = generate_to_file(request, out, plot=plot)
    except (ValueError, OSError, ImportError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(summary)


@cli.command()
@click.option("--model", type=click.Path(dir_okay=False), help="An affetto .onnx model (default: the shipped one).")
@click.option("--checkpoint", type=click.Path(), help="The PyTorch checkpoint of the same weights, for the eager rows.")
@click.option("--repeat", type=click.IntRange(min=10), default=200, show_default=True, help="Steps timed per cell.")
@click.option("--bars", type=click.IntRange(min=5), default=40, show_default=True, help="Bars timed per row.")
@click.option("--json-out", type=click.Path(dir_okay=False), help="Also write the figures as JSON.")
def bench(model, checkpoint, repeat, bars, json_out) -> None:
    """Benchmark the engine (and PyTorch on the same weights) on one CPU thread."""
    import json
    from pathlib import Path

    from affetto.benchmark import run
    from affetto.daemon.engine import default_model_path

    results = run(Path(model) if model else default_model_path(), Path(checkpoint) if checkpoint else None,
                  repeat=repeat, bars=bars, echo=click.echo)
    if json_out:
        Path(json_out).write_text(json.dumps(results, indent=1), encoding="utf-8")


def _add_commands() -> None:
    """Commands that live beside this file (their modules import nothing heavy at load)."""
    from affetto.cli_daemon import ports, run
    from affetto.cli_ensemble import COMMANDS as ENSEMBLE_COMMANDS
    from affetto.cli_eval import eval_command

    for command in ENSEMBLE_COMMANDS:
        cli.add_command(command)
    cli.add_command(run)
    cli.add_command(ports)
    cli.add_command(eval_command)


_add_commands()


def main() -> None:
    cli(prog_name="affetto")


if __name__ == "__main__":
    sys.exit(main())
