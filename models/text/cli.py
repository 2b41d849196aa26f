"""``affetto train-text`` and ``affetto eval-text``: the music-text model's training and its proof."""

from __future__ import annotations

import json
import logging

import click


@click.command("train-text")
@click.option("--out", default="runs/text/gtp", show_default=True, help="Checkpoint folder (OUT/last).")
@click.option("--steps", type=click.IntRange(min=1), default=2500, show_default=True)
@click.option("--batch", type=click.IntRange(min=3), default=48, show_default=True)
@click.option("--gtp", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Weight of the group topology-preservation loss (0: trained without it).")
@click.option("--stop-at", type=click.IntRange(min=0), default=0, show_default=True,
              help="Stop at this step of the STEPS-long schedule (0: at its end).")
@click.option("--bag", is_flag=True, help="Pool each tower's input embeddings too, through a hidden layer.")
@click.option("--attributes", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Weight of the attribute heads (the measured fields read back from the text space; 0: none).")
@click.option("--profile/--no-profile", default=True, show_default=True,
              help="The music encoder also reads the window's duration-weighted pitch classes.")
@click.option("--summed/--no-summed", default=True, show_default=True,
              help="Each encoder's latent and attribute heads also read the sum of its input embeddings.")
@click.option("--word-dropout", type=click.FloatRange(0, 0.95), default=0.25, show_default=True,
              help="Share of the decoder's input words hidden while training, so it must read its latent.")
@click.option("--seed", type=int, default=1234, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--resume", is_flag=True, help="Continue OUT/last.")
@click.option("--log", "log_file", type=click.Path(dir_okay=False), help="Also log to this file.")
def train_text(out, steps, stop_at, batch, gtp, bag, attributes, profile, summed, word_dropout, seed, threads, resume,
               log_file) -> None:
    """Train the music-text model (music encoder, text encoder, text decoder, alignment) on corpus captions."""
    from affetto.models.text.losses import LossConfig
    from affetto.models.text.train import TextTrainConfig, train

    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file:
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=handlers)
    cfg = TextTrainConfig(out=out, steps=steps, stop_at=stop_at, batch=batch, seed=seed, threads=threads,
                          loss=LossConfig(gtp=gtp, attributes=attributes, word_dropout=word_dropout),
                          model={"bag": bag, "profile": profile, "summed": summed, "attributes": attributes > 0})
    stem = train(cfg, resume=resume)
    click.echo(f"checkpoint: {stem}")


@click.command("eval-text")
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path())
@click.option("--json-out", type=click.Path(dir_okay=False), help="Write the figures as JSON.")
@click.option("--md-out", type=click.Path(dir_okay=False), help="Write the figures as Markdown tables.")
@click.option("--limit", type=click.IntRange(min=10), help="Held-out windows to use (default: all test windows).")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
def eval_text(checkpoints, json_out, md_out, limit, threads) -> None:
    """Retrieval recall@1/@5 (music->text, text->music) and caption attribute accuracy on held-out windows."""
    import torch

    from affetto.models.text.evaluate import evaluate, format_report, markdown_report

    torch.set_num_threads(threads)
    results = {str(path): evaluate(path, limit=limit) for path in checkpoints}
    click.echo(format_report(results))
    if json_out:
        with open(json_out, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1, sort_keys=True)
    if md_out:
        command = " ".join(["affetto eval-text", *map(str, checkpoints)])
        with open(md_out, "w", encoding="utf-8") as fh:
            fh.write(markdown_report(results, command))
