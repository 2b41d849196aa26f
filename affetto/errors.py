"""One error tree for affetto.

Every class also subclasses the builtin a caller would expect, so code that
catches ``ValueError`` or ``OSError`` keeps working.
"""

from __future__ import annotations


class AffettoError(Exception):
    """Base class of every error affetto raises on purpose."""


class ConfigError(AffettoError, ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


class VocabularyError(AffettoError, ValueError):
    """Tokens that do not belong to the vocabulary or break its grammar."""


class EmotionError(AffettoError, ValueError):
    """An emotion name or valence/arousal pair that cannot be understood."""


class MidiFileError(AffettoError, OSError):
    """A MIDI file that cannot be read, is empty, or has no notes."""


class DatasetError(AffettoError, ValueError):
    """A data set whose layout or labels are wrong."""


class ModelFileError(AffettoError, OSError):
    """A model file that is missing, truncated, or not an affetto model."""


class PortError(AffettoError, OSError):
    """A MIDI port that cannot be opened, found, or has gone away."""
