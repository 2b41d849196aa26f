"""The ensemble under melodies from outside the corpus, heard by ears it never chooses with.

The eight outside seeds (``models/seeds/``, written for this project) are not
chorales: a waltz, a pop pattern, a lullaby, a lament... The top line of each
one's first four bars (the note the ensemble takes as its melody) is
harmonised in each quadrant, as ``affetto harmonise`` does, and the written
voices alone (alto, tenor, bass, without the melody) are given to music21's
Aarden-Essen and Temperley-Kostka-Payne key finders, which neither trained nor
choose anything here. A sad or tense harmonisation should be heard darker than
a happy or calm one of the same melody: *darker* here means that the key
finder hears it in minor where it hears the bright one in major, or, both
heard alike, that it has more minor triads on the beats. Beside them: the
share of beats that are minor triads, how many of the voices' notes differ
between happy and sad (pitch or onset), and consonance against the melody.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.analysis.voicing import chord_shares, consonance, lines
from affetto.ensemble.engine import Ensemble, bar_steps, melody_roll, roll_notes
from affetto.models.evaluation.listening import ESTIMATORS, independent_keys
from affetto.models.outside_seeds import SEED_FOLDER
from affetto.music.midifile import read_midi

BARS = 4
MOODS = (("happy", Quadrant.Q1), ("tense", Quadrant.Q2), ("sad", Quadrant.Q3), ("calm", Quadrant.Q4))
DARK_PAIRS = (("sad", "happy"), ("tense", "happy"), ("sad", "calm"), ("tense", "calm"))


def harmonise_outside(model: str | Path | None = None, *, candidates: int | None = None, seed: int = 0,
                      voice_leading: bool | None = None, folder: Path = SEED_FOLDER) -> dict[str, Any]:
    """Per seed and mood: minor/major triad shares and the mode each estimator hears in the voices."""
    ens = Ensemble(model, voice_leading=voice_leading)
    per_seed: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(folder).glob("*.mid")):
        phrase = read_midi(path)
        try:
            per_bar = bar_steps(phrase.meter)
        except ValueError:
            continue  # a meter the ensemble does not write
        length = phrase.meter.beats_per_bar
        tune = [n for n in phrase.notes if n.onset < BARS * length]
        roll = melody_roll(tune, phrase.meter, BARS, ens.spec)
        triple = np.array([1.0 if per_bar == 12 else 0.0])
        moods: dict[str, Any] = {}
        written = {}
        for name, quadrant in MOODS:
            rolls = ens.phrases(roll, BARS, phrase.meter, Capsule.of(quadrant), seed=seed, candidates=candidates)
            line = lines(rolls[None], triple, ens.spec.low)[0]
            minor, major, _ = chord_shares(line)
            good, total = consonance(line)
            voices = [n for part in (1, 2, 3) for n in roll_notes(rolls[part], phrase.meter, part, ens.spec)]
            written[name] = {(n.channel, round(n.onset * 4), n.pitch) for n in voices}
            heard = independent_keys(voices)
            moods[name] = {"minor_triads": minor, "major_triads": major, "consonance": good / max(total, 1),
                           "voices_heard": {k: (v[1] if v else None) for k, v in heard.items()}}
        a, b = written["happy"], written["sad"]
        moods["happy_sad_notes_differ"] = 1 - len(a & b) / max(len(a | b), 1)
        per_seed[path.stem] = moods
    n = len(per_seed)
    summary: dict[str, Any] = {
        "seeds": n,
        "sad_more_minor_triads_than_happy": sum(
            s["sad"]["minor_triads"] > s["happy"]["minor_triads"] for s in per_seed.values()) / max(n, 1),
        "happy_sad_notes_differ": float(np.mean([s["happy_sad_notes_differ"] for s in per_seed.values()]))
        if n else 0.0,
        "consonance": float(np.mean([s[m]["consonance"] for s in per_seed.values() for m, _ in MOODS])) if n else 0.0,
    }
    for estimator in ESTIMATORS:
        summary[f"voices_minor_{estimator}"] = {
            mood: sum(s[mood]["voices_heard"][estimator] == "minor" for s in per_seed.values()) / max(n, 1)
            for mood, _ in MOODS}
        pairs = [darker(s[dark], s[bright], estimator) for s in per_seed.values() for dark, bright in DARK_PAIRS]
        summary[f"darker_{estimator}"] = sum(pairs) / max(len(pairs), 1)
    return {"per_seed": per_seed, "summary": summary}


def darker(dark: dict, bright: dict, estimator: str) -> bool:
    """Is ``dark`` heard darker than ``bright``: minor against major, or, heard alike, more minor triads?"""
    a, b = dark["voices_heard"][estimator], bright["voices_heard"][estimator]
    if a != b:
        return a == "minor" and b == "major"
    return dark["minor_triads"] > bright["minor_triads"]


def markdown(result: dict[str, Any]) -> str:
    s = result["summary"]
    rows = [f"outside melodies ({s['seeds']} seeds, first {BARS} bars' top line), voices alone:", "",
            "| seed | minor triads happy / sad | voices heard (happy) | voices heard (sad) |", "|---|---|---|---|"]
    for name, moods in result["per_seed"].items():
        heard = {m: ", ".join(f"{k.replace('_', '-')} {v}" for k, v in moods[m]["voices_heard"].items())
                 for m in ("happy", "sad")}
        rows.append(f"| {name} | {moods['happy']['minor_triads']:.2f} / {moods['sad']['minor_triads']:.2f} | "
                    f"{heard['happy']} | {heard['sad']} |")
    rows.append("")
    rows.append("sad and tense heard darker than happy and calm (each pair, each seed): "
                + ", ".join(f"{k.replace('darker_', '').replace('_', '-')} {v:.0%}"
                            for k, v in s.items() if k.startswith("darker_"))
                + f"; happy and sad voices differ in {s['happy_sad_notes_differ']:.0%} of their notes; "
                f"consonance against the melody {s['consonance']:.3f}")
    rows.append(f"sad with more minor triads than happy: {s['sad_more_minor_triads_than_happy']:.0%} of seeds; "
                + "; ".join(f"voices heard minor by {k.replace('voices_minor_', '').replace('_', '-')}: "
                            f"happy {v['happy']:.0%}, sad {v['sad']:.0%}"
                            for k, v in s.items() if k.startswith("voices_minor_")))
    return "\n".join(rows)
