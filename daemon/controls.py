"""Controls: CC values from the DAW turned into generation settings.

The emotion knob (one CC) walks Q3 -> Q4 -> Q1 -> Q2; in XY mode two CCs set
valence and arousal. Temperature and guidance CCs scale those settings; a
density CC picks a level 0..6 carried to the bar request, so busy-ness is
played apart from arousal.
Values are read at bar lines (:meth:`Controls.at_bar_line`), so a change
applies to the next bar the generator starts; the capsule moves there with
exponential smoothing so the mood glides rather than jumps.
"""

from __future__ import annotations

from dataclasses import dataclass

from affetto.daemon.config import DaemonConfig
from affetto.emotion import Capsule, cc_unit, knob_capsule, va_capsule

TEMPERATURE_RANGE = (0.3, 1.7)  # CC 0..127 maps linearly onto this
GUIDANCE_RANGE = (1.0, 5.0)
DENSITY_LEVELS = 7  # CC 0..127 maps onto levels 0..6 in equal steps


@dataclass(frozen=True)
class Settings:
    capsule: Capsule
    temperature: float | None  # None: the model's own setting
    guidance: float | None
    density: int | None = None  # None: no density CC moved yet (the model decides)


def cc_to_density(value: int) -> int:
    return value * DENSITY_LEVELS // 128


def cc_to_range(value: int, lo: float, hi: float) -> float:
    return lo + (hi - lo) * value / 127


class Controls:
    """Latest CC values, and the settings for the next bar."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.knob = config.emotion
        self.valence = 64
        self.arousal = 64
        self.temperature = config.temperature
        self.guidance = config.guidance
        self.density: int | None = None
        self._capsule = self.target()
        self.changes = 0

    def handle_cc(self, control: int, value: int) -> bool:
        """Apply one CC; True when it is one of ours. Values outside 0..127 are ignored."""
        if not isinstance(value, int) or not 0 <= value <= 127:
            return False
        c = self.config
        if c.xy_mode and control == c.valence_cc:
            self.valence = value
        elif c.xy_mode and control == c.arousal_cc:
            self.arousal = value
        elif not c.xy_mode and control == c.emotion_cc:
            self.knob = value
        elif control == c.temperature_cc:
            self.temperature = cc_to_range(value, *TEMPERATURE_RANGE)
        elif control == c.guidance_cc:
            self.guidance = cc_to_range(value, *GUIDANCE_RANGE)
        elif control == c.density_cc:
            self.density = cc_to_density(value)
        else:
            return False
        self.changes += 1
        return True

    def target(self) -> Capsule:
        """The capsule the controls point at right now."""
        if self.config.xy_mode:
            return va_capsule(cc_unit(self.valence), cc_unit(self.arousal))
        return knob_capsule(self.knob)

    def at_bar_line(self) -> Settings:
        """Settings for the next bar: the capsule moves toward the target, smoothed."""
        keep = self.config.emotion_smoothing
        target = self.target().weights
        old = self._capsule.weights
        mixed = tuple(keep * o + (1 - keep) * t for o, t in zip(old, target, strict=False))
        # snap when close, so a steady knob gives exactly its own capsule
        if max(abs(m - t) for m, t in zip(mixed, target, strict=False)) < 0.02:
            mixed = target
        self._capsule = Capsule(mixed)
        return Settings(self._capsule, self.temperature, self.guidance, self.density)

    @property
    def capsule(self) -> Capsule:
        return self._capsule
