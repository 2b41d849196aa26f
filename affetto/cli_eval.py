"""``affetto eval``: the evaluation command (the lead adds it with ``cli.add_command(eval_command)``).

Heavy imports (torch, ONNX Runtime, the corpus) happen inside the command.
"""

from __future__ import annotations

import click


def _floats(text: str, name: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as err:
        raise click.BadParameter(f"{name} must be numbers separated by commas, got {text!r}") from err
    if not values:
        raise click.BadParameter(f"{name} must name at least one value")
    return values


def _ints(text: str, name: str) -> tuple[int, ...]:
    values = _floats(text, name)
    if any(v != int(v) for v in values):
        raise click.BadParameter(f"{name} must be whole numbers, got {text!r}")
    return tuple(int(v) for v in values)


@click.command("eval")
@click.option("--model", type=click.Path(dir_okay=False),
              help="An affetto .onnx model (default: the shipped one).")
@click.option("--bars-per-quadrant", type=click.IntRange(min=1), default=None,
              help="Bars generated per quadrant at the default sampling  [default: 200; 8 with --quick]")
@click.option("--seeds", default="held-out", show_default=True,
              help="'held-out' (the test split of the model's own training data) or a folder of MIDI files.")
@click.option("--data", default=None,
              help="Training data to split instead of the model's own: 'corpus' or a MIDI folder.")
@click.option("--out", "-o", default="report", show_default=True, type=click.Path(file_okay=False),
              help="Folder for report.json, report.md and the PNGs.")
@click.option("--guidance-scales", default="1,1.5,3", show_default=True, help="Guidance scales to compare.")
@click.option("--temperatures", default="0.8,1,1.2", show_default=True, help="Temperatures to compare.")
@click.option("--candidates", "candidate_counts", default="1,4,8", show_default=True,
              help="Candidate counts to compare (bars drawn per bar kept).")
@click.option("--no-learned-judge", is_flag=True, help="Skip training/applying the learned judge.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="ONNX Runtime and torch threads.")
@click.option("--no-follow-mode", is_flag=True,
              help="Do not move the context to its parallel mode when the emotion's valence disagrees with it.")
@click.option("--quick", is_flag=True, help="Tiny numbers (seconds, for tests and smoke runs).")
@click.option("--seed", "seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("-v", "--verbose", count=True)
def eval_command(model, bars_per_quadrant, seeds, data, out, guidance_scales, temperatures, candidate_counts,
                 no_learned_judge,
                 threads, no_follow_mode, quick, seed, verbose) -> None:
    """Evaluate a model: emotion control by two judges, guidance and temperature, music metrics,
    key coherence and held-out bits per note; writes a JSON, a Markdown summary and PNGs."""
    import logging

    logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        from affetto.models.evaluation import EvalConfig, run_eval
        from affetto.models.report import write_report
    except ImportError as err:
        raise click.ClickException(
            f"eval needs the 'train' extra (pip install 'affetto[train]'): {err}") from err
    from affetto.errors import ConfigError

    settings = dict(model=model, seeds=seeds, data=data, seed=seed, threads=threads,
                    guidance_scales=_floats(guidance_scales, "--guidance-scales"),
                    temperatures=_floats(temperatures, "--temperatures"),
                    candidate_counts=_ints(candidate_counts, "--candidates"), learned_judge=not no_learned_judge,
                    follow_mode=not no_follow_mode)
    if bars_per_quadrant is not None:
        settings["bars_per_quadrant"] = bars_per_quadrant
    try:
        cfg = EvalConfig.quick(**settings) if quick else EvalConfig(**settings)
        report = run_eval(cfg)
        paths = write_report(report, out)
    except (ConfigError, ValueError, OSError) as err:
        raise click.ClickException(str(err)) from err
    main = report["main"]
    line = f"feature judge {100 * main['feature']['accuracy']['value']:.1f}%"
    if "learned" in main:
        line += f", learned judge {100 * main['learned']['accuracy']['value']:.1f}%"
    click.echo(f"4-quadrant accuracy: {line} over {main['phrases']} phrases")
    click.echo(f"wrote {', '.join(str(p) for p in paths)} in {report['timing']['total_s']:.0f} s")
