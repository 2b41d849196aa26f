"""Describe a phrase: measured fields, the words that name them, and a sentence checked against them.

The fields come from the project's analysis: the key from the Krumhansl-Kessler
estimator (:func:`affetto.analysis.judge.estimate_key`), meter and tempo from
the file, density (distinct onsets per beat), register (mean pitch), texture
(notes sounding at each onset), contour (the top line's shape), and the mood
(quadrant, confidence, valence, arousal) from the learned mood recogniser
(:mod:`affetto.words.mood`) when it is installed, else from the feature judge.

Each categorical field has a few words that name it (``SLOT_WORDS``). The
caption grammar that trains the text model draws from the same tables, so a
decoded sentence can be read back (:func:`claims`) and checked against the
fields (:func:`contradictions`), and the decoder can be kept from naming a
value the fields contradict (:mod:`affetto.words.textmodel`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from affetto.analysis.emotion import Quadrant, va_capsule
from affetto.analysis.judge import PITCH_NAMES, estimate_key, judge_arrays
from affetto.errors import MidiFileError, ModelFileError
from affetto.music.notes import Note, TimeSignature

TEMPO_EDGES = (80.0, 120.0)  # BPM: below the first is slow, above the second fast
DENSITY_EDGES = (1.0, 2.0)  # distinct onsets per beat: sparse, flowing, busy
REGISTER_EDGES = (58.0, 70.0)  # mean MIDI pitch: low, middle, high
TEXTURE_EDGES = (1.3, 2.5)  # notes sounding at each onset: a single line, two voices, several voices
CONTOUR_STEP = 3.0  # semitones the top line's last third must move from its first to rise or fall
CONTOUR_PEAK = 4.0  # semitones its middle third must stand above both ends to arch

# field -> value -> the words that name it (the first is the plain one). Every word names one value of
# one field; tonic names keep their capital so that "A" the key is not "a" the article.
SLOT_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "tonic": {name: (name,) for name in PITCH_NAMES},
    "mode": {"major": ("major",), "minor": ("minor",)},
    "tempo": {"slow": ("slow", "unhurried", "leisurely"), "moderate": ("moderate", "walking"),
              "fast": ("fast", "quick", "brisk")},
    "density": {"sparse": ("sparse", "spacious"), "flowing": ("flowing", "even"),
                "busy": ("busy", "running", "crowded")},
    "register": {"low": ("low", "deep"), "middle": ("middle", "central"), "high": ("high", "lofty")},
    "texture": {"single line": ("single-line", "unaccompanied", "monophonic"),
                "two voices": ("two-voice", "two-part"),
                "several voices": ("many-voiced", "chordal", "full-voiced")},
    "contour": {"rising": ("rising", "climbing", "ascending"), "falling": ("falling", "descending", "sinking"),
                "arching": ("arching", "arched"), "level": ("level", "hovering")},
    # mood words by quadrant: words of the lexicon (affetto.analysis.lexicon) and words it lacks, which
    # the text model learns from the music they are paired with
    "mood": {
        "Q1": ("happy", "joyful", "cheerful", "playful", "lively", "bouncy", "festive", "sunny",
               "jubilant", "merry", "jaunty", "sprightly", "buoyant", "gleeful"),
        "Q2": ("tense", "anxious", "agitated", "restless", "dramatic", "stormy", "urgent",
               "turbulent", "fraught", "uneasy", "fiery", "defiant", "edgy"),
        "Q3": ("sad", "melancholic", "gloomy", "mournful", "sorrowful", "wistful", "somber",
               "doleful", "plaintive", "forlorn", "lamenting", "brooding", "downcast"),
        "Q4": ("calm", "peaceful", "serene", "tender", "gentle", "tranquil", "mellow",
               "placid", "restful", "hushed", "unruffled", "lulling"),
    },
}
WORD_SLOT: dict[str, tuple[str, str]] = {
    word: (slot, value) for slot, values in SLOT_WORDS.items() for value, words in values.items() for word in words
}
NUMERIC_METER = re.compile(r"^\d{1,2}/\d{1,2}$")


@dataclass(frozen=True)
class Mood:
    """A quadrant with a confidence in [0, 1] and the valence/arousal point it comes from."""

    quadrant: str
    confidence: float
    valence: float
    arousal: float
    source: str  # "recogniser" (affetto.words.mood) or "judge" (the feature judge)


@dataclass(frozen=True)
class Fields:
    """What the analysis measures in a phrase (the ``--json`` fields besides ``text``)."""

    quadrant: str
    confidence: float
    valence: float
    arousal: float
    mood_source: str
    key: str  # "D major"
    key_clarity: float
    meter: str
    tempo_bpm: float
    tempo: str  # slow, moderate, fast
    density: float  # distinct onsets per beat
    density_word: str  # sparse, flowing, busy
    register: str  # low, middle, high
    mean_pitch: float
    texture: str  # single line, two voices, several voices
    voices: float  # notes sounding at each onset, on average
    contour: str  # rising, falling, arching, level
    bars: int

    @property
    def tonic(self) -> str:
        return self.key.split()[0]

    @property
    def mode(self) -> str:
        return self.key.split()[1]

    def values(self) -> dict[str, str]:
        """Each categorical field's value under its slot name (what a sentence can claim)."""
        return {"tonic": self.tonic, "mode": self.mode, "meter": self.meter, "tempo": self.tempo,
                "density": self.density_word, "register": self.register, "texture": self.texture,
                "contour": self.contour, "mood": self.quadrant}

    def to_dict(self) -> dict:
        out = asdict(self)
        for name in ("confidence", "valence", "arousal", "key_clarity", "density", "mean_pitch", "voices"):
            out[name] = round(float(out[name]), 3)
        out["tempo_bpm"] = round(float(out["tempo_bpm"]), 1)
        return out


def bin_word(value: float, edges: tuple[float, float], words: Sequence[str]) -> str:
    """``words[0]`` below the first edge, ``words[2]`` above the second, else ``words[1]``."""
    return words[0] if value < edges[0] else words[2] if value > edges[1] else words[1]


def sounding_voices(onset: np.ndarray, end: np.ndarray) -> float:
    """Mean number of notes sounding at each distinct onset (held notes count)."""
    starts = np.unique(onset)
    if len(starts) == 0:
        return 0.0
    counts = [(np.count_nonzero((onset <= t + 1e-6) & (end > t + 1e-6))) for t in starts]
    return float(np.mean(counts))


def contour_of(onset: np.ndarray, pitch: np.ndarray) -> str:
    """The top line's shape: rising, falling, arching or level."""
    starts = np.unique(onset)
    if len(starts) < 3:
        return "level"
    top = np.array([pitch[onset == t].max() for t in starts], dtype=float)
    third = max(1, len(top) // 3)
    first, middle, last = top[:third].mean(), top[third:-third].max() if len(top) > 2 * third else top.max(), \
        top[-third:].mean()
    if last - first >= CONTOUR_STEP:
        return "rising"
    if first - last >= CONTOUR_STEP:
        return "falling"
    if middle >= max(first, last) + CONTOUR_PEAK:
        return "arching"
    return "level"


def judged_mood(pitch: np.ndarray, onset: np.ndarray, duration: np.ndarray, velocity: np.ndarray,
                beats: float, tempo: float) -> Mood:
    """The feature judge's mood; confidence is the quadrant's weight in the capsule of its point."""
    j = judge_arrays(pitch, onset, duration, velocity, beats, tempo)
    quadrant = Quadrant.from_va(j.valence, j.arousal)
    weight = va_capsule(j.valence, j.arousal).weights[int(quadrant)]
    return Mood(quadrant.name, float(weight), float(j.valence), float(j.arousal), "judge")


def recognised_mood(notes: Sequence[Note], meter: TimeSignature) -> Mood | None:
    """The learned recogniser's mood, or None while :mod:`affetto.words.mood` is not installed or its model
    file is missing (then the judge's mood stands in)."""
    try:
        from affetto.words.mood import recognise  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    try:
        mood = recognise(notes, meter)
    except ModelFileError:
        return None
    quadrant = getattr(mood, "quadrant", None)
    name = quadrant.name if isinstance(quadrant, Quadrant) else str(quadrant)
    return Mood(name, float(mood.confidence), float(mood.valence), float(mood.arousal), "recogniser")


def measure_arrays(pitch: np.ndarray, onset: np.ndarray, duration: np.ndarray, velocity: np.ndarray,
                   meter: TimeSignature, tempo: float, mood: Mood | None = None) -> Fields:
    """The fields of a phrase given as arrays (onsets and durations in beats, from its first bar line)."""
    pitch = np.asarray(pitch, dtype=np.int64)
    onset = np.asarray(onset, dtype=float)
    duration = np.asarray(duration, dtype=float)
    velocity = np.asarray(velocity, dtype=float)
    if len(pitch) == 0:
        raise MidiFileError("the phrase has no notes to describe")
    bar = meter.beats_per_bar
    end = onset + duration
    bars = max(1, math.ceil(float(end.max()) / bar - 1e-6))
    beats = bars * bar
    tonic, mode, clarity = estimate_key(pitch, duration)
    mood = mood or judged_mood(pitch, onset, duration, velocity, beats, tempo)
    density = len(np.unique(np.round(onset * 48))) / beats
    mean_pitch = float(pitch.mean())
    voices = sounding_voices(onset, end)
    return Fields(
        quadrant=mood.quadrant, confidence=mood.confidence, valence=mood.valence, arousal=mood.arousal,
        mood_source=mood.source, key=f"{PITCH_NAMES[tonic]} {mode}", key_clarity=float(clarity),
        meter=str(meter), tempo_bpm=float(tempo), tempo=bin_word(tempo, TEMPO_EDGES, ("slow", "moderate", "fast")),
        density=float(density), density_word=bin_word(density, DENSITY_EDGES, ("sparse", "flowing", "busy")),
        register=bin_word(mean_pitch, REGISTER_EDGES, ("low", "middle", "high")), mean_pitch=mean_pitch,
        texture=bin_word(voices, TEXTURE_EDGES, ("single line", "two voices", "several voices")),
        voices=voices, contour=contour_of(onset, pitch), bars=bars,
    )


def measure(notes: Sequence[Note], meter: TimeSignature, tempo: float, *, recognise: bool = True) -> Fields:
    """The fields of a phrase: the analysis, and the recogniser's mood when it is installed."""
    if not notes:
        raise MidiFileError("the phrase has no notes to describe")
    mood = recognised_mood(notes, meter) if recognise else None
    return measure_arrays(np.array([n.pitch for n in notes]), np.array([n.onset for n in notes]),
                          np.array([n.duration for n in notes]), np.array([n.velocity for n in notes]),
                          meter, tempo, mood)


def claims(tokens: Sequence[str]) -> dict[str, set[str]]:
    """What a sentence's tokens say about each field (slot -> the values it names)."""
    out: dict[str, set[str]] = {}
    for token in tokens:
        if token in WORD_SLOT:
            slot, value = WORD_SLOT[token]
            out.setdefault(slot, set()).add(value)
        elif NUMERIC_METER.match(token):
            out.setdefault("meter", set()).add(token)
    return out


def contradictions(said: dict[str, set[str]], fields: Fields) -> dict[str, set[str]]:
    """The values a sentence names that the fields contradict (slot -> wrong values)."""
    truth = fields.values()
    return {slot: wrong for slot, values in said.items() if (wrong := {v for v in values if v != truth[slot]})}


def names_key_and_mood(said: dict[str, set[str]]) -> bool:
    """Whether a sentence names the key (tonic and mode) and the mood."""
    return all(slot in said for slot in ("tonic", "mode", "mood"))


# ---- the sentence ---------------------------------------------------------------------------------
def banned_words(words: Sequence[str], fields: Fields) -> np.ndarray:
    """Mask over a vocabulary: the words that name a value the fields contradict (other keys, meters, moods...)."""
    truth = fields.values()
    out = np.zeros(len(words), dtype=bool)
    for i, word in enumerate(words):
        if word in WORD_SLOT:
            slot, value = WORD_SLOT[word]
            out[i] = value != truth[slot]
        elif NUMERIC_METER.match(word):
            out[i] = word != fields.meter
    return out


def key_and_mood_clause(fields: Fields) -> list[str]:
    """The clause added when no decoded sentence names the key and the mood."""
    return ["in", fields.tonic, fields.mode, ",", SLOT_WORDS["mood"][fields.quadrant][0]]


def show(tokens: Sequence[str], proper: Sequence[str] = ()) -> str:
    """A sentence from caption tokens, names capitalised."""
    from affetto.words.textmodel import detokenize

    names = set(proper)
    return detokenize([t.capitalize() if t in names else t for t in tokens])


def sentence(model: object, latent: np.ndarray, fields: Fields, *, width: int = 4) -> dict:
    """The decoder's sentence for a phrase, checked against its fields.

    1. the decoder's n best, free: the first that contradicts no field and names the key and the mood;
    2. else the n best with every contradicting word banned (decoding constrained over the attribute
       slots): the first that names the key and the mood;
    3. else the constrained best with the key and the mood added as a clause.
    """
    free = model.beam(latent, width=width)  # type: ignore[attr-defined]
    first = free[0][0] if free else []
    report = {"free_caption": first, "free_contradictions": {k: sorted(v) for k, v in
                                                             contradictions(claims(first), fields).items()}}
    for tokens, _ in free:
        said = claims(tokens)
        if not contradictions(said, fields) and names_key_and_mood(said):
            return {"tokens": tokens, "source": "decoder", **report}
    words = model.vocab.words  # type: ignore[attr-defined]
    constrained = model.beam(latent, width=width, banned=banned_words(words, fields))  # type: ignore[attr-defined]
    for tokens, _ in constrained:
        if names_key_and_mood(claims(tokens)):
            return {"tokens": tokens, "source": "decoder, constrained to the fields", **report}
    tokens = list(constrained[0][0]) if constrained else []
    tokens = [t for t in tokens if t != "."] + [","] + key_and_mood_clause(fields) + ["."]
    return {"tokens": tokens, "source": "decoder, constrained, key and mood added", **report}
