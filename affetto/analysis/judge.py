"""The feature judge: a quadrant and valence/arousal from measurable features.

Valence comes from the key mode: the duration-weighted pitch-class histogram
is correlated with the Krumhansl-Kessler major and minor profiles in all 12
transpositions; a better major fit means positive valence. Arousal comes from
onset density (distinct note starts per beat, so a four-voice chord counts
once), mean velocity and tempo.

The judge labels training data that has no labels and later judges whether
generated bars obey the knob; its constants are a frozen config written into
every model file so that labels and verdicts stay comparable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from affetto.analysis.emotion import Quadrant
from affetto.music.notes import Note

# Krumhansl & Kessler (1982) probe-tone profiles, tonic first.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def _profile_matrix(profile: np.ndarray) -> np.ndarray:
    """(12, 12): row k is the profile rotated so its tonic is pitch class k, z-scored."""
    rows = np.stack([np.roll(profile, k) for k in range(12)])
    rows = rows - rows.mean(axis=1, keepdims=True)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


_MAJOR = _profile_matrix(KK_MAJOR)
_MINOR = _profile_matrix(KK_MINOR)


@dataclass(frozen=True)
class JudgeConfig:
    """Calibration of the judge; see :func:`judge` for the formulas."""

    valence_gain: float = 10.0  # tanh gain on (best major r - best minor r)
    density_ref: float = 1.5  # onsets per beat that count as neutral arousal
    density_weight: float = 1.0  # per doubling of density
    velocity_ref: float = 80.0  # neutral mean velocity
    velocity_weight: float = 1.0  # per 32 velocity steps
    tempo_ref: float = 110.0  # neutral tempo in BPM
    tempo_weight: float = 0.5  # per doubling of tempo
    max_duration: float = 2.0  # beats a note may weigh in the key histogram

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Judgement:
    valence: float  # [-1, 1]
    arousal: float  # [-1, 1]
    key: str  # e.g. "A minor"
    key_clarity: float  # correlation of the best key, [-1, 1]
    density: float  # onsets per beat
    velocity: float  # mean velocity
    tempo: float

    @property
    def quadrant(self) -> Quadrant:
        return Quadrant.from_va(self.valence, self.arousal)


def pitch_class_histogram(pitch: np.ndarray, duration: np.ndarray, max_duration: float = 2.0) -> np.ndarray:
    """Duration-weighted histogram of pitch classes (durations capped)."""
    weights = np.minimum(np.asarray(duration, dtype=float), max_duration)
    return np.bincount(np.asarray(pitch, dtype=np.int64) % 12, weights=weights, minlength=12)


def key_correlations(hist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation of a histogram with the 12 major and 12 minor keys."""
    h = hist - hist.mean()
    norm = np.linalg.norm(h)
    if norm == 0:
        return np.zeros(12), np.zeros(12)
    h = h / norm
    return _MAJOR @ h, _MINOR @ h


def estimate_key(pitch: np.ndarray, duration: np.ndarray) -> tuple[int, str, float]:
    """(tonic pitch class, "major"/"minor", correlation) of the best-fitting key."""
    major, minor = key_correlations(pitch_class_histogram(pitch, duration))
    if major.max() >= minor.max():
        return int(major.argmax()), "major", float(major.max())
    return int(minor.argmax()), "minor", float(minor.max())


MAJOR_TO_MINOR = (4, 9, 11)  # scale degrees (semitones above the tonic) lowered by a semitone
MINOR_TO_MAJOR = (3, 8, 10)  # raised by a semitone


def change_mode(notes: np.ndarray, tonic: int, mode: str) -> np.ndarray:
    """Major -> parallel natural minor, or minor -> parallel major.

    ``notes`` is an (N, >=3) array whose column 2 holds MIDI pitches (the
    step arrays of :mod:`affetto.tokens.vocab`); a copy is returned.
    """
    out = notes.copy()
    degree = (out[:, 2] - tonic) % 12
    if mode == "major":
        out[np.isin(degree, MAJOR_TO_MINOR), 2] -= 1
    else:
        out[np.isin(degree, MINOR_TO_MAJOR), 2] += 1
    return out


def judge(
    notes: Sequence[Note],
    beats: float,
    tempo: float = 120.0,
    config: JudgeConfig | None = None,
) -> Judgement:
    """Judge a phrase of ``beats`` beats played at ``tempo`` BPM; see :func:`judge_arrays`."""
    return judge_arrays(
        np.array([n.pitch for n in notes], dtype=np.int64),
        np.array([n.onset for n in notes], dtype=float),
        np.array([n.duration for n in notes], dtype=float),
        np.array([n.velocity for n in notes], dtype=float),
        beats,
        tempo,
        config,
    )


def judge_arrays(
    pitch: np.ndarray,
    onset: np.ndarray,
    duration: np.ndarray,
    velocity: np.ndarray,
    beats: float,
    tempo: float = 120.0,
    config: JudgeConfig | None = None,
) -> Judgement:
    """Judge notes given as arrays (onsets and durations in beats).

    valence = tanh(gain * (best major r - best minor r))
    arousal = tanh(dw*log2(density/dref) + vw*(velocity-vref)/32 + tw*log2(tempo/tref))

    Density counts distinct onsets per beat. An empty phrase has valence 0 and
    the lowest arousal.
    """
    cfg = config or JudgeConfig()
    if not beats > 0:
        raise ValueError(f"beats must be > 0, got {beats}")
    if len(pitch) == 0:
        return Judgement(0.0, -1.0, "C major", 0.0, 0.0, 0.0, float(tempo))
    major, minor = key_correlations(pitch_class_histogram(pitch, duration, cfg.max_duration))
    if major.max() >= minor.max():
        tonic, mode, clarity = int(major.argmax()), "major", float(major.max())
    else:
        tonic, mode, clarity = int(minor.argmax()), "minor", float(minor.max())
    valence = math.tanh(cfg.valence_gain * float(major.max() - minor.max()))
    density = len(np.unique(np.round(np.asarray(onset) * 48))) / beats
    mean_velocity = float(np.mean(velocity))
    score = (
        cfg.density_weight * math.log2(max(density, 1e-3) / cfg.density_ref)
        + cfg.velocity_weight * (mean_velocity - cfg.velocity_ref) / 32.0
        + cfg.tempo_weight * math.log2(max(tempo, 1.0) / cfg.tempo_ref)
    )
    return Judgement(
        valence=valence,
        arousal=math.tanh(score),
        key=f"{PITCH_NAMES[tonic]} {mode}",
        key_clarity=clarity,
        density=density,
        velocity=mean_velocity,
        tempo=float(tempo),
    )
