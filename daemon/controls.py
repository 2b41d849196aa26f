"""Controls: CC values from the DAW turned into generation settings.

The emotion knob (one CC) walks Q3 -> Q4 -> Q1 -> Q2; in XY mode two CCs set
valence and arousal. Temperature and guidance CCs set those sampling
settings over the config's; a density CC the onset-density level (1..6) and a
texture CC the notes per onset (1 a single line .. 5 full chords), in place of
what the emotion plan (:mod:`affetto.runtime.plan`) would choose. A CC value is checked once, when it arrives
(:meth:`Controls.handle_cc`), and turned into what it controls there.
Values are read at bar lines (:meth:`Controls.at_bar_line`), so a change
applies to the next bar the generator starts; the capsule moves there with
exponential smoothing so the mood glides rather than jumps.
"""

from __future__ import annotations

from dataclasses import dataclass

from affetto.analysis.emotion import Capsule, cc_unit, cc_value, knob_capsule, va_capsule
from affetto.daemon.config import DaemonConfig
from affetto.errors import EmotionError
from affetto.runtime.sampling import MAX_TEXTURE, SamplingOverrides

TEMPERATURE_RANGE = (0.3, 1.7)  # CC 0..127 maps linearly onto this
GUIDANCE_RANGE = (1.0, 5.0)
TURN = 0.5  # a knob move this far (L1 over the capsule's weights) from the playing capsule is a turn
DENSITY_LEVELS = 6  # CC 0..127 maps onto the levels 1..6 in equal steps (level 0 would be an empty bar)


@dataclass(frozen=True)
class Settings:
    capsule: Capsule
    sampling: SamplingOverrides  # the config's, with what the temperature and guidance CCs set


def cc_to_density(value: int) -> int:
    return 1 + value * DENSITY_LEVELS // 128


def cc_to_texture(value: int) -> int:
    return 1 + value * MAX_TEXTURE // 128


def cc_to_range(value: int, lo: float, hi: float) -> float:
    """A CC value (checked here, by :func:`~affetto.analysis.emotion.cc_value`) mapped linearly onto ``lo..hi``."""
    return lo + (hi - lo) * cc_value(value) / 127


class Controls:
    """Latest CC values, and the settings for the next bar."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self._valence = self._arousal = cc_unit(64)
        self._target = va_capsule(self._valence, self._arousal) if config.xy_mode else knob_capsule(config.emotion)
        self._capsule = self._target
        self._sampling = config.sampling
        self._turned_for = self._target.weights  # the target of the last turn

    def handle_cc(self, control: int, value: int) -> bool:
        """Apply one CC; True when it is one of ours. Values outside 0..127 are ignored."""
        c = self.config
        try:
            if c.xy_mode and control == c.valence_cc:
                self._valence = cc_unit(value)
                self._target = va_capsule(self._valence, self._arousal)
            elif c.xy_mode and control == c.arousal_cc:
                self._arousal = cc_unit(value)
                self._target = va_capsule(self._valence, self._arousal)
            elif not c.xy_mode and control == c.emotion_cc:
                self._target = knob_capsule(value)
            elif control == c.temperature_cc:
                self._sampling = self._sampling.replace(temperature=cc_to_range(value, *TEMPERATURE_RANGE))
            elif control == c.guidance_cc:
                self._sampling = self._sampling.replace(guidance=cc_to_range(value, *GUIDANCE_RANGE))
            elif c.density_cc is not None and control == c.density_cc:
                self._sampling = self._sampling.replace(density=cc_to_density(value))
            elif c.texture_cc is not None and control == c.texture_cc:
                self._sampling = self._sampling.replace(texture=cc_to_texture(value))
            else:
                return False
        except EmotionError:
            return False
        return True

    def target(self) -> Capsule:
        """The capsule the controls point at right now."""
        return self._target

    def turned(self) -> bool:
        """Has the knob moved by more than a step from the capsule playing, since the last turn?"""
        if self._target.weights == self._turned_for:
            return False
        return sum(abs(t - c) for t, c in zip(self._target.weights, self._capsule.weights, strict=True)) >= TURN

    def turn(self) -> Settings:
        """Settings for a bar redone after a turn: one smoothing step, as at a bar line."""
        self._turned_for = self._target.weights
        return self.at_bar_line()

    def at_bar_line(self) -> Settings:
        """Settings for the next bar: the capsule moves toward the target, smoothed."""
        keep = self.config.emotion_smoothing
        target = self._target.weights
        old = self._capsule.weights
        m = [keep * o + (1 - keep) * t for o, t in zip(old, target, strict=False)]
        mixed = (m[0], m[1], m[2], m[3])
        # snap when close, so a steady knob gives exactly its own capsule
        if max(abs(m - t) for m, t in zip(mixed, target, strict=False)) < 0.02:
            mixed = target
        self._capsule = Capsule(mixed)
        return Settings(self._capsule, self._sampling)

    @property
    def capsule(self) -> Capsule:
        return self._capsule
