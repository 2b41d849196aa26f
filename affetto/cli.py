"""The ``affetto`` command: one front door for the daemon, generation, training and tools.

The core's own commands (``info``, ``generate``, ``bench``) live here; the
wings' commands live in the wings (``affetto.daemon.cli``,
``affetto.models.cli``, ``affetto.export.cli``) and are found by name, only
when one is asked for (or listed by ``--help``), so the core imports no wing
and ``affetto run`` never loads torch. Every command imports its heavy
modules inside its function, so ``affetto --help`` is instant.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path

import click

import affetto
from affetto.errors import ConfigError
from affetto.runtime.assets import PRECISIONS, check_precision

# Commands that live in the wings: name -> "module:attribute", imported when used.
WING_COMMANDS = {
    "run": "affetto.daemon.cli:run",
    "ports": "affetto.daemon.cli:ports",
    "learn": "affetto.daemon.cli_stage:learn",
    "calibrate": "affetto.daemon.cli_stage:calibrate",
    "train-ensemble": "affetto.models.musegan.cli:train_ensemble",
    "eval-ensemble": "affetto.models.musegan.cli:eval_ensemble",
    "export-ensemble": "affetto.export.cli:export_ensemble",
    "train": "affetto.models.cli:train",
    "distill": "affetto.models.distill:distill_command",
    "eval": "affetto.models.cli:eval_command",
    "eval-transfer": "affetto.models.evaluation.transfer:eval_transfer",
    "export": "affetto.export.cli:export",
    "train-transfer": "affetto.models.transfer.cli:train_transfer",
    "export-transfer": "affetto.export.transfer:export_command",
    "train-text": "affetto.models.text.cli:train_text",
    "eval-text": "affetto.models.text.cli:eval_text",
    "export-text": "affetto.export.text:export_text_command",
}


class FrontDoor(click.Group):
    """A group whose wing commands are imported by name, when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *WING_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in WING_COMMANDS and cmd_name not in self.commands:
            module, _, attr = WING_COMMANDS[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)


def setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose >= 0 else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


@click.group(cls=FrontDoor, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(affetto.__version__, prog_name="affetto")
def cli() -> None:
    """affetto: emotion-conditioned music, generated live and streamed into your DAW."""


@cli.command()
@click.argument("model", required=False, type=click.Path(dir_okay=False))
def info(model) -> None:
    """Show what a model file says about itself (default: the shipped model)."""
    from affetto.errors import ModelFileError
    from affetto.manifest import read_manifest

    if model is None:
        from affetto.runtime import default_model_path

        model = default_model_path()
    try:
        m = read_manifest(model)
    except ModelFileError as err:
        raise click.ClickException(str(err)) from err
    cfg, train = m["model"], m.get("training", {})
    click.echo(f"{model}")
    if m.get("family") == "text":
        click.echo(f"  text family ({m.get('part')} graph of {', '.join(m['parts'].values())}), {m['dtype']}: "
                   f"width {cfg['d_model']}, {cfg['n_layer']} layers a tower, latent {cfg['latent']}, "
                   f"{len(m['vocabulary'])} words; GTP weight {train.get('loss', {}).get('gtp')}")
        click.echo(f"  trained {train.get('step')} steps ({train.get('minutes', 0):.0f} min); {m['content_hash']}")
        return
    if m.get("family", "lead") != "lead":
        shape = {"tracks": "tracks", "bars": "bars", "steps": "steps per bar", "pitches": "pitches",
                 "d_model": "width", "n_layer": "layers", "z_dim": "latent dims"}
        told = ", ".join(f"{cfg[k]} {label}" for k, label in shape.items() if cfg.get(k) is not None)
        click.echo(f"  {m.get('family')} family, {m.get('dtype', 'fp32')}: {told or 'no shape given'}; conditioning: "
                   f"{', '.join(m.get('conditioning', {}).get('quadrants', [])) or 'none'}")
        click.echo(f"  trained {train.get('step')} steps ({train.get('minutes', 0):.0f} min); {m['content_hash']}")
        return
    kv = cfg.get("n_kv_head") or cfg["n_head"]
    heads = f"{cfg['n_head']} heads" + (f" ({kv} key/value head{'s' if kv > 1 else ''})" if kv != cfg["n_head"] else "")
    cache = m.get("kv_cache", {})
    attention = {"MatMul": "MatMul attention over the engine's cache",
                 "com.microsoft.GroupQueryAttention": "GroupQueryAttention's shared cache"}.get(cache.get("op"), "")
    attention += f" in {cache['dtype']}" if attention and cache.get("dtype") else ""
    click.echo(f"  {m['dtype']}, {cfg['n_layer']} layers, width {cfg['d_model']}, {heads}, "
               f"context {cfg['max_len']} tokens, vocabulary {cfg['vocab_size']}"
               + (f"; {attention}" if attention else ""))
    click.echo(f"  grid: {m['grid']['steps_per_beat']} steps per beat; conditioning: "
               f"{', '.join(m['conditioning']['quadrants'])}; guidance "
               f"{'ready' if m['conditioning']['guidance_ready'] else 'not trained'}")
    init = train.get("config", {}).get("init")
    distilled = m.get("distillation")
    if distilled:
        channel = m["conditioning"].get("guidance_channel", {})
        kl = ", ".join(f"{v:.4f} at {k.removeprefix('kl_at_')}" for k, v in distilled.items() if k.startswith("kl_at_"))
        click.echo(f"  guidance distilled into one row (capsule channel {channel.get('index')}, scales 1 to "
                   f"{channel.get('max_scale')}) from {distilled.get('teacher') or '?'} in {distilled.get('step')} "
                   f"steps; KL against the guided teacher {kl or '?'} nats/token")
    else:
        click.echo(f"  trained {train.get('step')} steps on {train.get('data', {}).get('source', '?')}"
                   + (f", from the weights of {Path(init).name}" if init else "")
                   + f"; validation loss {train.get('val_loss') or float('nan'):.4f} nats/token")
    q = m.get("quantization")
    if q:
        click.echo(f"  int8 against fp32: top-1 agreement {100 * q['top1_agreement']:.2f}% over {q['tokens']} "
                   f"tokens, largest logit difference {q['max_logit_diff']:.3f}")
    if cache.get("top1_agreement") is not None:
        kl = f", mean KL {cache['mean_kl']:.1e} nats" if cache.get("mean_kl") is not None else ""
        click.echo(f"  int8 KV cache against fp32, decoding {cache['tokens']} rows x tokens: top-1 agreement "
                   f"{100 * cache['top1_agreement']:.2f}%, largest logit difference {cache['max_logit_diff']:.3f}{kl}")
    click.echo(f"  {m['content_hash']}")


@cli.command()
@click.option("--emotion", "-e", required=True,
              help="Q1..Q4, happy/tense/sad/calm, V,A with both in [-1, 1] (e.g. -0.5,0.8), or mood words "
                   "(e.g. \"melancholic, slow\").")
@click.option("--seed", "seed_path", type=click.Path(dir_okay=False), help="A MIDI file to continue.")
@click.option("--bars", type=int, default=8, show_default=True, help="Bars to generate.")
@click.option("--bpm", type=float, help="Tempo written to the file (default: the seed's, else 100).")
@click.option("--meter", help="Meter such as 4/4 or 3/4 (default: the seed's, else 4/4).")
@click.option("--temperature", type=float, default=None, help="Sampling temperature (default: the model's).")
@click.option("--top-p", type=float, default=None, help="Nucleus sampling threshold.")
@click.option("--top-k", type=int, default=None, help="Keep the k most likely tokens (0: off).")
@click.option("--guidance", type=float, default=None, help="Classifier-free guidance scale (1: off).")
@click.option("--candidates", type=int, default=None,
              help="Bars drawn per bar kept; the feature judge keeps the clearest (default: the model's, 3).")
@click.option("--seed-value", type=int, default=0, show_default=True, help="Random seed: same value, same music.")
@click.option("--with-seed", is_flag=True, help="Write the seed phrase before the generated bars.")
@click.option("--model", type=click.Path(dir_okay=False),
              help="An affetto .onnx model (default: the shipped one; with --ensemble, an ensemble model).")
@click.option("--precision", type=click.Choice(PRECISIONS),
              help="The shipped lead model's weights when no --model is named: auto (int8 on the CPU), fp32 or int8.")
@click.option("--ensemble", is_flag=True,
              help="Four voices (soprano, alto, tenor, bass on channels 1-4) from the ensemble model instead.")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="The .mid file to write.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Also draw a piano roll PNG (needs matplotlib).")
@click.option("-v", "--verbose", count=True)
def generate(emotion, seed_path, bars, bpm, meter, temperature, top_p, top_k, guidance, candidates, seed_value,
             with_seed, model, precision, ensemble, out, plot, verbose) -> None:
    """Generate bars in an emotion, offline, to a standard MIDI file."""
    setup_logging(verbose - 1)
    try:
        check_precision(precision or "auto", model)
    except ConfigError as err:
        raise click.ClickException(str(err)) from err
    if ensemble:
        lead_only = {"--seed": seed_path, "--temperature": temperature, "--top-p": top_p, "--top-k": top_k,
                     "--guidance": guidance, "--with-seed": with_seed or None, "--plot": plot,
                     "--precision": precision}
        given = [name for name, value in lead_only.items() if value is not None]
        if given:
            raise click.ClickException(f"{', '.join(given)}: only for the lead model, not with --ensemble "
                                   "(to write voices under a melody: affetto harmonise MELODY.mid)")
        from affetto.cli_ensemble import write_ensemble

        click.echo(write_ensemble(emotion=emotion, bars=bars, meter=meter or "4/4", bpm=bpm or 80.0, model=model,
                                  candidates=candidates, seed_value=seed_value, out=out))
        return
    from affetto.generate import GenerateRequest, generate_to_file

    if precision is not None:
        from affetto.runtime import default_model_path

        model = str(default_model_path(precision))
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


BENCH_MODULE = "affetto.bench.bench_engine"  # bench/ in a source checkout, installed as affetto.bench
BENCH_MODULES = {"transfer": "affetto.bench.bench_transfer"}  # affetto bench NAME ...: another benchmark


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench(args) -> None:
    """Benchmark the engine (and PyTorch on the same weights) on one CPU thread.

    Runs the engine benchmark (affetto.bench.bench_engine) in a fresh process
    with ARGS (--model, --checkpoint, --repeat, --bars, --json-out; --help lists them).
    ``affetto bench transfer [ARGS]`` runs the transfer benchmark (affetto.bench.bench_transfer) instead.
    """
    import subprocess

    module = BENCH_MODULE
    if args and args[0] in BENCH_MODULES:
        module, args = BENCH_MODULES[args[0]], args[1:]
    sys.exit(subprocess.run([sys.executable, "-m", module, *args], check=False).returncode)


def _add_core_commands() -> None:
    """Core commands kept in their own modules (they import only click at load)."""
    from affetto.cli_ensemble import COMMANDS
    from affetto.cli_transfer import COMMANDS as TRANSFER_COMMANDS
    from affetto.cli_words import COMMANDS as WORDS

    for command in (*COMMANDS, *TRANSFER_COMMANDS, *WORDS):
        cli.add_command(command)


_add_core_commands()


def main() -> None:
    cli(prog_name="affetto")


if __name__ == "__main__":
    main()
