"""A mood in words: "melancholic, slow" -> a valence/arousal point -> a capsule.

The lexicon is the project's own: each word's valence and arousal in [-1, 1]
were set by hand for this project, placed on Russell's circumplex (the
quadrant a word belongs to, and how far from the centre) and checked against
each other (no published norms are shipped, so nothing here needs a licence).
Tempo and dynamics words ("slow", "loud") carry arousal alone; a few words
carry valence alone ("bright", "dark"). A phrase of several words is the mean
of their points, so "melancholic, slow" is sadder and slower than
"melancholic". A word the lexicon lacks goes to the trained text model
(:func:`learned_point`), which places it by the lexicon words nearest to it in
its text space; a word neither knows is refused with the closest words the
lexicon knows.
"""

from __future__ import annotations

import difflib
import re

from affetto.errors import EmotionError

# word -> (valence, arousal)
LEXICON: dict[str, tuple[float | None, float | None]] = {
    # Q1: positive valence, high arousal
    "happy": (0.8, 0.5), "joyful": (0.9, 0.6), "cheerful": (0.8, 0.5), "excited": (0.7, 0.9),
    "elated": (0.9, 0.8), "euphoric": (0.9, 0.9), "playful": (0.7, 0.6), "triumphant": (0.8, 0.8),
    "energetic": (0.5, 0.9), "lively": (0.6, 0.7), "exuberant": (0.8, 0.9), "festive": (0.8, 0.7),
    "hopeful": (0.6, 0.3), "proud": (0.6, 0.5), "uplifting": (0.8, 0.5), "bouncy": (0.6, 0.7),
    "delighted": (0.9, 0.6), "sunny": (0.8, 0.4), "heroic": (0.6, 0.8), "celebratory": (0.8, 0.8),
    # Q2: negative valence, high arousal
    "tense": (-0.6, 0.7), "angry": (-0.8, 0.8), "furious": (-0.9, 0.9), "anxious": (-0.6, 0.6),
    "nervous": (-0.5, 0.6), "afraid": (-0.7, 0.7), "fearful": (-0.7, 0.7), "scary": (-0.7, 0.7),
    "agitated": (-0.6, 0.8), "aggressive": (-0.7, 0.9), "menacing": (-0.7, 0.6), "frantic": (-0.5, 0.9),
    "stressed": (-0.6, 0.7), "restless": (-0.4, 0.6), "dramatic": (-0.4, 0.7), "ominous": (-0.7, 0.4),
    "urgent": (-0.4, 0.8), "stormy": (-0.6, 0.8), "violent": (-0.9, 0.9), "suspenseful": (-0.5, 0.6),
    # Q3: negative valence, low arousal
    "sad": (-0.8, -0.5), "melancholic": (-0.7, -0.4), "melancholy": (-0.7, -0.4), "gloomy": (-0.7, -0.5),
    "sorrowful": (-0.8, -0.5), "mournful": (-0.8, -0.6), "depressed": (-0.8, -0.7), "lonely": (-0.7, -0.5),
    "grieving": (-0.9, -0.5), "tragic": (-0.8, -0.3), "bleak": (-0.7, -0.6), "weary": (-0.5, -0.7),
    "tired": (-0.4, -0.8), "bored": (-0.4, -0.7), "nostalgic": (-0.3, -0.4), "wistful": (-0.4, -0.4),
    "somber": (-0.7, -0.5), "sombre": (-0.7, -0.5), "dreary": (-0.6, -0.6), "heartbroken": (-0.9, -0.4),
    # Q4: positive valence, low arousal
    "calm": (0.6, -0.6), "peaceful": (0.7, -0.7), "relaxed": (0.6, -0.7), "serene": (0.7, -0.7),
    "tender": (0.6, -0.5), "gentle": (0.5, -0.6), "dreamy": (0.5, -0.6), "content": (0.6, -0.4),
    "soothing": (0.6, -0.7), "tranquil": (0.7, -0.8), "warm": (0.6, -0.3), "lullaby": (0.6, -0.8),
    "romantic": (0.6, -0.3), "sweet": (0.7, -0.3), "mellow": (0.5, -0.6), "pastoral": (0.6, -0.5),
    "sleepy": (0.3, -0.9), "cozy": (0.7, -0.5), "cosy": (0.7, -0.5), "reflective": (0.2, -0.5),
    # arousal alone: tempo, dynamics, energy
    "slow": (None, -0.8), "fast": (None, 0.8), "quick": (None, 0.7), "busy": (None, 0.7),
    "sparse": (None, -0.6), "quiet": (None, -0.7), "soft": (None, -0.6), "loud": (None, 0.7),
    "intense": (None, 0.8), "still": (None, -0.9), "driving": (None, 0.8), "steady": (None, 0.0),
    # valence alone: colour
    "bright": (0.7, None), "dark": (-0.7, None), "major": (0.8, None), "minor": (-0.8, None),
}
MODIFIERS = {"very": 1.3, "slightly": 0.6, "somewhat": 0.7, "quite": 1.1}


def mood_point(text: str) -> tuple[float, float]:
    """The (valence, arousal) point of words like "melancholic, slow" (each in [-1, 1])."""
    words = [w for w in re.split(r"[\s,;/+&]+|\band\b", str(text).strip().lower()) if w]
    if not words:
        raise EmotionError("an emotion in words needs at least one word")
    valences: list[float] = []
    arousals: list[float] = []
    scale = 1.0
    for word in words:
        if word in MODIFIERS:
            scale = MODIFIERS[word]
            continue
        if word not in LEXICON and (learned := learned_point(word)) is not None:
            valences.append(learned[0] * scale)
            arousals.append(learned[1] * scale)
            scale = 1.0
            continue
        if word not in LEXICON:
            close = difflib.get_close_matches(word, list(LEXICON), n=4, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; try words like {', '.join(SAMPLE)}"
            raise EmotionError(f"unknown mood word {word!r}{hint}")
        valence, arousal = LEXICON[word]
        if valence is not None:
            valences.append(valence * scale)
        if arousal is not None:
            arousals.append(arousal * scale)
        scale = 1.0
    return _mean(valences), _mean(arousals)


def learned_point(word: str) -> tuple[float, float] | None:
    """A word the lexicon lacks, placed by the shipped text model: the similarity-weighted mean of its
    nearest lexicon words in the text space (:meth:`affetto.words.textmodel.TextModel.word_point`); None
    when the model never saw the word, no lexicon word lies close to it, or no text model is installed."""
    from affetto.words.textmodel import learned_mood_point

    found = learned_mood_point(word, LEXICON)
    return None if found is None else (found[0], found[1])


def _mean(values: list[float]) -> float:
    """The mean, kept in [-1, 1]; 0 (neutral) for none."""
    return max(-1.0, min(1.0, sum(values) / len(values))) if values else 0.0


SAMPLE = ("happy", "tense", "sad", "calm", "melancholic", "playful", "slow", "bright")
