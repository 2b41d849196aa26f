"""affetto: emotion-conditioned generative music, streamed into a DAW in tempo."""

__version__ = "0.1.0"
