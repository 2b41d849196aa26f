"""How the CVAE's anchored decoding is set: measured on validation pairs, never with music21.

Anchored decoding (:func:`affetto.transfer.model.anchored_steps`) keeps every
note of the source and lets the decoder move each at most ``radius``
semitones, scoring a pitch by its onset log-odds plus ``contrast`` times
what the asked condition changes against the source's own (the same z
decoded both ways), its own pitch counted ``bias`` higher. Its three
settings are chosen here on what the training data itself says is right: the
validation split's windows whose key is clear carry a parallel-mode partner
(the same notes with the mode's degrees moved), so a window decoded under
its partner's mode should come out as the partner. Per setting:

- ``accuracy``: share of notes at the partner's pitch;
- ``moved``: of the notes the partner moves, the share moved to its pitch;
- ``kept``: of the notes it keeps, the share left alone;
- ``exact``: windows that come out exactly as the partner;
- ``same``: decoded under its own mode (half of what a player asks: two
  of the four quadrants share a phrase's mode), the share of notes left as
  they were;
- ``overall``: the mean of ``accuracy`` and ``same``, which picks the setting;

for all windows and for the windows of chords (>= 1.5 notes per onset).
The independent estimators (music21's key finders) judge the result in
``affetto eval-transfer``; they play no part in the choice.

``python -m affetto.models.transfer.anchor --windows 300`` prints the table
and the setting with the best accuracy (needs the corpus cache, see
:mod:`affetto.models.corpus`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

import numpy as np

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.transfer.model import (
    STEPS_PER_BEAT,
    CvaeTransfer,
    anchored_steps,
    bar_bins,
    capsule_of,
    condition,
    phrase_roll,
    tonic_shift,
)

RADII = (1, 2)
CONTRASTS = (0.0, 0.5, 1.0, 1.5, 2.0)
BIASES = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0)


def pair_windows(count: int, seed: int = 0, bars: int = 4) -> list:
    """``count`` validation windows of ``bars`` bars with a parallel-mode partner, drawn with ``seed``."""
    from affetto.models.corpus import DEFAULT_GROUPS, load_corpus
    from affetto.models.transfer.data import PhraseConfig, build_phrases
    from affetto.runtime.assets import asset_path

    manifest = json.loads(asset_path("affetto-transfer.json").read_text(encoding="utf-8"))
    cfg = PhraseConfig.from_dict(manifest["train"]["phrases"])  # the windows the shipped model was trained beside
    phrases = build_phrases(load_corpus(DEFAULT_GROUPS, progress=False), cfg)
    windows = [w for w in phrases["valid"].windows if w.partner is not None and w.n_bars == bars]
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(windows), size=min(count, len(windows)), replace=False)
    return [windows[i] for i in sorted(pick)]


def decode_window(model: CvaeTransfer, window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``window`` (strength 1, z = the posterior mean) decoded under its partner's mode, under its own (what
    transfer() does when the asked mode is the one it is in) and under its own condition (the baseline the
    contrast subtracts): three (bars, steps, 2, P) probability rolls, from one run."""
    src = window.notes
    own = capsule_of(src, window.n_bars * window.bar_steps / STEPS_PER_BEAT)
    asked = [condition(Capsule.of(Quadrant.Q3 if mode else Quadrant.Q1).weights, mode)  # transfer()'s target
             for mode in (1 - window.mode, window.mode)]
    source = condition(own, window.mode)
    density, poly = bar_bins(src, window.n_bars, window.bar_steps)
    eps = np.zeros((window.n_bars, window.bar_steps // model.z_steps, model.z_dim), np.float32)
    roll = phrase_roll(src, window.n_bars, window.bar_steps, tonic_shift(window.tonic))
    probs, _ = model.decode(roll, source, np.stack([*asked, source]), density, poly, window.meter, eps)
    return probs[0], probs[1], probs[2]


def sweep(model: CvaeTransfer, windows: Sequence, radii: Sequence[int] = RADII,
          contrasts: Sequence[float] = CONTRASTS,
          biases: Sequence[float] = BIASES) -> dict[tuple[int, float, float, str], dict[str, float]]:
    """Per (radius, contrast, bias, "all" | "chords"): the mean accuracy, moved, kept, exact, same, overall."""
    rows: dict[tuple[int, float, float, str], dict[str, list[float]]] = {}
    for w in windows:
        src, partner = w.notes, w.partner
        if len(src) != len(partner) or not (src[:, 0] == partner[:, 0]).all():
            raise ValueError("a partner must hold the source's notes in the same order")
        flipped, same, base = decode_window(model, w)
        moved = src[:, 2] != partner[:, 2]
        chords = len(src) >= 1.5 * len(np.unique(src[:, 0]))
        shift = tonic_shift(w.tonic)
        for radius, contrast, bias in ((r, c, b) for r in radii for c in contrasts for b in biases):
            out = anchored_steps(src, flipped, shift, radius, bias, base, contrast)
            ok = out[:, 2] == partner[:, 2]
            back = anchored_steps(src, same, shift, radius, bias, base, contrast)[:, 2] == src[:, 2]
            for part in ("all", "chords") if chords else ("all",):
                r = rows.setdefault((radius, contrast, bias, part),
                                    {"accuracy": [], "moved": [], "kept": [], "exact": [], "same": []})
                r["accuracy"].append(float(ok.mean()))
                r["exact"].append(float(ok.all()))
                r["same"].append(float(back.mean()))
                if moved.any():
                    r["moved"].append(float(ok[moved].mean()))
                if (~moved).any():
                    r["kept"].append(float(ok[~moved].mean()))
    table: dict[tuple[int, float, float, str], dict[str, float]] = {}
    for key, lists in rows.items():
        means = {name: float(np.mean(v)) if v else float("nan") for name, v in lists.items()}
        table[key] = {**means, "n": float(len(lists["accuracy"])), "overall": (means["accuracy"] + means["same"]) / 2}
    return table


def best(table: dict[tuple[int, float, float, str], dict[str, float]]) -> tuple[int, float, float]:
    """The (radius, contrast, bias) with the best ``overall`` over all windows (the smallest on a tie)."""
    scored = [(-round(r["overall"], 4), radius, contrast, bias)
              for (radius, contrast, bias, part), r in table.items() if part == "all"]
    _, radius, contrast, bias = min(scored)
    return radius, contrast, bias


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a transfer .onnx (default: the shipped one)")
    parser.add_argument("--windows", type=int, default=300, help="validation windows with a partner")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    model = CvaeTransfer(args.model)
    windows = pair_windows(args.windows, args.seed)
    table = sweep(model, windows)
    print(f"{len(windows)} validation windows of 4 bars with a parallel-mode partner, decoded under its mode")
    print("radius contrast bias | all windows: accuracy moved  kept   exact  same   overall | chords: overall")
    for (radius, contrast, bias, part), r in sorted(table.items()):
        if part != "all":
            continue
        chords = table.get((radius, contrast, bias, "chords"), {}).get("overall", float("nan"))
        print(f"{radius:6d} {contrast:8.1f} {bias:4.1f} |              {r['accuracy']:.4f}  {r['moved']:.4f} "
              f"{r['kept']:.4f} {r['exact']:.4f} {r['same']:.4f} {r['overall']:.4f} |         {chords:.4f}")
    radius, contrast, bias = best(table)
    print(f"best overall on all windows: radius {radius}, contrast {contrast:g}, bias {bias:g} (affetto "
          f"export-transfer CKPT -o OUT --anchor {radius} --contrast {contrast:g} --anchor-bias {bias:g})")


if __name__ == "__main__":
    main()
