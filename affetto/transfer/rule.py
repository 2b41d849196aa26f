"""The rule baseline: the player's phrase in another emotion by parallel mode, dynamics and touch.

Valence is carried by the mode. The source's key is estimated with the
project's estimator (:func:`affetto.analysis.judge.key_correlations`, the
Krumhansl-Kessler profiles); each pitch's scale degree is then mapped into
the parallel mode of the target valence: major to natural minor (the third,
sixth and seventh lowered; a seventh that resolves up to the tonic stays
raised, as in harmonic minor), minor to major (the three raised). Chromatic
notes, and diatonic degrees the two modes share, keep their pitch. A key is
often unclear between a major key, its relative minor and its neighbours, so
the phrase is read in the best three keys of the mode it leaves, and the
reading whose result fits the target mode best is kept (a reading whose tonic
is the bass of the phrase's first or last onset is preferred a little); see
:func:`choose_key`. A phrase the project's judge hears clearly in the target
mode already keeps its pitches.

Arousal is carried by dynamics and articulation, relative to the source:
velocity scaled by ``2 ** (velocity_octaves * a)`` (``a`` = the capsule's
arousal times ``strength``); high arousal shortens notes towards staccato,
low arousal lengthens them towards the next onset of the same part (legato,
never over it). With ``density`` on, strong arousal also changes how busy the
phrase is: the top line's long notes are re-struck halfway (high arousal) and
off-beat sixteenths of a part are tied into the note before them (low).

``strength`` scales every lever: the mode's degrees change in order of how
much they say (the third from any strength above 0, the sixth above 1/3,
the seventh above 2/3), velocity and articulation scale continuously, density
acts from |a| >= 0.5. ``strength`` 0 and an unconditioned capsule return the
source unchanged. The rule draws no dice: ``rng`` is accepted and unused.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from affetto.analysis.emotion import Capsule
from affetto.analysis.judge import key_correlations, pitch_class_histogram
from affetto.errors import ConfigError
from affetto.music.notes import Note, TimeSignature, sort_notes

# scale degree (semitones above the tonic) -> its place in the parallel mode, in the order they change
MAJOR_TO_MINOR = ((4, 3), (9, 8), (11, 10))  # the third, the sixth, the seventh lowered
MINOR_TO_MAJOR = ((3, 4), (8, 9), (10, 11))  # ... raised
LEADING_TONE = 11
EPS = 1e-6
CLEAR_VALENCE = 0.5  # the judge's valence (tanh(10 * margin)) from which a source is in its mode clearly
CLEAR_MARGIN = math.atanh(CLEAR_VALENCE) / 10.0  # ... as a margin of correlations (JudgeConfig.valence_gain)
CANDIDATE_GAP = 0.1  # readings of the source's key are tried within this correlation of the best one
BASS_CUE = 0.03  # correlation units a key reading gains per end of the phrase whose bass is its tonic


@dataclass(frozen=True)
class RuleConfig:
    """How far each lever of the rule goes at strength 1 and full arousal."""

    velocity_octaves: float = 0.5  # velocity x 2**(this * a): x1.41 happy/tense, x0.71 sad/calm
    staccato: float = 0.45  # high arousal: durations shortened by up to this share
    legato: float = 1.0  # low arousal: the gap to the part's next onset filled by up to this share
    density: bool = True  # strong arousal re-strikes long top-line notes (high) or ties off-beat 16ths (low)
    split_beats: float = 1.5  # at full arousal, top-line notes this long or longer are re-struck halfway
    min_duration: float = 0.125  # beats: staccato never goes shorter
    candidate_keys: int = 3  # readings of the source's key tried (best keys of the mode it leaves)

    def __post_init__(self) -> None:
        for name in ("velocity_octaves", "staccato", "legato", "split_beats", "min_duration"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0:
                raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.staccato >= 1:
            raise ConfigError(f"staccato must be < 1, got {self.staccato!r}")
        if isinstance(self.candidate_keys, bool) or not isinstance(self.candidate_keys, int) \
                or not 1 <= self.candidate_keys <= 12:
            raise ConfigError(f"candidate_keys must be an int in 1..12, got {self.candidate_keys!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def check_strength(strength: float) -> float:
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 <= strength <= 1.0:
        raise ConfigError(f"strength must be a number in [0, 1], got {strength!r}")
    return float(strength)


def mode_margin(pitches: np.ndarray, durations: np.ndarray) -> float:
    """How major the pitches sound to the project's estimator: best major r minus best minor r."""
    if len(pitches) == 0:
        return 0.0
    major, minor = key_correlations(pitch_class_histogram(pitches, durations))
    return float(major.max() - minor.max())


def leading_tones(notes: Sequence[Note], tonic: int) -> np.ndarray:
    """Which notes are a raised seventh that resolves up to the tonic: a note a semitone above, in
    its part, starting as it ends (within a beat)."""
    out = np.zeros(len(notes), dtype=bool)
    starts: dict[tuple[int, int], list[float]] = defaultdict(list)  # (channel, pitch) -> onsets
    for n in notes:
        starts[(n.channel, n.pitch)].append(n.onset)
    for i, n in enumerate(notes):
        if (n.pitch - tonic) % 12 != LEADING_TONE:
            continue
        out[i] = any(n.onset + EPS < t <= n.end + 1.0 + EPS for t in starts.get((n.channel, n.pitch + 1), ()))
    return out


def map_pitches(notes: Sequence[Note], tonic: int, to_minor: bool, strength: float) -> np.ndarray:
    """Each note's pitch with its scale degree moved into the parallel mode (degrees by strength)."""
    pitches = np.array([n.pitch for n in notes], dtype=np.int64)
    table = MAJOR_TO_MINOR if to_minor else MINOR_TO_MAJOR
    degree = (pitches - tonic) % 12
    keep = leading_tones(notes, tonic) if to_minor else np.zeros(len(notes), dtype=bool)
    out = pitches.copy()
    for rank, (old, new) in enumerate(table):
        if strength > rank / len(table) + EPS or (rank == 0 and strength > 0):
            move = (degree == old) & ~keep
            out[move] += new - old
    return np.clip(out, 0, 127)


def bass_ends(notes: Sequence[Note]) -> set[int]:
    """Pitch classes of the lowest note at the phrase's first onset and of the lowest sounding at its last."""
    first = min(n.onset for n in notes)
    last = max(n.onset for n in notes)
    return {min(n.pitch for n in notes if abs(n.onset - first) < EPS) % 12,
            min(n.pitch for n in notes if n.onset <= last + EPS and n.end > last - EPS) % 12}


def choose_key(notes: Sequence[Note], to_minor: bool, candidates: int) -> tuple[int, float] | None:
    """(tonic, margin reached) of the reading of the source's key that, moved into the target mode,
    fits it best; None when the source is clearly in the target mode already.

    Clearly: the project's judge hears the target's valence at :data:`CLEAR_VALENCE` or more. Otherwise
    the source is read in each of the best ``candidates`` keys of the mode it leaves (those within
    :data:`CANDIDATE_GAP` of the best), each reading moved
    into the target mode; the one whose result fits the target mode best wins, a reading whose tonic is
    the phrase's first or last bass note counting :data:`BASS_CUE` more per end (phrases tend to begin
    and end on their tonic), among the readings that land in the target mode when any does. Keeping the
pitches competes too when the source leans the target's way.
    """
    pitches = np.array([n.pitch for n in notes], dtype=np.int64)
    durations = np.array([n.duration for n in notes], dtype=float)
    sign = -1.0 if to_minor else 1.0
    own = sign * mode_margin(pitches, durations)
    if own >= CLEAR_MARGIN:
        return None
    major, minor = key_correlations(pitch_class_histogram(pitches, durations))
    leaving = major if to_minor else minor  # the source read in the mode it leaves
    ends = bass_ends(notes)
    # (lands in the target mode, score, tonic or None to keep the pitches, margin reached)
    best: tuple[bool, float, int | None, float] = (own > 0, own if own > 0 else -np.inf, None, own)
    for tonic in np.argsort(-leaving, kind="stable")[:candidates]:
        if leaving[tonic] < leaving.max() - CANDIDATE_GAP:
            break  # a reading the source hardly fits: moving it would change more than the mode
        moved = map_pitches(notes, int(tonic), to_minor, 1.0)
        margin = sign * mode_margin(moved, durations)
        score = margin + (BASS_CUE * sum(int(tonic) == e for e in ends) if margin > 0 else 0.0)
        if (margin > 0, score) > (best[0], best[1] + EPS):
            best = (margin > 0, score, int(tonic), margin)
    if best[2] is None:
        return None
    return best[2], best[3]


class RuleTransfer:
    """Parallel mode by scale degree, velocity and articulation (and density) by arousal."""

    name = "rule"

    def __init__(self, config: RuleConfig | None = None) -> None:
        self.config = config or RuleConfig()

    def transfer(
        self,
        notes: Sequence[Note],
        meter: TimeSignature,
        capsule: Capsule,
        *,
        strength: float = 1.0,
        rng: np.random.Generator | None = None,
    ) -> list[Note]:
        strength = check_strength(strength)
        if not isinstance(meter, TimeSignature):
            raise ConfigError(f"meter must be a TimeSignature, got {meter!r}")
        if not isinstance(capsule, Capsule):
            raise ConfigError(f"capsule must be a Capsule, got {capsule!r}")
        source = sort_notes(notes)
        if not source or strength == 0 or capsule.is_unconditioned:
            return source
        pitches = self.pitches(source, capsule, strength)
        arousal = capsule.arousal * strength
        out = [Note(int(p), n.onset, n.duration, n.velocity, n.channel) for p, n in zip(pitches, source)]
        if self.config.density:
            out = self.density(out, meter, arousal)
        return sort_notes(self.touch(out, arousal))

    def pitches(self, source: Sequence[Note], capsule: Capsule, strength: float) -> np.ndarray:
        """The source's pitches in the target valence's mode (unchanged at valence 0)."""
        if capsule.valence == 0:
            return np.array([n.pitch for n in source], dtype=np.int64)
        to_minor = capsule.valence < 0
        chosen = choose_key(source, to_minor, self.config.candidate_keys)
        if chosen is None:
            return np.array([n.pitch for n in source], dtype=np.int64)
        return map_pitches(source, chosen[0], to_minor, strength)

    def touch(self, notes: list[Note], arousal: float) -> list[Note]:
        """Velocity and articulation by arousal (``a`` in [-1, 1])."""
        cfg = self.config
        gain = 2.0 ** (cfg.velocity_octaves * arousal)
        following = next_onsets(notes)
        out = []
        for n, nxt in zip(notes, following):
            duration = n.duration
            if arousal > 0:
                duration = max(min(cfg.min_duration, duration), duration * (1 - cfg.staccato * arousal))
            elif arousal < 0 and nxt is not None:
                duration += max(0.0, nxt - n.end) * cfg.legato * -arousal
            velocity = int(min(127, max(1, round(n.velocity * gain))))
            out.append(Note(n.pitch, n.onset, duration, velocity, n.channel))
        return out

    def density(self, notes: list[Note], meter: TimeSignature, arousal: float) -> list[Note]:
        """From |a| >= 0.5: re-strike long top-line notes (high) or tie off-beat sixteenths (low)."""
        if arousal >= 0.5:
            return restrike(notes, meter, self.config.split_beats * (3 - 2 * arousal))
        if arousal <= -0.5:
            return tie_offbeats(notes)
        return notes


def next_onsets(notes: Sequence[Note]) -> list[float | None]:
    """For each note, the next later onset in its part (channel), or None."""
    by_part: dict[int, list[float]] = defaultdict(list)
    for n in notes:
        by_part[n.channel].append(n.onset)
    sorted_parts = {ch: sorted(set(v)) for ch, v in by_part.items()}
    out: list[float | None] = []
    for n in notes:
        onsets = sorted_parts[n.channel]
        i = int(np.searchsorted(onsets, n.onset + EPS))
        out.append(onsets[i] if i < len(onsets) else None)
    return out


def top_line(notes: Sequence[Note]) -> set[int]:
    """Indices of the notes that are the highest sounding at their onset (the melody, as heard)."""
    top: set[int] = set()
    by_onset: dict[float, list[int]] = defaultdict(list)
    for i, n in enumerate(notes):
        by_onset[round(n.onset, 6)].append(i)
    for onset, idx in by_onset.items():
        highest = max(idx, key=lambda i: notes[i].pitch)
        held = any(m.pitch > notes[highest].pitch and m.onset < onset - EPS and m.end > onset + EPS
                   for m in notes)
        if not held:
            top.add(highest)
    return top


def restrike(notes: list[Note], meter: TimeSignature, min_beats: float) -> list[Note]:
    """Top-line notes at least ``min_beats`` long are struck again halfway (on the eighth grid,
    never past the bar line they start in), the second stroke a little softer."""
    out: list[Note] = []
    tops = top_line(notes)
    bar = meter.beats_per_bar
    for i, n in enumerate(notes):
        if i in tops and n.duration >= min_beats - EPS:
            bar_end = (math.floor(n.onset / bar + EPS) + 1) * bar
            half = math.floor((n.onset + n.duration / 2) * 2 + EPS) / 2
            if n.onset + 0.25 <= half < min(n.end, bar_end) - 0.25 + EPS:
                out.append(Note(n.pitch, n.onset, half - n.onset, n.velocity, n.channel))
                out.append(Note(n.pitch, half, n.end - half, max(1, round(n.velocity * 0.85)), n.channel))
                continue
        out.append(n)
    return out


def tie_offbeats(notes: list[Note]) -> list[Note]:
    """A short note on an off-beat sixteenth (x.25, x.75) is tied into its part's note sounding just
    before it: that note is held through it, and it is not struck. A note with no such neighbour stays."""
    order = sorted(range(len(notes)), key=lambda i: (notes[i].onset, notes[i].pitch))
    ends: dict[int, list[int]] = defaultdict(list)  # channel -> indices of kept notes
    extended = {i: notes[i] for i in order}
    dropped: set[int] = set()
    for i in order:
        n = notes[i]
        offbeat = abs(n.onset * 2 - round(n.onset * 2)) > EPS and abs(n.onset * 4 - round(n.onset * 4)) < EPS
        if offbeat and n.duration <= 0.5 + EPS:
            before = [j for j in ends[n.channel] if abs(extended[j].end - n.onset) < EPS]
            if before:
                j = max(before, key=lambda k: extended[k].pitch)
                m = extended[j]
                extended[j] = Note(m.pitch, m.onset, n.end - m.onset, m.velocity, m.channel)
                dropped.add(i)
                continue
        ends[n.channel].append(i)
    return [extended[i] for i in order if i not in dropped]
