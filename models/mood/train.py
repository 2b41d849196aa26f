"""Train the mood recogniser: ``python -m affetto.models.mood.train --out runs/mood [--resume]``.

Phrases are drawn once (:mod:`.data`: the corpus's training pieces, augmented
and labelled by the feature judge; EMOPIA's quadrants too with ``--emopia``)
and cached beside the run as ``.npz``; the held-out phrases come from the
validation and test pieces. Training is cross-entropy on the quadrant plus
the squared error of valence and arousal, with quadrant-balanced batches, on
one CPU thread. A checkpoint (``OUT/last``: safetensors + JSON, optimizer
included) is written every ``save_every`` steps and at the end, with the
held-out accuracy, so ``--resume`` goes on from where a run stopped; the best
held-out checkpoint is kept as ``OUT/best``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from affetto.models.checkpoint import checkpoint_paths, load_checkpoint, save_checkpoint
from affetto.models.mood.data import MoodDataConfig, PhraseSet, draw_phrases, split_pieces
from affetto.models.mood.model import MoodConfig, MoodNet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MoodTrainConfig:
    out: str = "runs/mood"
    steps: int = 6000
    batch: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.01
    va_weight: float = 2.0  # of the valence/arousal squared error against the quadrant's cross-entropy
    train_phrases: int = 48000
    held_out_phrases: int = 4000
    save_every: int = 500
    seed: int = 0
    emopia: str | None = None  # an EMOPIA folder: its clips' quadrants join the corpus's labels
    limit: int | None = None  # corpus files (a quick run)
    model: MoodConfig = field(default_factory=MoodConfig)
    data: MoodDataConfig = field(default_factory=MoodDataConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_pieces(cfg: MoodTrainConfig) -> tuple[list, dict]:
    """The corpus (and EMOPIA when given) as pieces, with the quadrants of those that have one."""
    from affetto.models.corpus import load_corpus

    pieces = list(load_corpus(progress=False, limit=cfg.limit))
    labels: dict = {}
    if cfg.emopia:
        from affetto.models.userdata import load_emopia

        loaded = load_emopia(cfg.emopia)
        labels = {len(pieces) + i: q for i, q in loaded.labels.items()}
        pieces += loaded.pieces
    return pieces, labels


def phrase_sets(cfg: MoodTrainConfig, *, progress: bool = True) -> tuple[PhraseSet, PhraseSet]:
    """(training, held-out) phrases, from the run's cache when there."""
    out = Path(cfg.out)
    cache = out / "phrases.npz"
    key = json.dumps([cfg.data.to_dict(), cfg.train_phrases, cfg.held_out_phrases, cfg.seed, cfg.emopia, cfg.limit],
                     sort_keys=True)
    if cache.exists():
        with np.load(cache, allow_pickle=False) as data:
            if str(data["key"]) == key:
                return _unpack(data, "train"), _unpack(data, "held")
    pieces, labels = load_pieces(cfg)
    (train_p, train_l), (held_p, held_l) = split_pieces(pieces, labels)
    log.info("pieces: %d training, %d held out (%d with quadrants)", len(train_p), len(held_p), len(labels))
    train = draw_phrases(train_p, cfg.train_phrases, cfg.seed, config=cfg.data, labels=train_l, progress=progress)
    held = draw_phrases(held_p, cfg.held_out_phrases, cfg.seed + 1, config=cfg.data, labels=held_l,
                        progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "phrases.tmp.npz"
    arrays: dict[str, Any] = {"key": np.array(key), **_pack(train, "train"), **_pack(held, "held")}
    np.savez(tmp, **arrays)
    tmp.replace(cache)
    return train, held


_FIELDS = ("roll", "steps", "summary", "quadrant", "va", "va_weight", "density", "velocity", "piece", "bar_beats")


def _pack(phrases: PhraseSet, prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}_{name}": getattr(phrases, name) for name in _FIELDS}


def _unpack(data: Any, prefix: str) -> PhraseSet:
    return PhraseSet(*(data[f"{prefix}_{name}"] for name in _FIELDS))


def batch_tensors(phrases: PhraseSet, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(roll, mask, summary) of the phrases at ``index``, cut to the longest of them."""
    width = int(phrases.steps[index].max())
    roll = torch.from_numpy(phrases.roll[index, :, :width].astype(np.float32))
    mask = torch.from_numpy(phrases.mask(index)[:, :width])
    return roll, mask, torch.from_numpy(phrases.summary[index])


@torch.no_grad()
def predict(model: MoodNet, phrases: PhraseSet, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, 4), va (N, 2)) of every phrase."""
    model.eval()
    probs, va = np.zeros((len(phrases), 4), np.float32), np.zeros((len(phrases), 2), np.float32)
    for start in range(0, len(phrases), batch):
        index = np.arange(start, min(start + batch, len(phrases)))
        logits, out = model(*batch_tensors(phrases, index))
        probs[index], va[index] = torch.softmax(logits, -1).numpy(), out.numpy()
    return probs, va


def held_out_figures(model: MoodNet, held: PhraseSet) -> dict[str, float]:
    probs, va = predict(model, held)
    q = held.quadrant
    pred = probs.argmax(1)
    true_v, true_a = held.va[:, 0] >= 0, held.va[:, 1] >= 0
    per = [float((pred[q == k] == k).mean()) if (q == k).any() else float("nan") for k in range(4)]
    return {
        "accuracy": float((pred == q).mean()),
        "balanced_accuracy": float(np.nanmean(per)),
        "valence_sign": float(((va[:, 0] >= 0) == true_v).mean()),
        "arousal_sign": float(((va[:, 1] >= 0) == true_a).mean()),
        "valence_mae": float(np.abs(va[:, 0] - held.va[:, 0]).mean()),
        "arousal_mae": float(np.abs(va[:, 1] - held.va[:, 1]).mean()),
    }


def train(cfg: MoodTrainConfig, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    from tqdm import tqdm

    torch.set_num_threads(1)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    train_set, held = phrase_sets(cfg, progress=progress)
    log.info("phrases: %d training %s; %d held out %s", len(train_set), train_set.counts(), len(held), held.counts())
    model = MoodNet(cfg.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, history, best, seconds = 0, [], -1.0, 0.0
    if resume and checkpoint_paths(out / "last")[2].exists():
        loaded, meta = load_checkpoint(out / "last", optimizer)
        model.load_state_dict(loaded.state_dict())
        start, history = int(meta["step"]), list(meta.get("history", []))
        best, seconds = float(meta.get("best_accuracy", -1.0)), float(meta.get("train_seconds", 0.0))
        log.info("resumed at step %d", start)
    rng = np.random.default_rng(cfg.seed + start)
    counts = np.bincount(train_set.quadrant, minlength=4).astype(np.float64)
    weights = 1.0 / np.maximum(counts[train_set.quadrant], 1.0)
    weights /= weights.sum()
    data_summary = {"training": train_set.counts(), "held_out": held.counts()}

    def save(stem: str, step: int, figures: dict) -> None:
        meta = {"step": step, "history": history, "best_accuracy": best, "train_seconds": seconds,
                "train": cfg.to_dict(), "data_summary": data_summary, "held_out": figures}
        save_checkpoint(out / stem, model, meta, optimizer)

    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="mood", disable=not progress)
    t0 = time.perf_counter()
    model.train()
    for step in bar:
        index = rng.choice(len(train_set), size=cfg.batch, p=weights)
        roll, mask, summary = batch_tensors(train_set, index)
        for group in optimizer.param_groups:  # cosine decay to a tenth
            group["lr"] = cfg.lr * (0.1 + 0.45 * (1 + np.cos(np.pi * step / cfg.steps)))
        logits, va = model(roll, mask, summary)
        target_va = torch.from_numpy(train_set.va[index])
        va_w = torch.from_numpy(train_set.va_weight[index]).unsqueeze(1)
        ce = F.cross_entropy(logits, torch.from_numpy(train_set.quadrant[index]))
        mse = ((va - target_va) ** 2 * va_w).sum() / va_w.sum().clamp(min=1.0) / 2
        loss = ce + cfg.va_weight * mse
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        bar.set_postfix(ce=f"{ce.item():.3f}", mse=f"{mse.item():.3f}")
        done = step + 1
        if done % cfg.save_every == 0 or done == cfg.steps:
            seconds += time.perf_counter() - t0
            t0 = time.perf_counter()
            figures = held_out_figures(model, held)
            model.train()
            history.append({"step": done, "ce": round(ce.item(), 4), "mse": round(mse.item(), 4), **figures})
            log.info("step %d (%.1f min): %s", done, seconds / 60, figures)
            if figures["accuracy"] > best:
                best = figures["accuracy"]
                save("best", done, figures)
            save("last", done, figures)
    model.eval()
    return {"steps": cfg.steps, "best_accuracy": best, "history": history[-1:] if history else []}


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/mood")
    parser.add_argument("--steps", type=int, default=MoodTrainConfig.steps)
    parser.add_argument("--phrases", type=int, default=MoodTrainConfig.train_phrases)
    parser.add_argument("--emopia", default=None, help="an EMOPIA folder: its quadrants join the labels")
    parser.add_argument("--limit", type=int, default=None, help="corpus files (a quick run)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = MoodTrainConfig(out=args.out, steps=args.steps, train_phrases=args.phrases, emopia=args.emopia,
                          limit=args.limit)
    print(json.dumps(train(cfg, resume=args.resume, progress=not args.no_progress), indent=1))


if __name__ == "__main__":
    main()
