"""Recognise a player's mood from a phrase of notes, with the learned recogniser (torch-free).

The recogniser (``affetto-mood.onnx``, family ``mood``; trained by
:mod:`affetto.models.mood`) reads what a phrase of one to four bars sounds
like, as two inputs this module computes:

- ``roll [B, C, T]``: one column per grid step (4 per beat) of the phrase's
  bars, with the twelve pitch classes sounding, the onsets there, their mean
  velocity, the notes sounding, their register, and where the beats and bar
  lines fall; ``mask [B, T]`` says which steps are the phrase's (1) or
  padding (0);
- ``summary [B, S]``: the phrase's onsets per beat, its loudness and the
  spread of its dynamics, notes per onset, note lengths, register, range and
  how much of it is silent.

It answers the four quadrant logits and a valence and arousal in [-1, 1].
Valence is the mode it hears (it learned key templates over the pitch-class
histogram); arousal the player's density and dynamics (velocity matters: a
soft phrase is calmer than the same notes played hard). Tempo is not heard:
a phrase is read in beats.

:func:`recognise` answers a :class:`Mood`; it runs in well under a millisecond
per phrase on one thread (``bench/bench_follow.py`` measures it).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.errors import ModelFileError
from affetto.manifest import read_manifest
from affetto.music.notes import Note, TimeSignature

FAMILY = "mood"
MODEL_NAME = "affetto-mood.onnx"
FEATURES_VERSION = 1
STEPS_PER_BEAT = 4
MAX_BEATS = 16.0  # a longer phrase is read from its last bars that fit in this many beats
PITCH_CLASSES = 12
ROLL_CHANNELS = PITCH_CLASSES + 6  # pitch classes, onsets, onset velocity, sounding, register, beat, bar line
SUMMARY_SIZE = 8
INPUTS = ("roll", "mask", "summary")
OUTPUTS = ("logits", "va")
DENSITY_REF = 1.5  # onsets per beat at the middle of the summary's density (the feature judge's)


@dataclass(frozen=True)
class Mood:
    """What a phrase sounds like: its quadrant, how sure, and where on the valence/arousal plane."""

    quadrant: str  # "Q1".."Q4"
    confidence: float  # the recogniser's probability of that quadrant, 0..1
    valence: float  # -1..1: minor .. major
    arousal: float  # -1..1: soft and sparse .. loud and busy
    probabilities: tuple[float, float, float, float] = (0.25, 0.25, 0.25, 0.25)  # over Q1..Q4
    notes: int = 0  # notes it was judged on
    bars: int = 0  # bars it was judged on

    @property
    def word(self) -> str:
        """happy, tense, sad or calm."""
        return Quadrant[self.quadrant].mood

    @property
    def capsule(self) -> Capsule:
        """The probabilities as a capsule (conditioning weights over Q1..Q4)."""
        return Capsule(self.probabilities)

    def __str__(self) -> str:
        return (f"{self.quadrant} {self.word} ({100 * self.confidence:.0f}%; valence {self.valence:+.2f}, "
                f"arousal {self.arousal:+.2f}; {self.notes} notes in {self.bars} bar(s))")


# ---- features ----------------------------------------------------------------------------
def phrase_arrays(pitch: np.ndarray, onset: np.ndarray, duration: np.ndarray, velocity: np.ndarray,
                  bars: int, bar_beats: float) -> tuple[np.ndarray, np.ndarray]:
    """(roll (C, T) float32, summary (S,) float32) of notes given as arrays, onsets in beats from the
    phrase's first bar line, ``bars`` bars of ``bar_beats`` beats. Notes must lie in those bars."""
    beats = bars * bar_beats
    steps = max(1, round(beats * STEPS_PER_BEAT))
    roll = np.zeros((ROLL_CHANNELS, steps), np.float32)
    grid = np.arange(steps)
    roll[PITCH_CLASSES + 4] = (grid % STEPS_PER_BEAT == 0).astype(np.float32)
    bar_steps = max(1, round(bar_beats * STEPS_PER_BEAT))
    roll[PITCH_CLASSES + 5] = (grid % bar_steps == 0).astype(np.float32)
    n = len(pitch)
    summary = np.zeros(SUMMARY_SIZE, np.float32)
    if n == 0:
        summary[0] = math.log2(1e-2 / DENSITY_REF)
        summary[7] = 1.0
        return roll, summary
    pitch = np.asarray(pitch, np.int64)
    velocity = np.asarray(velocity, np.float64)
    on = np.clip(np.round(np.asarray(onset, np.float64) * STEPS_PER_BEAT).astype(np.int64), 0, steps - 1)
    off = np.clip(np.round((np.asarray(onset) + np.asarray(duration)) * STEPS_PER_BEAT).astype(np.int64),
                  on + 1, steps)
    pcs = pitch % PITCH_CLASSES
    sounding = np.zeros(steps, np.float32)
    register = np.zeros(steps, np.float32)
    for k in range(n):
        roll[pcs[k], on[k]:off[k]] = 1.0
        sounding[on[k]:off[k]] += 1.0
        register[on[k]:off[k]] += pitch[k]
    onsets = np.bincount(on, minlength=steps).astype(np.float32)
    loud = np.bincount(on, weights=velocity, minlength=steps).astype(np.float32)
    roll[PITCH_CLASSES] = np.minimum(onsets, 4.0) / 4.0
    roll[PITCH_CLASSES + 1] = np.divide(loud, np.maximum(onsets, 1.0)) / 127.0
    roll[PITCH_CLASSES + 2] = np.minimum(sounding, 4.0) / 4.0
    roll[PITCH_CLASSES + 3] = np.where(sounding > 0, (register / np.maximum(sounding, 1.0) - 60.0) / 24.0, 0.0)
    distinct = len(np.unique(on))
    summary[0] = math.log2(max(distinct / beats, 1e-2) / DENSITY_REF)
    summary[1] = (float(velocity.mean()) - 80.0) / 32.0
    summary[2] = float(velocity.std()) / 32.0
    summary[3] = math.log2(n / distinct)
    summary[4] = math.log2(float(np.minimum(np.asarray(duration, np.float64), 4.0).mean()) + 1e-3)
    summary[5] = (float(pitch.mean()) - 60.0) / 12.0
    summary[6] = float(pitch.max() - pitch.min()) / 24.0
    summary[7] = float((sounding == 0).mean())
    return roll, summary


def phrase_window(notes: Sequence[Note], meter: TimeSignature) -> tuple[list[Note], int]:
    """The notes of a phrase's last bars that fit in ``MAX_BEATS`` (at least one bar), onsets from the
    first of those bars' line, and how many bars that is (from the first bar with a note; 0 for no notes)."""
    if not notes:
        return [], 0
    length = meter.beats_per_bar
    last_bar = int(max(n.onset for n in notes) // length)
    keep = max(1, int(MAX_BEATS // length + 1e-9))
    first_bar = max(int(min(n.onset for n in notes) // length), last_bar - keep + 1)
    origin = first_bar * length
    kept = [Note(n.pitch, n.onset - origin, n.duration, n.velocity, n.channel) for n in notes if n.onset >= origin]
    return kept, last_bar - first_bar + 1


def phrase_features(notes: Sequence[Note], meter: TimeSignature) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(roll (C, T), summary (S,), notes, bars) of a phrase's window: see :func:`phrase_arrays` and
    :func:`phrase_window`."""
    kept, bars = phrase_window(notes, meter)
    roll, summary = phrase_arrays(
        np.array([n.pitch for n in kept], np.int64),
        np.array([n.onset for n in kept], np.float64),
        np.array([n.duration for n in kept], np.float64),
        np.array([n.velocity for n in kept], np.float64),
        max(bars, 1), meter.beats_per_bar)
    return roll, summary, len(kept), bars


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max())
    return z / z.sum()


# ---- the recogniser ------------------------------------------------------------------------
def default_mood_path() -> Path:
    from affetto.runtime.assets import asset_path

    return asset_path(MODEL_NAME)


class MoodRecogniser:
    """The mood model in an ONNX Runtime session (one intra-op thread); call it on a phrase.

    Its constructor is the ``mood`` family's loader (:mod:`affetto.runtime.families`).
    """

    def __init__(self, path: str | Path | None = None, *, manifest: dict | None = None, threads: int = 1,
                 **_options: Any) -> None:
        from affetto.runtime.session import open_session  # lazy: ONNX Runtime loads here

        self.path = Path(path) if path is not None else default_mood_path()
        self.manifest = manifest if manifest is not None else read_manifest(self.path)
        if self.manifest.get("family") != FAMILY:
            raise ModelFileError(f"{self.path}: not a mood model (family {self.manifest.get('family')!r})")
        features = self.manifest.get("features", {})
        if features.get("version") != FEATURES_VERSION or features.get("roll_channels") != ROLL_CHANNELS:
            raise ModelFileError(f"{self.path}: made for mood features {features}, this affetto reads "
                                 f"version {FEATURES_VERSION} with {ROLL_CHANNELS} roll channels")
        self.session = open_session(self.path, threads=threads, provider="cpu")

    def run(self, roll: np.ndarray, mask: np.ndarray, summary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Batched: (logits (B, 4), va (B, 2)) of features ``roll (B, C, T)``, ``mask (B, T)``, ``summary (B, S)``."""
        logits, va = self.session.run(list(OUTPUTS), {"roll": roll.astype(np.float32),
                                                      "mask": mask.astype(np.float32),
                                                      "summary": summary.astype(np.float32)})
        return logits, va

    def __call__(self, notes: Sequence[Note], meter: TimeSignature) -> Mood:
        notes = _checked(notes, meter)
        if not notes:
            return Mood("Q4", 0.0, 0.0, -1.0, notes=0, bars=0)  # silence: no mode, the lowest arousal
        roll, summary, heard, bars = phrase_features(notes, meter)
        logits, va = self.run(roll[None], np.ones((1, roll.shape[1]), np.float32), summary[None])
        probs = _softmax(logits[0].astype(np.float64))
        best = int(probs.argmax())
        p = (float(probs[0]), float(probs[1]), float(probs[2]), float(probs[3]))
        return Mood(Quadrant(best).name, p[best], float(np.clip(va[0, 0], -1, 1)), float(np.clip(va[0, 1], -1, 1)),
                    p, heard, bars)


def _checked(notes: Sequence[Note], meter: TimeSignature) -> list[Note]:
    if not isinstance(meter, TimeSignature):
        raise ValueError(f"meter must be a TimeSignature, got {meter!r}")
    if isinstance(notes, (str, bytes)) or not isinstance(notes, Sequence):
        raise ValueError(f"notes must be a sequence of Note, got {type(notes).__name__}")
    for i, n in enumerate(notes):
        if not isinstance(n, Note):
            raise ValueError(f"notes[{i}] must be a Note, got {type(n).__name__}")
    return list(notes)


_shipped: MoodRecogniser | None = None
_shipped_lock = threading.Lock()


def shipped_recogniser() -> MoodRecogniser:
    """The shipped recogniser, loaded once (the first call pays the session's start)."""
    global _shipped
    with _shipped_lock:
        if _shipped is None:
            _shipped = MoodRecogniser()
        return _shipped


def recognise(notes: Sequence[Note], meter: TimeSignature) -> Mood:
    """The mood of a phrase (its last bars that fit in 16 beats) by the shipped recogniser."""
    return shipped_recogniser()(notes, meter)
