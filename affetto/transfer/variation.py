"""Small seeded changes that make a phrase a variation of itself (the rule method's ``variation`` mode).

Each pass of a loop in ``variation`` mode is the loop in the knob's emotion
with a few of these changes drawn afresh: the top line's notes off the beat
move to a neighbouring tone of the phrase's scale, a long top-line note is
split into itself and a passing tone towards the next note, and every note's
velocity wanders a little. Bar lines, onsets on the beat, the lower parts and
the phrase's length are kept, so the variation stays near its source. The
same generator state gives the same variation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from affetto.analysis.judge import estimate_key
from affetto.errors import ConfigError
from affetto.music.notes import Note, TimeSignature, sort_notes
from affetto.transfer.rule import EPS, top_line

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
VELOCITY_JITTER = 6  # velocity steps, at most, either way


def scale_of(notes: Sequence[Note]) -> set[int]:
    """Pitch classes of the scale the phrase is in (the project's key estimate)."""
    tonic, mode, _ = estimate_key(np.array([n.pitch for n in notes]), np.array([n.duration for n in notes]))
    return {(tonic + d) % 12 for d in (MAJOR if mode == "major" else MINOR)}


def neighbour(pitch: int, scale: set[int], up: bool) -> int:
    """The next pitch of ``scale`` above (or below) ``pitch``."""
    step = 1 if up else -1
    p = pitch + step
    while p % 12 not in scale and 0 < p < 127:
        p += step
    return min(127, max(0, p))


def vary(notes: Sequence[Note], meter: TimeSignature, rng: np.random.Generator, amount: float = 0.25) -> list[Note]:
    """A variation of ``notes``: about ``amount`` of the top line's eligible notes changed."""
    if not 0.0 <= amount <= 1.0:
        raise ConfigError(f"amount must be in [0, 1], got {amount!r}")
    source = sort_notes(notes)
    if not source:
        return source
    scale = scale_of(source)
    tops = sorted(top_line(source), key=lambda i: source[i].onset)
    after = {i: (tops[k + 1] if k + 1 < len(tops) else None) for k, i in enumerate(tops)}
    bar = meter.beats_per_bar
    out: list[Note] = []
    for i, n in enumerate(source):
        velocity = int(min(127, max(1, n.velocity + rng.integers(-VELOCITY_JITTER, VELOCITY_JITTER + 1))))
        on_beat = abs(n.onset - round(n.onset)) < EPS
        if i in after and rng.random() < amount:
            nxt = after[i]
            if not on_beat:
                up = bool(rng.random() < 0.5)
                out.append(Note(neighbour(n.pitch, scale, up), n.onset, n.duration, velocity, n.channel))
                continue
            in_bar = (n.onset // bar + 1) * bar - n.onset
            if n.duration >= 1.0 - EPS and in_bar >= 1.0 - EPS and nxt is not None:
                half = round(n.duration / 2 * 2) / 2  # on the eighth grid
                target = source[nxt].pitch
                passing = neighbour(n.pitch, scale, target >= n.pitch) if target != n.pitch else n.pitch
                out.append(Note(n.pitch, n.onset, half, velocity, n.channel))
                out.append(Note(passing, n.onset + half, n.duration - half, max(1, velocity - 8), n.channel))
                continue
        out.append(Note(n.pitch, n.onset, n.duration, velocity, n.channel))
    return sort_notes(out)
