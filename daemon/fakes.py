"""Stand-ins for the models, for tests, benchmarks and ``builtin:fake``: deterministic, and cheap
unless asked to cost CPU. :class:`FakeGenerator` continues phrases as the lead model does (a
:class:`~affetto.daemon.generator.PhraseModel`); :class:`FakeVoices` writes voices under a melody as
the ensemble does (a :class:`~affetto.ensemble.accompany.Voicer`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from affetto.analysis.emotion import Capsule
from affetto.music.notes import Note, TimeSignature
from affetto.runtime.sampling import NO_OVERRIDES, SamplingOverrides

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)


class FakeGenerator:
    """A deterministic stand-in whose output visibly follows the capsule.

    Valence picks major or minor, arousal sets density, register and velocity;
    the seed's lowest pitch sets the root. ``cost_ms`` burns CPU per bar, the
    share ``gil_share`` of it in pure Python (holding the GIL, like a sampling
    loop) and the rest in numpy matrix products (releasing it, like ONNX Runtime).
    """

    provider = "fake"
    model_path = "builtin:fake"

    def __init__(
        self,
        meter: TimeSignature | None = None,
        *,
        cost_ms: float = 0.0,
        gil_share: float = 0.3,
        fail_after: int | None = None,
    ) -> None:
        self.meter = meter or TimeSignature()
        self.cost_ms = cost_ms
        self.gil_share = gil_share
        self.fail_after = fail_after
        self.root = 60
        self.primed: list[list[Note]] = []
        self.bars = 0
        self.capsules: list[Capsule] = []

    def prime(self, seed: Sequence[Note]) -> None:
        self.primed.append(list(seed))
        if seed:
            self.root = 48 + min(n.pitch for n in seed) % 12

    def generate_bar(
        self, capsule: Capsule, sampling: SamplingOverrides = NO_OVERRIDES, *, rng: np.random.Generator | None = None
    ) -> list[Note]:  # the fake draws one bar whatever the candidates
        if self.fail_after is not None and self.bars >= self.fail_after:
            raise RuntimeError("fake generator failure")
        self._burn()
        rng = rng or np.random.default_rng(self.bars)
        self.bars += 1
        self.capsules.append(capsule)
        valence, arousal = capsule.valence, capsule.arousal
        scale = MAJOR if valence >= 0 else MINOR
        steps_per_beat = 2 if arousal < 0 else 4
        length = self.meter.beats_per_bar
        step = 1.0 / steps_per_beat
        octave = 12 if arousal > 0.3 else 0
        velocity = int(min(127, max(1, 70 + 40 * arousal)))
        notes = []
        for i in range(int(length * steps_per_beat)):
            if i and rng.random() > 0.5 + 0.4 * arousal:
                continue
            degree = int(rng.integers(0, len(scale)))
            pitch = min(127, self.root + octave + scale[degree])
            notes.append(Note(pitch, i * step, step * 0.9, velocity))
        return notes

    def revise(self, from_beat: float, capsule: Capsule, sampling: SamplingOverrides = NO_OVERRIDES, *,
               rng: np.random.Generator | None = None, drop_bars: int = 0) -> list[Note]:
        """The last bar again from ``from_beat`` on (the bars after it forgotten), in ``capsule``."""
        self.revisions = getattr(self, "revisions", 0) + 1
        self.bars -= 1 + drop_bars
        return [n for n in self.generate_bar(capsule, sampling, rng=rng) if n.onset >= from_beat]

    def _burn(self) -> None:
        if self.cost_ms <= 0:
            return
        end = time.perf_counter() + self.cost_ms * self.gil_share / 1000
        x = 0
        while time.perf_counter() < end:  # pure Python: holds the GIL
            x += 1
        end = time.perf_counter() + self.cost_ms * (1 - self.gil_share) / 1000
        a = np.ones((96, 96))
        while time.perf_counter() < end:  # numpy: mostly releases the GIL
            a = np.tanh(a @ a / 96.0)


class FakeVoices:
    """A deterministic stand-in for the ensemble (a :class:`~affetto.ensemble.accompany.Voicer`).

    Under each melody note: a third below (minor when valence < 0, else
    major) on part 1, a sixth below on part 2, and the note two octaves down
    on part 3 on the bar's first note only, so a test can tell the parts and
    the emotion apart.
    """

    path = "builtin:fake-voices"

    def __init__(self, meter: TimeSignature | None = None) -> None:
        self.meter = meter or TimeSignature()
        self.calls = 0

    def voice_bars(self, melody: Sequence[Note], bars: int, capsule: Capsule, *, seed: int = 0) -> list[list[Note]]:
        self.calls += 1
        length = self.meter.beats_per_bar
        third = 3 if capsule.valence < 0 else 4
        out: list[list[Note]] = [[] for _ in range(bars)]
        for n in sorted(melody, key=lambda n: n.onset):
            bar = int(n.onset // length)
            if not 0 <= bar < bars:
                continue
            onset = n.onset - bar * length
            velocity = max(1, n.velocity - 8)
            out[bar].append(Note(max(0, n.pitch - third), onset, n.duration, velocity, 1))
            out[bar].append(Note(max(0, n.pitch - 8), onset, n.duration, velocity, 2))
            if not any(v.channel == 3 for v in out[bar]):
                out[bar].append(Note(max(0, n.pitch - 24), onset, n.duration, velocity, 3))
        return out
