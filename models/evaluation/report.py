"""Writing an evaluation out: ``report.json``, ``report.md`` and PNG plots (matplotlib, Agg).

The Markdown names the judge behind every figure: "feature judge" (key mode,
onset density, velocity; :mod:`affetto.analysis.judge`) or "learned judge" (the
classifier of :mod:`affetto.models.emotion_classifier`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from affetto.analysis.emotion import Quadrant
from affetto.analysis.metrics import METRICS

QUADRANTS = [f"{q.name} {q.mood}" for q in Quadrant]
JUDGES = {"feature": "feature judge", "learned": "learned judge"}


def _pct(entry) -> str:
    """'71.9% [70.5, 73.3]' from a proportion dict (or a bare share)."""
    if entry is None:
        return "n/a"
    if isinstance(entry, (int, float)):
        return f"{100 * entry:.1f}%"
    if entry.get("value") is None:
        return "n/a"
    low, high = entry["ci95"]
    return f"{100 * entry['value']:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"


def _num(x, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}g}"


def _gap(x) -> str:
    """A gap in percent: whole numbers from 10 up, one decimal below."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.0f}%" if abs(x) >= 10 else f"{x:.1f}%"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _confusion_md(matrix: list[list[int]]) -> list[str]:
    rows = [[f"asked {QUADRANTS[i]}", *[str(c) for c in row]] for i, row in enumerate(matrix)]
    return _table(["", *[f"judged {q.name}" for q in Quadrant]], rows)


def _accuracy_rows(report: dict) -> list[list[str]]:
    rows = []
    for judge, label in JUDGES.items():
        if judge not in report["main"]:
            continue
        gen, ceil = report["main"][judge], report["ceiling"].get(judge, {})
        rows.append([label, "4 quadrants", _pct(gen["accuracy"]), _pct(ceil.get("accuracy")),
                     _pct(report["chance"]["accuracy"])])
        for q in Quadrant:
            rows.append([label, q.name, _pct(gen["per_quadrant"][q.name]),
                         _pct(ceil.get("per_quadrant", {}).get(q.name)), _pct(report["chance"]["accuracy"])])
        for axis in ("valence", "arousal"):
            rows.append([label, axis, _pct(gen[axis]), _pct(ceil.get(axis)), _pct(report["chance"][axis])])
    return rows


def listening_markdown(listening: dict) -> list[str]:
    """The headline: what ears the engine never consults hear, at 1 candidate and at the default."""
    ears = (("aarden_essen", "Aarden-Essen"), ("temperley_kostka_payne", "Temperley-Kostka-Payne"),
            ("krumhansl_judge", "Krumhansl (the engine's own judge)"))
    out = ["## Independent ears (music21's key finders; figures at 1 candidate and at the default)", "",
           "Valence: the share of phrases whose mode, as each key finder hears it, is the one the asked "
           "quadrant wants (major for Q1/Q4, minor for Q2/Q3); arousal by the feature judge's density, "
           "velocity and tempo. Unseeded phrases per meter, then continuations of seeds from outside the "
           "corpus (`models/seeds/`, all four quadrants).", ""]
    rows = []
    for c, cells in listening["unseeded"].items():
        for meter, cell in cells.items():
            if not cell:
                continue
            f = cell["fill"]
            rows.append([f"unseeded {meter}", c, cell["phrases"], *[_pct(cell["valence"][k]) for k, _ in ears],
                         _pct(cell["arousal_feature_judge"]), _num(f["second_half_silent"], 2),
                         _num(f["silence"], 2), _num(f["second_half_onsets"], 2), _pct(cell["single_line"])])
    for c, cell in listening["seeded"].items():
        if "valence" not in cell:
            continue
        f = cell["fill"]
        rows.append(["outside seeds", c, cell["phrases"], *[_pct(cell["valence"][k]) for k, _ in ears],
                     _pct(cell["arousal_feature_judge"]), _num(f["second_half_silent"], 2), _num(f["silence"], 2),
                     _num(f["second_half_onsets"], 2), _pct(cell["single_line"])])
    out += [*_table(["phrases", "candidates", "n", *[name for _, name in ears], "arousal",
                     "bars silent in 2nd half", "time silent", "onsets in 2nd half", "single line"], rows), ""]
    out += ["Seed following (continuations asked the quadrant their seed is judged in), beside the seeds' "
            "own next bars:", ""]
    rows = []
    for c, cell in listening["seeded"].items():
        following = cell.get("following", {})
        for who in ("generated", "real_next_bars"):
            if who == "real_next_bars" and c != next(iter(listening["seeded"])):
                continue
            g = following.get(who)
            if not g:
                continue
            rows.append([who.replace("_", " "), c if who == "generated" else "-", _num(g["density_spearman"], 2),
                         _pct(g["key_kept"]["aarden_essen"]), _pct(g["key_kept"]["temperley_kostka_payne"]),
                         _pct(g["polyphonic_kept"]), _pct(g["melody_kept"])])
    out += [*_table(["continuation", "candidates", "density Spearman", "key kept (Aarden-Essen)",
                     "key kept (TKP)", "polyphonic seed stays polyphonic", "melody stays a melody"], rows), ""]
    out += texture_markdown(listening)
    ms = listening.get("ms_per_bar", {})
    if ms:
        out += ["Time per bar while listening: " + ", ".join(f"{c} candidates {v:.0f} ms" for c, v in ms.items())
                + " (one thread, on the machine the report was made on).", ""]
    return out


def texture_markdown(listening: dict) -> list[str]:
    """Texture and arousal: thin phrases, notes per onset, a bass; onsets and velocity per quadrant."""
    out = ["Texture and arousal: *thin* phrases sound under 1.5 notes on average (where any sound); onsets "
           "per bar and mean velocity per asked quadrant (Q1 happy, Q2 tense, Q3 sad, Q4 calm).", ""]
    rows = []
    cells = [(f"unseeded {m}", c, cell)
             for c, by_meter in listening["unseeded"].items() for m, cell in by_meter.items()]
    cells += [("outside seeds", c, cell) for c, cell in listening["seeded"].items()]
    for name, c, cell in cells:
        if not cell or "texture" not in cell:
            continue
        t, pq = cell["texture"], cell.get("per_quadrant", {})
        rows.append([name, c, _pct(cell["thin"]), _num(t["sounding"], 2), _num(t["notes_per_onset"], 2),
                     _num(t["bass"], 2),
                     " / ".join(_num(pq.get(q, {}).get("onsets_per_bar"), 2) for q in ("Q1", "Q2", "Q3", "Q4")),
                     " / ".join(_num(pq.get(q, {}).get("velocity"), 3) for q in ("Q1", "Q2", "Q3", "Q4"))])
    out += [*_table(["phrases", "candidates", "thin", "notes sounding", "notes per onset", "bars with a bass",
                     "onsets per bar Q1/Q2/Q3/Q4", "velocity Q1/Q2/Q3/Q4"], rows), ""]
    rows = [[c, cell["arousal_by_seed"]["seeds"], _pct(cell["arousal_by_seed"]["busier"]),
             _pct(cell["arousal_by_seed"]["louder"]), _num(cell["arousal_by_seed"]["median_onset_ratio"], 2)]
            for c, cell in listening["seeded"].items() if "arousal_by_seed" in cell]
    if rows:
        out += ["Arousal per outside seed (each seed and transposition): happy and tense continuations against "
                "sad and calm ones.", ""]
        out += [*_table(["candidates", "seeds", ">= 1.3x the onsets", "louder", "median onsets ratio"], rows), ""]
    return out


def markdown(report: dict) -> str:
    m, s, main = report["model"], report["settings"], report["main"]
    mat = report["material"]
    out = [
        "# affetto eval",
        "",
        f"Model `{m['name']}` ({m['path']}), {m['content_hash']}; trained {m['training_step']} steps.",
        f"Seeds: {mat['seeds']} ({mat['seed_phrases']} phrases); held-out phrases: {mat['heldout_phrases']}.",
        f"{main['bars']} bars generated per setting in {main['phrases']} phrases of {s['phrase_bars']} bars; "
        f"each phrase continues a {s['phrase_bars']}-bar held-out seed and is judged as a whole at "
        f"{report['label_tempo']:g} BPM (the tempo training labels use). "
        "Intervals are Wilson 95% over phrases.",
        "Mode following (the context moved to its parallel mode when the valence asked for the other mode, "
        f"as the daemon does): {'on' if s.get('follow_mode', True) else 'off'}.",
        "",
        "## Emotion control (default sampling)",
        "",
        "Accuracy: the share of phrases asked for a quadrant that the judge places in it. "
        "The ceiling is the same judge on real held-out phrases against their training labels; "
        "chance is a judge that ignores the music.",
        "",
        *_table(["judge", "what", "generated", "ceiling (real held-out)", "chance"], _accuracy_rows(report)),
        "",
        "Default sampling per quadrant: " + "; ".join(
            f"{q}: t={v['temperature']:g}, top-p={v['top_p']:g}, top-k={v['top_k']}, "
            f"guidance={v['guidance']:g}, candidates={v.get('candidates', 1)}"
            for q, v in report["default_sampling"].items()) + ".",
        "",
    ]
    if "listening" in report:
        at = out.index("## Emotion control (default sampling)")
        out[at:at] = listening_markdown(report["listening"])
    for judge, label in JUDGES.items():
        if judge in main:
            out += [f"Confusion matrix, {label} (rows: asked, columns: judged):", "",
                    *_confusion_md(main[judge]["confusion"]), ""]
    lj = report.get("learned_judge", {})
    if "skipped" in lj:
        out += [f"Learned judge: skipped ({lj['skipped']}).", ""]
    elif lj:
        t = lj["training"]
        out += [f"Learned judge: {t.get('phrases')} labelled training phrases, {t.get('steps')} steps"
                f"{' (cached)' if t.get('cached') else ''}; weights `{t.get('path')}`.", ""]

    out += ["## Guidance, temperature and candidates", "",
            "Both judges, all four quadrants pooled: 4-quadrant accuracy, then valence and arousal "
            "accuracy. Candidates: bars drawn per bar kept; the engine keeps the one the feature judge "
            "puts nearest the emotion (judged with the bars before it), so with more than one candidate "
            "the feature judge's figures are partly its own choice, and the learned judge is the "
            "independent witness.", ""]
    rows = []
    for kind, key in (("guidance", "guidance"), ("temperature", "temperature"), ("candidates", "candidates")):
        for entry in report.get(kind, []):
            for judge, label in JUDGES.items():
                if judge in entry:
                    e = entry[judge]
                    rows.append([f"{kind} {entry[key]:g}", label, entry["phrases"], _pct(e["accuracy"]),
                                 _pct(e["valence"]), _pct(e["arousal"])])
    out += [*_table(["setting", "judge", "phrases", "accuracy", "valence", "arousal"], rows), ""]

    out += ["## Blended capsules (feature judge)", "",
            "An even blend of two neighbours should keep their shared axis; "
            "the other axis should sit near 0.", ""]
    rows = [[b["name"], b["phrases"], f"{b['axis']} {'+' if b['intended'] > 0 else '-'}",
             _pct(b["feature"]["axis_accuracy"]), _num(b["feature"]["mean_valence"], 2),
             _num(b["feature"]["mean_arousal"], 2), " / ".join(str(c) for c in b["feature"]["judged"])]
            for b in report["blends"]]
    out += [*_table(["capsule", "phrases", "shared axis", "axis kept", "mean valence", "mean arousal",
                     "judged Q1/Q2/Q3/Q4"], rows), ""]

    met = report["metrics"]
    out += ["## Music metrics (no judge)", "",
            "Per quadrant: generated phrases against held-out phrases with the same label "
            "(gap in percent).", ""]
    rows = []
    for name in METRICS:
        row = [name, _num(met["corpus"][name])]
        for q in Quadrant:
            e = met["per_quadrant"][q.name]
            row.append(f"{_num(e['generated'][name])} vs {_num(e['corpus'][name])} "
                       f"({_gap(e['gap_percent'][name])})")
        row.append(_gap(met["overall"]["gap_percent"][name]))
        rows.append(row)
    out += [*_table(["metric", "corpus", *[q.name for q in Quadrant], "gap, all"], rows), ""]

    c = report["coherence"]
    out += ["## Continuation coherence (no judge; Krumhansl key estimate)", "",
            f"- Key kept where the emotion asks for no change of mode: {_pct(c['key_kept'])}",
            f"- Key kept, all continuations of clear-key seeds: {_pct(c['key_kept_all'])}",
            f"- Tonic kept (either mode), all: {_pct(c['tonic_kept_all'])}",
            f"- Seeds with a clear key: {c['clear_seeds']} phrases"]
    ceiling = c.get("ceiling")
    if ceiling and ceiling["pairs"]:
        out += [f"- Ceiling, the real next 4 bars of held-out pieces after a clear-key window: key kept "
                f"{_pct(ceiling['key_kept'])}, tonic kept {_pct(ceiling['tonic_kept'])} "
                f"({ceiling['pairs']} pairs). Real music modulates, and 4 bars are few for a key estimate."]
    out += [""]
    nll = report["nll"]
    out += ["## Held-out likelihood (ONNX Runtime)", ""]
    if "skipped" in nll:
        out += [f"Skipped: {nll['skipped']}.", ""]
    else:
        out += [f"{_num(nll['bits_per_note'], 4)} bits per note "
                f"({_num(nll['bits_per_token'], 4)} bits per token) "
                f"over {nll['sequences']} held-out segments, {nll['tokens']} tokens, {nll['notes']} notes; "
                f"conditioned on {nll['conditioned_on']}.", ""]
    t = report["timing"]
    out += ["## Run", "", f"{t['generated_bars']} bars generated at {_num(t['ms_per_bar'], 3)} ms per bar; "
            f"total {t['total_s']:.0f} s (" + ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in t.items()
                                                     if k.endswith("_s") and k != "total_s") + ").", ""]
    return "\n".join(out)


def plots(report: dict, out: Path) -> list[str]:
    """Confusion matrices (one per judge) and metric bars; returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    written = []
    judges = [j for j in JUDGES if j in report["main"]]
    fig, axes = plt.subplots(1, len(judges), figsize=(4.6 * len(judges), 4.2), squeeze=False)
    for ax, judge in zip(axes[0], judges, strict=True):
        matrix = np.array(report["main"][judge]["confusion"], dtype=float)
        shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        ax.imshow(shares, vmin=0, vmax=1, cmap="Blues")
        for i in range(4):
            for j in range(4):
                ax.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center",
                        color="white" if shares[i, j] > 0.5 else "black")
        ax.set_xticks(range(4), [q.name for q in Quadrant])
        ax.set_yticks(range(4), QUADRANTS)
        ax.set_xlabel("judged")
        ax.set_ylabel("asked")
        acc = report["main"][judge]["accuracy"]["value"]
        ax.set_title(f"{JUDGES[judge]}: {100 * (acc or 0):.1f}%")
    fig.tight_layout()
    fig.savefig(out / "confusion.png", dpi=100)
    plt.close(fig)
    written.append("confusion.png")

    met = report["metrics"]["per_quadrant"]
    fig, axes = plt.subplots(1, len(METRICS), figsize=(2.3 * len(METRICS), 3.4))
    x = np.arange(4)
    for ax, name in zip(axes, METRICS, strict=True):
        gen = [met[q.name]["generated"][name] for q in Quadrant]
        ref = [met[q.name]["corpus"][name] for q in Quadrant]
        gen = [np.nan if v is None else v for v in gen]
        ref = [np.nan if v is None else v for v in ref]
        ax.bar(x - 0.2, ref, 0.4, label="held-out corpus", color="0.65")
        ax.bar(x + 0.2, gen, 0.4, label="generated", color="tab:blue")
        ax.set_xticks(x, [q.name for q in Quadrant])
        ax.set_title(name.replace("_", " "), fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    fig.savefig(out / "metrics.png", dpi=100)
    plt.close(fig)
    written.append("metrics.png")
    return written


def write_report(report: dict, out: str | Path) -> list[Path]:
    """Write report.json, report.md and the plots into ``out``; returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True, allow_nan=False) + "\n",
                                     encoding="utf-8")
    (out / "report.md").write_text(markdown(report) + "\n", encoding="utf-8")
    names = ["report.json", "report.md", *plots(report, out)]
    return [out / n for n in names]
