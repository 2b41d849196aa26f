"""The independent ears pooled over several draws: one model's listening reports, run with other seeds.

One listening run (``affetto eval --listen-only``) draws each phrase once, so its
figures move with the draw's seed as well as with the model: the shipped
model's outside-seed valence at 1 candidate read 94.5, 89.1 and 86.7 %
(Aarden-Essen) under seeds 0, 1 and 2. Comparing two models by one run each
compares their luck too. This module pools the shares of several runs per
model (the phrases of every run counted together, with their Wilson interval)
and writes them side by side::

    python -m affetto.models.evaluation.pooled -o pooled.md \\
        two-rows=s0/listening.json,s1/listening.json three-rows=...

Shares only (valence by each key finder, arousal, single line, thin, and per
outside seed busier and louder): they pool by counting; means and medians do
not, and stay in each run's own report.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import click

from affetto.errors import ConfigError
from affetto.models.evaluation.stats import proportion

FINDERS = ("aarden_essen", "temperley_kostka_payne", "krumhansl_judge")
COLUMNS = ("Aarden-Essen", "Temperley-Kostka-Payne", "Krumhansl (the engine's own judge)", "arousal", "single line",
           "thin", "busier (per seed)", "louder (per seed)")


def _shares(summary: Mapping) -> list[Mapping | None]:
    """The shares of one cell of a listening report, in the order of ``COLUMNS`` (None where it has none)."""
    by_seed = summary.get("arousal_by_seed") or {}
    return [*(summary["valence"][f] for f in FINDERS), summary["arousal_feature_judge"], summary["single_line"],
            summary["thin"], by_seed.get("busier"), by_seed.get("louder")]


def _cells(report: Mapping) -> dict[tuple[str, str], list[Mapping]]:
    """(phrases, candidates) -> the report's summaries of that cell (the unseeded meters together)."""
    try:
        out: dict[tuple[str, str], list[Mapping]] = {}
        for candidates, meters in report["unseeded"].items():
            out[("unseeded", candidates)] = list(meters.values())
        for candidates, summary in report["seeded"].items():
            out[("outside seeds", candidates)] = [summary]
        return out
    except (KeyError, AttributeError, TypeError) as err:
        raise ConfigError(f"not a listening report (affetto eval --listen-only): {err!r}") from err


def pool(reports: Sequence[Mapping]) -> dict[tuple[str, str], list[dict | None]]:
    """Per cell, every share of ``COLUMNS`` pooled over ``reports`` (counts added, a new Wilson interval)."""
    if not reports:
        raise ConfigError("no listening reports to pool")
    counts: dict[tuple[str, str], list[list[int] | None]] = {}
    for report in reports:
        for cell, summaries in _cells(report).items():
            row = counts.setdefault(cell, [[0, 0] for _ in COLUMNS])
            for summary in summaries:
                for i, share in enumerate(_shares(summary)):
                    if share is None or row[i] is None or not share["n"]:
                        continue
                    row[i][0] += round(share["value"] * share["n"])  # type: ignore[index]
                    row[i][1] += int(share["n"])  # type: ignore[index]
    return {cell: [proportion(k, n) if n else None for k, n in row]  # type: ignore[misc]
            for cell, row in counts.items()}


def markdown(models: Mapping[str, Sequence[Mapping]], sources: Mapping[str, Iterable[str]] | None = None) -> str:
    """A table of the pooled shares of each model, cell by cell."""
    lines = ["# The independent ears, pooled over draws", ""]
    for name, files in (sources or {}).items():
        lines.append(f"- {name}: {', '.join(files)}")
    lines += ["", "| model | phrases | candidates | n | " + " | ".join(COLUMNS) + " |",
              "|" + "---|" * (4 + len(COLUMNS))]
    pooled = {name: pool(reports) for name, reports in models.items()}
    cells = sorted({cell for p in pooled.values() for cell in p}, key=lambda c: (c[0] != "unseeded", c[1] != "1", c))
    for cell in cells:
        for name, p in pooled.items():
            shares = p.get(cell)
            if shares is None:
                continue
            n = shares[0]["n"] if shares[0] else 0
            text = ["-" if s is None else f"{100 * s['value']:.1f}% [{100 * s['ci95'][0]:.1f}, "
                    f"{100 * s['ci95'][1]:.1f}] ({s['n']})" for s in shares]
            lines.append(f"| {name} | {cell[0]} | {cell[1]} | {n} | " + " | ".join(text) + " |")
    return "\n".join(lines) + "\n"


@click.command()
@click.argument("models", nargs=-1, required=True)
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="Write the table here (else print it).")
def main(models: tuple[str, ...], out: str | None) -> None:
    """Pool listening reports: MODELS are NAME=a.json,b.json (one model's runs under other seeds)."""
    named: dict[str, list[Mapping]] = {}
    sources: dict[str, list[str]] = {}
    for arg in models:
        name, _, files = arg.partition("=")
        if not name or not files:
            raise click.BadParameter(f"expected NAME=a.json,b.json, got {arg!r}")
        sources[name] = files.split(",")
        try:
            named[name] = [json.loads(Path(f).read_text(encoding="utf-8")) for f in sources[name]]
        except (OSError, ValueError) as err:
            raise click.ClickException(str(err)) from err
    try:
        text = markdown(named, sources)
    except ConfigError as err:
        raise click.ClickException(str(err)) from err
    if out:
        Path(out).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


if __name__ == "__main__":
    main()
