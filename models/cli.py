"""``affetto train`` and ``affetto eval``: the models' commands (the front door finds them by name).

Heavy imports (torch, ONNX Runtime, the corpus) happen inside the commands.
"""

from __future__ import annotations

from dataclasses import replace

import click

from affetto.cli import setup_logging


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
@click.option("--no-listen", is_flag=True,
              help="Skip the independent ears (music21's key finders, filled bars, seeds from outside the corpus).")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="ONNX Runtime and torch threads.")
@click.option("--no-follow-mode", is_flag=True,
              help="Do not move the context to its parallel mode when the emotion's valence disagrees with it.")
@click.option("--listen-only", is_flag=True,
              help="Only the independent ears, texture and arousal (listening.json and listening.md; minutes).")
@click.option("--without", default="", metavar="LEVERS",
              help="With --listen-only: emotion-plan levers to turn off, e.g. 'texture,arousal' "
                   "(mode, tonic, leading, arousal, texture, judge), to hear what each one does.")
@click.option("--guidance", type=click.FloatRange(min=1.0), default=None,
              help="With --listen-only: one guidance scale for every phrase (default: the model's own).")
@click.option("--quick", is_flag=True, help="Tiny numbers (seconds, for tests and smoke runs).")
@click.option("--seed", "seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("-v", "--verbose", count=True)
def eval_command(model, bars_per_quadrant, seeds, data, out, guidance_scales, temperatures, candidate_counts,
                 no_learned_judge, no_listen, listen_only, without, guidance,
                 threads, no_follow_mode, quick, seed, verbose) -> None:
    """Evaluate a model: emotion control by two judges, guidance and temperature, music metrics,
    key coherence and held-out bits per note; writes a JSON, a Markdown summary and PNGs."""
    import logging

    logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        from affetto.models.evaluation import EvalConfig, run_eval
        from affetto.models.evaluation.report import write_report
    except ImportError as err:
        raise click.ClickException(
            f"eval needs the 'train' extra (pip install 'affetto[train]'): {err}") from err
    from affetto.errors import ConfigError

    if listen_only:
        _listen_only(model, out, threads, seed, quick, tuple(w.strip() for w in without.split(",") if w.strip()),
                     guidance)
        return
    if without or guidance is not None:
        raise click.UsageError("--without and --guidance go with --listen-only")
    settings = dict(model=model, seeds=seeds, data=data, seed=seed, threads=threads,
                    guidance_scales=_floats(guidance_scales, "--guidance-scales"),
                    temperatures=_floats(temperatures, "--temperatures"),
                    candidate_counts=_ints(candidate_counts, "--candidates"), learned_judge=not no_learned_judge,
                    listen=not no_listen, follow_mode=not no_follow_mode)
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


def _listen_only(model, out, threads: int, seed: int, quick: bool, without: tuple[str, ...],
                 guidance: float | None = None) -> None:
    import json
    from pathlib import Path

    from affetto.errors import ConfigError
    from affetto.models.evaluation.listening import ListenConfig, listen
    from affetto.models.evaluation.report import listening_markdown

    try:
        cfg = ListenConfig(model=model, threads=threads, seed=seed, without=without, guidance=guidance)
        if quick:
            cfg = replace(cfg, unseeded_phrases=1, transpositions=(0,))
        report = listen(cfg)
    except (ConfigError, ValueError, OSError) as err:
        raise click.ClickException(str(err)) from err
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "listening.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    title = ("# Listening" + (f" (without {', '.join(without)})" if without else "")
             + (f" (guidance {guidance:g})" if guidance is not None else ""))
    (folder / "listening.md").write_text("\n".join([title, "", *listening_markdown(report)]) + "\n")
    click.echo(f"wrote {folder / 'listening.json'} and {folder / 'listening.md'}")


@click.command()
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
@click.option("--kv-heads", type=click.IntRange(min=0), default=0, show_default=True,
              help="Key/value heads (grouped-query attention; 0: one per head). With --init, a model with fewer "
                   "starts from the checkpoint's heads averaged in groups.")
@click.option("--context", type=click.IntRange(min=16), default=1024, show_default=True, help="Tokens of context.")
@click.option("--segment-bars", type=click.IntRange(min=1), default=16, show_default=True,
              help="Bars per training segment (one emotion label each).")
@click.option("--cond-dropout", type=click.FloatRange(0, 1, max_open=True), default=0.15, show_default=True)
@click.option("--transition-share", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Share of each batch from transition examples (seed in one emotion, continued in another).")
@click.option("--init", "init_from",
              help="Start from this checkpoint's weights, architecture and vocabulary (e.g. runs/default/best); "
                   "'default' fine-tunes the shipped model.")
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
def train(out, data, labels, emopia, groups, limit, steps, batch, lr, layers, width, heads, kv_heads, context,
          segment_bars,
          cond_dropout, transition_share, init_from, mode_change_rate, transitions, mode_transition_share,
          cond_layers, eval_every, seed, threads,
          resume, verbose) -> None:
    """Train the emotion-conditioned Transformer (needs the 'train' extra).

    Runs on one process, or on several under torchrun:
    torchrun --nproc_per_node 2 -m affetto.cli train ...
    """
    setup_logging(verbose)
    try:
        from affetto.models.data import DataConfig
        from affetto.models.train import TrainConfig
        from affetto.models.train import train as run_training
        from affetto.models.transformer import ModelConfig
    except ImportError as err:
        raise click.ClickException(f"training needs the 'train' extra (pip install 'affetto[train]'): {err}") from err
    try:
        model_cfg = ModelConfig(n_layer=layers, d_model=width, n_head=heads, d_ff=4 * width, max_len=context,
                                cond_layers=cond_layers, n_kv_head=kv_heads)
        vocab_cfg = None
        if init_from:
            from affetto.models.checkpoint import default_checkpoint_path, read_meta
            from affetto.tokens.vocab import Vocabulary

            init_from = str(default_checkpoint_path()) if init_from == "default" else init_from
            meta = read_meta(init_from)
            model_cfg = ModelConfig.from_dict({**meta["model"], "cond_layers": meta["model"].get("cond_layers")
                                               or cond_layers,
                                               "n_kv_head": kv_heads or meta["model"].get("n_kv_head", 0)})
            vocab_cfg = Vocabulary.from_dict(meta["vocab"]).config
            context = model_cfg.max_len
        cfg = TrainConfig(
            out=out, data=data, labels=labels, emopia=emopia, groups=tuple(groups), limit=limit, steps=steps,
            batch=batch, lr=lr, min_lr=lr / 10, cond_dropout=cond_dropout, eval_every=eval_every, seed=seed,
            threads=threads, transition_share=transition_share, init=init_from,
            model=model_cfg,
            data_config=DataConfig(max_tokens=context - 1, segment_bars=segment_bars,
                                   hop_bars=max(1, segment_bars // 2), mode_change_rate=mode_change_rate,
                                   transitions=transitions, mode_transition_share=mode_transition_share),
        )
        if vocab_cfg is not None:  # the --init model's vocabulary, not the default one
            cfg = replace(cfg, vocab=vocab_cfg)
        result = run_training(cfg, resume=resume)
    except (ValueError, OSError) as err:
        raise click.ClickException(str(err)) from err
    if result["rank"] == 0:  # the other ranks of a torchrun do not evaluate
        click.echo(f"step {result['step']}: validation loss {result['val_loss']:.4f} nats/token "
                   f"(best {result['best_val_loss']:.4f}); checkpoints in {result['out']}")
