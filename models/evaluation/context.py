"""How well a bar is predicted after a given amount of context, through ONNX Runtime.

The engine lets a bar follow at most its context window of tokens (the
slide keeps the latest whole bars in half of it: ``affetto.runtime.window``).
This measures what that costs or gains the model: on held-out segments, the
last whole bar that starts at or after ``min_start`` tokens is scored
(nats per token of the bar, its BAR included) once after the whole segment
before it, and once after BOS and only the latest whole bars that fit in
each context length, as the engine's slide leaves them. Every run has its
segment's own capsule; the figures of all lengths are over the same tokens.

Usage: ``python -m affetto.models.evaluation.context [--model M.onnx] [--lengths 256,512,...]``
(the validation segments of the music21 corpus, as training splits them).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from affetto.models.evaluation.nll import token_logprobs
from affetto.runtime.policies import bars_within

WHOLE = "whole"
LENGTHS = (128, 256, 384, 512, 640, 768)


def target_bar(tokens: np.ndarray, bar: int, min_start: int) -> tuple[int, int] | None:
    """(start, end) of the last whole bar (BAR to the next BAR) starting at or after ``min_start``, or None."""
    lines = np.flatnonzero(tokens == bar)
    starts = [int(b) for b in lines[:-1] if b >= min_start]
    if not starts:
        return None
    start = starts[-1]
    return start, int(lines[lines > start][0])


def bar_losses(session, manifest: dict, sequences: Sequence[np.ndarray], labels: Sequence[int], *, bos: int,
               bar: int, lengths: Sequence[int] = LENGTHS, min_start: int = 600, progress=None) -> dict:
    """Nats per token of each sequence's target bar after each context length, and after the whole segment.

    ``sequences`` are token arrays without BOS, ``labels`` their quadrants (0-3).
    Sequences with no whole bar from ``min_start`` on are skipped.
    """
    sums: dict[str, float] = {str(key): 0.0 for key in (*lengths, WHOLE)}
    count = bars = 0
    for tokens, label in zip(sequences, labels):
        tokens = np.asarray(tokens, np.int64)
        found = target_bar(tokens, bar, min_start)
        if found is None:
            continue
        start, end = found
        target = tokens[start:end]
        for key in sums:  # the context as the engine's slide leaves it: BOS and the latest whole bars that fit
            context = tokens[:start] if key == WHOLE else bars_within(tokens[:start].tolist(), bar, int(key))
            logp = token_logprobs(session, manifest, np.concatenate([context, target]), label, bos=bos)
            sums[key] -= float(logp[-len(target):].sum())  # the target's tokens
        count += len(target)
        bars += 1
        if progress is not None:
            progress(1)
    return {"bars": bars, "tokens": count, "min_start": min_start,
            "nats_per_token": {k: (v / count if count else float("nan")) for k, v in sums.items()}}


def main(argv: list[str] | None = None) -> int:
    from affetto.manifest import read_manifest
    from affetto.models.corpus import DEFAULT_GROUPS, load_corpus
    from affetto.models.data import build_examples, split_examples
    from affetto.models.evaluation.material import data_config_of, training_config
    from affetto.runtime.assets import default_model_path
    from affetto.runtime.session import open_session
    from affetto.tokens.vocab import Vocabulary

    parser = argparse.ArgumentParser(prog="python -m affetto.models.evaluation.context", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="an affetto .onnx lead model (default: shipped)")
    parser.add_argument("--lengths", default=",".join(map(str, LENGTHS)), help="context lengths, in tokens")
    parser.add_argument("--min-start", type=int, default=600, help="the scored bar starts at or after this token")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)
    lengths = [int(x) for x in args.lengths.split(",") if x]
    if not lengths or min(lengths) < 2:
        parser.error("--lengths: comma-separated token counts >= 2")

    path = args.model or default_model_path("fp32")  # the reference; the int8 copy's draws are heard alike
    manifest = read_manifest(path)
    vocab = Vocabulary.from_dict(manifest["vocab"])
    trained = training_config(manifest)  # how the model's segments were cut
    config = data_config_of(trained)
    groups = tuple(trained.get("groups") or DEFAULT_GROUPS)
    pieces = load_corpus(groups, grid=vocab.grid, progress=True)
    valid = split_examples(build_examples(pieces, vocab, config, augment=False), pieces)["valid"]
    from tqdm import tqdm

    with tqdm(total=len(valid), desc="segments", unit="seg") as bar:
        result = bar_losses(open_session(path, threads=1), manifest, [e.tokens for e in valid],
                            [e.quadrant for e in valid], bos=vocab.bos, bar=vocab.bar, lengths=lengths,
                            min_start=args.min_start, progress=bar.update)
    result["model"] = str(path)
    print(f"{result['bars']} held-out bars starting at token {args.min_start} or later, {result['tokens']} tokens:")
    for key, value in result["nats_per_token"].items():
        print(f"  after {key + ' tokens' if key != WHOLE else 'the whole segment'}: {value:.4f} nats/token")
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
