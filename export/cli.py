"""``affetto export``: checkpoint to ``.onnx`` (the front door finds it by name).

torch and onnx are imported inside the command.
"""

from __future__ import annotations

import click

from affetto.cli import setup_logging


@click.command()
@click.argument("checkpoint")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="The .onnx file to write.")
@click.option("--int8", is_flag=True,
              help="Quantise weights to int8 (activation scales calibrated on validation data, for CPU); prints "
                   "agreement with fp32.")
@click.option("--no-check", is_flag=True, help="Skip the parity checks against PyTorch.")
@click.option("--kv-int8", is_flag=True,
              help="Keep the KV cache in int8 (scales per channel calibrated on validation data); prints agreement "
                   "with fp32 decoding through the cache.")
@click.option("--attention", type=click.Choice(["matmul", "gqa"]), default=None,
              help="The graph's attention: matmul (the default; the engine's own cache) or gqa (ONNX Runtime's "
                   "GroupQueryAttention over a shared buffer).")
@click.option("--sampling", "sampling_path", type=click.Path(exists=True, dir_okay=False),
              help='JSON of the model\'s own sampling settings, e.g. {"default": {"guidance": 1.5}, "Q4": {...}}.')
@click.option("-v", "--verbose", count=True)
def export(checkpoint, out, int8, no_check, sampling_path, verbose, kv_int8, attention) -> None:
    """Export a training checkpoint (e.g. runs/default/best) to one self-describing .onnx file."""
    setup_logging(verbose - 1)
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
        result = export_checkpoint(checkpoint, out, int8=int8, check=not no_check, sampling=sampling,
                                   kv_int8=kv_int8, attention=attention)
    except (ValueError, OSError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(result.report())


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
