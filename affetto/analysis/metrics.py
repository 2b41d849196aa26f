"""Music metrics that compare generated bars with a corpus (numpy only).

The definitions follow muspy's (``muspy.metrics``; Dong et al. 2020), which is
unmaintained, so they are written out here. Each metric takes notes in
quarter-note beats and returns a float; a metric that is undefined for its
input (no notes, fewer than two bars for groove) is NaN rather than a made-up
number, and :func:`metric_table` averages over the phrases where it is defined.

Where muspy is ambiguous or has an off-by-one, this module chooses, and says so:

* The length of a phrase is a whole number of bars: ``bars`` when given (a
  generated phrase knows its length), otherwise the bars needed to hold every
  onset (as :func:`affetto.music.notes.bar_count`). Notes may ring past the end;
  onsets may not.
* A beat (a quarter note, as in muspy) is empty when no note overlaps it:
  ``onset < beat end`` and ``end > beat start``; a note that ends exactly on
  a beat does not fill it (muspy counts it).
* Groove onset vectors put an onset in the slot it falls in (floor, as
  muspy's integer ``divmod``), ``resolution`` slots per bar.
* Pitch range is NaN for no notes (muspy returns 0), like the other pitch
  metrics, so an empty phrase does not pull an average towards zero range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real

import numpy as np

from affetto.music.notes import Grid, Note, TimeSignature

DEFAULT_GRID = Grid()  # frozen, so safe to share as a default
EPS = 1e-6  # beats; absorbs float error in onsets such as triplets (1/3)

# Pitch classes of C major and C natural minor; other keys are rotations.
MAJOR_SCALE = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], dtype=bool)
MINOR_SCALE = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0], dtype=bool)
# (24, 12): rows 0..11 the major scales on C..B, rows 12..23 the minor ones.
SCALES = np.stack([np.roll(s, k) for s in (MAJOR_SCALE, MINOR_SCALE) for k in range(12)])

METRICS = (
    "pitch_class_entropy",
    "scale_consistency",
    "groove_consistency",
    "empty_beat_rate",
    "polyphony",
    "pitch_range",
    "notes_per_bar",
)


# ---- validation ------------------------------------------------------------------
def _check_notes(notes: Sequence[Note]) -> Sequence[Note]:
    if isinstance(notes, (str, bytes)) or not isinstance(notes, Sequence):
        raise ValueError(f"notes must be a sequence of Note, got {type(notes).__name__}")
    for i, n in enumerate(notes):
        if not isinstance(n, Note):
            raise ValueError(f"notes[{i}] must be a Note, got {type(n).__name__}")
    return notes


def _check_meter(meter: TimeSignature) -> TimeSignature:
    if not isinstance(meter, TimeSignature):
        raise ValueError(f"meter must be a TimeSignature, got {meter!r}")
    return meter


def _check_grid(grid: Grid) -> Grid:
    if not isinstance(grid, Grid):
        raise ValueError(f"grid must be a Grid, got {grid!r}")
    return grid


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def _onsets(notes: Sequence[Note]) -> np.ndarray:
    return np.array([n.onset for n in notes], dtype=float)


def phrase_bars(notes: Sequence[Note], meter: TimeSignature, bars: int | None = None) -> int:
    """Length of a phrase in bars: ``bars``, or the bars holding every onset (0 for none).

    Raises ValueError when a note starts at or after the end of ``bars`` bars.
    """
    _check_notes(notes)
    length = _check_meter(meter).beats_per_bar
    onset_bars = np.floor((_onsets(notes) + EPS) / length).astype(np.int64)
    if bars is None:
        return int(onset_bars.max()) + 1 if len(notes) else 0
    bars = _check_count("bars", bars)
    late = np.flatnonzero(onset_bars >= bars)
    if len(late):
        onset = notes[int(late[0])].onset
        raise ValueError(
            f"a note starts at beat {onset:g}, beyond {bars} bars of {meter} ({bars * length:g} beats)"
        )
    return bars


# ---- pitch -----------------------------------------------------------------------
def _pitch_classes(notes: Sequence[Note]) -> np.ndarray:
    return np.array([n.pitch % 12 for n in _check_notes(notes)], dtype=np.int64)


def pitch_class_entropy(notes: Sequence[Note]) -> float:
    """Shannon entropy in bits of the pitch-class histogram (counts of notes); NaN for none.

    0 for one pitch class, log2(12) ~ 3.585 when all twelve are equally common.
    """
    pcs = _pitch_classes(notes)
    if len(pcs) == 0:
        return math.nan
    p = np.bincount(pcs, minlength=12) / len(pcs)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0 turns -0.0 into 0.0


def scale_consistency(notes: Sequence[Note]) -> float:
    """Largest fraction of notes inside one of the 12 major or 12 natural minor scales; NaN for none.

    Each note counts once, whatever its duration. Since natural minor shares
    its pitch classes with the relative major, this equals the best major fit.
    """
    pcs = _pitch_classes(notes)
    if len(pcs) == 0:
        return math.nan
    counts = np.bincount(pcs, minlength=12)
    return float((SCALES @ counts).max() / len(pcs))


def pitch_range(notes: Sequence[Note]) -> float:
    """Highest minus lowest pitch in semitones; NaN for no notes (muspy returns 0)."""
    pitches = [n.pitch for n in _check_notes(notes)]
    if not pitches:
        return math.nan
    return float(max(pitches) - min(pitches))


# ---- rhythm ----------------------------------------------------------------------
def groove_consistency(
    notes: Sequence[Note],
    meter: TimeSignature,
    *,
    resolution: int | None = None,
    bars: int | None = None,
    grid: Grid = DEFAULT_GRID,
) -> float:
    """1 - mean Hamming distance between onset vectors of neighbouring bars / ``resolution``.

    Each bar becomes a binary vector of ``resolution`` slots (default: the
    grid's steps per bar), 1 where some note starts. 1.0 means every bar has
    the same rhythm. NaN for fewer than two bars, where there is no neighbour.
    """
    n_bars = phrase_bars(notes, meter, bars)
    if resolution is None:
        resolution = _check_grid(grid).steps_per_bar(meter)
    resolution = _check_count("resolution", resolution)
    if n_bars < 2:
        return math.nan
    slots = np.floor((_onsets(notes) + EPS) * resolution / meter.beats_per_bar).astype(np.int64)
    slots = np.minimum(slots, n_bars * resolution - 1)  # float error at the last bar line
    patterns = np.zeros((n_bars, resolution), dtype=bool)  # (bars, resolution)
    patterns[slots // resolution, slots % resolution] = True
    distance = np.count_nonzero(patterns[:-1] != patterns[1:])
    return float(1.0 - distance / (resolution * (n_bars - 1)))


def empty_beat_rate(notes: Sequence[Note], meter: TimeSignature, *, bars: int | None = None) -> float:
    """Fraction of quarter-note beats of the phrase that no note overlaps; NaN for zero bars.

    A meter whose bar is not a whole number of quarters (7/8) ends on a
    shorter last beat, which counts as a beat.
    """
    n_bars = phrase_bars(notes, meter, bars)
    if n_bars == 0:
        return math.nan
    total = n_bars * meter.beats_per_bar
    n_beats = math.ceil(total - EPS)
    starts = np.floor(_onsets(notes) + EPS).astype(np.int64)
    ends = np.ceil(np.array([n.end for n in notes], dtype=float) - EPS).astype(np.int64)
    ends = np.clip(ends, starts, n_beats)  # notes may ring past the phrase
    cover = np.zeros(n_beats + 1, dtype=np.int64)
    np.add.at(cover, starts, 1)  # a note fills beats starts..ends-1
    np.add.at(cover, ends, -1)
    sounding = np.cumsum(cover)[:n_beats] > 0
    return float(np.count_nonzero(~sounding) / n_beats)


def polyphony(notes: Sequence[Note], *, grid: Grid = DEFAULT_GRID) -> float:
    """Mean number of distinct pitches sounding, over grid steps where at least one sounds.

    Notes are snapped to ``grid`` as the vocabulary does (a note lasts at
    least one step); a pitch doubled on two channels counts once. NaN for none.
    """
    _check_notes(notes)
    _check_grid(grid)
    if not notes:
        return math.nan
    on = np.array([grid.to_steps(n.onset) for n in notes])
    off = np.array([grid.to_steps(n.end) for n in notes])
    return step_polyphony(on, off - on, np.array([n.pitch for n in notes]))


def step_polyphony(onset: np.ndarray, length: np.ndarray, pitch: np.ndarray) -> float:
    """:func:`polyphony` of notes already on the grid: onset and length in steps (at least one), MIDI
    pitch; NaN for none."""
    if len(onset) == 0:
        return math.nan
    off = np.maximum(onset + length, onset + 1)
    roll = np.zeros((int(off.max()), 128), dtype=bool)  # (steps, pitches)
    for p, a, b in zip(pitch.tolist(), onset.tolist(), off.tolist(), strict=True):
        roll[a:b, p] = True
    per_step = roll.sum(axis=1)
    return float(per_step.sum() / np.count_nonzero(per_step))


def notes_per_bar(notes: Sequence[Note], meter: TimeSignature, *, bars: int | None = None) -> float:
    """Notes divided by the phrase's bars (chord notes count singly); NaN for zero bars."""
    n_bars = phrase_bars(notes, meter, bars)
    if n_bars == 0:
        return math.nan
    return len(notes) / n_bars


# ---- filled bars -----------------------------------------------------------------------
def sounding_steps(notes: Sequence[Note], n_steps: int, *, grid: Grid = DEFAULT_GRID) -> np.ndarray:
    """(n_steps,) bool: whether any note sounds during each grid step (notes ringing past the end are cut)."""
    cover = np.zeros(n_steps + 1, dtype=np.int64)
    for n in notes:
        a = min(grid.to_steps(n.onset), n_steps)
        b = min(max(grid.to_steps(n.end), a + 1), n_steps)
        cover[a] += 1
        cover[b] -= 1
    return np.cumsum(cover)[:n_steps] > 0


def fill_stats(notes: Sequence[Note], meter: TimeSignature, *, bars: int, grid: Grid = DEFAULT_GRID) -> dict:
    """How a phrase fills its bars: the complaint "half of every bar is silent", measured.

    - ``second_half_silent``: share of bars in which nothing sounds during the whole second half;
    - ``silence``: share of the phrase's grid steps in which nothing sounds;
    - ``second_half_onsets``: share of onsets in the second half of their bar (NaN for no notes).
    """
    _check_notes(notes)
    _check_count("bars", bars)
    bar_steps = grid.steps_per_bar(meter)
    sounding = sounding_steps(notes, bars * bar_steps, grid=grid).reshape(bars, bar_steps)
    half = bar_steps // 2
    onsets = np.array([grid.to_steps(n.onset) % bar_steps for n in notes], dtype=np.int64)
    return {
        "second_half_silent": float(np.mean(~sounding[:, half:].any(axis=1))) if bars else math.nan,
        "silence": float(np.mean(~sounding)) if bars else math.nan,
        "second_half_onsets": float(np.mean(onsets >= half)) if len(onsets) else math.nan,
    }


# ---- tables ----------------------------------------------------------------------
def phrase_metrics(
    notes: Sequence[Note], meter: TimeSignature, *, bars: int | None = None, grid: Grid = DEFAULT_GRID
) -> dict[str, float]:
    """Every metric of :data:`METRICS` for one phrase."""
    return {
        "pitch_class_entropy": pitch_class_entropy(notes),
        "scale_consistency": scale_consistency(notes),
        "groove_consistency": groove_consistency(notes, meter, bars=bars, grid=grid),
        "empty_beat_rate": empty_beat_rate(notes, meter, bars=bars),
        "polyphony": polyphony(notes, grid=grid),
        "pitch_range": pitch_range(notes),
        "notes_per_bar": notes_per_bar(notes, meter, bars=bars),
    }


def metric_table(
    notes_per_phrase: Sequence[Sequence[Note]],
    meter: TimeSignature,
    *,
    bars: int | None = None,
    grid: Grid = DEFAULT_GRID,
) -> dict[str, float]:
    """Each metric averaged over phrases, skipping phrases where it is NaN (NaN if all are).

    ``bars`` fixes every phrase's length (generated phrases of known length);
    without it each phrase is as long as its onsets need.
    """
    if isinstance(notes_per_phrase, (str, bytes)) or not isinstance(notes_per_phrase, Sequence):
        kind = type(notes_per_phrase).__name__
        raise ValueError(f"notes_per_phrase must be a sequence of phrases, got {kind}")
    if len(notes_per_phrase) == 0:
        raise ValueError("notes_per_phrase is empty: need at least one phrase")
    rows = [phrase_metrics(p, meter, bars=bars, grid=grid) for p in notes_per_phrase]
    table = {}
    for name in METRICS:
        values = np.array([r[name] for r in rows], dtype=float)
        defined = values[~np.isnan(values)]
        table[name] = float(defined.mean()) if len(defined) else math.nan
    return table


def gap_percent(a: float, b: float) -> float:
    """Relative gap of ``a`` from the reference ``b``: 100*|a-b|/|b|.

    0 when both are 0, infinity when only ``b`` is 0, NaN when either is NaN.
    """
    for name, x in (("a", a), ("b", b)):
        if isinstance(x, bool) or not isinstance(x, Real):
            raise ValueError(f"{name} must be a real number, got {x!r}")
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.nan
    if b == 0:
        return 0.0 if a == 0 else math.inf
    return 100.0 * abs(a - b) / abs(b)
