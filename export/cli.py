"""``affetto export``: checkpoint to ``.onnx`` (the front door finds it by name).

torch and onnx are imported inside the command.
"""

from __future__ import annotations

import click

from affetto.cli import setup_logging


@click.command()
@click.argument("checkpoint")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="The .onnx file to write.")
@click.option("--int8", is_flag=True, help="Quantise weights to int8 (dynamic, for CPU); prints agreement with fp32.")
@click.option("--no-check", is_flag=True, help="Skip the parity checks against PyTorch.")
@click.option("--sampling", "sampling_path", type=click.Path(exists=True, dir_okay=False),
              help='JSON of the model\'s own sampling settings, e.g. {"default": {"guidance": 1.5}, "Q4": {...}}.')
@click.option("-v", "--verbose", count=True)
def export(checkpoint, out, int8, no_check, sampling_path, verbose) -> None:
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
        result = export_checkpoint(checkpoint, out, int8=int8, check=not no_check, sampling=sampling)
    except (ValueError, OSError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(result.report())
