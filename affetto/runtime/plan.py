"""The emotion plan: every lever the emotion pulls on the next bar, decided in one place.

The engine builds one :class:`EmotionPlan` per bar from the capsule, the
sampling settings asked for and the *baseline* (what the player's seed sounds
like), then carries it out. The levers and what each carries:

- **conditioning**: the capsule mixes the model's quadrant embeddings; with
  guidance the unconditioned row that runs beside it is used:
  ``logits = uncond + s * (cond - uncond)``.
- **sampling**: the model's own settings per quadrant (its manifest's
  ``sampling``) under what the user or the bar request asks for.
- **valence -> mode**: a capsule clearly on one side of neutral valence asks
  for major (positive) or minor (negative). The bar's KEY header is held to
  that mode on the context's tonic, and a context whose clear key is in the
  other mode is first moved to its parallel mode (*mode following*), so the
  model continues a minor version of what was played. The first and last bar
  of every 4-bar phrase open on the key's tonic triad (the notes of the bar's
  first onset are its root, third or fifth): a phrase starts and cadences at
  home, so the mode is heard rather than read as its relative key. In a
  minor key the seventh degree is the leading tone: the subtonic (a whole tone
  under the tonic) is not written, as in the harmonic minor of common-practice
  music, where the raised seventh is what tells a minor key from its relative
  major.
- **arousal -> density and velocity, relative to the baseline**: the bar's
  DENS header (onsets per beat) sits one level above the seed's for full
  arousal and one below for none, and its velocities are scaled around the
  seed's loudness. A knob turn therefore moves the music away from what the
  player set, whatever the model played in the bars before. Without a seed
  the emotion's own density and loudness stand in for the baseline. A single
  line is never planned below one onset per beat: a line of one note a bar
  cannot say its key, nor so its mode.
- **texture -> polyphony**: the bar's POLY header (notes per onset) follows
  the seed's (a chordal seed stays chordal, a melody a melody). Two hands
  that take turns (a held melody over broken chords) strike about one note
  per onset but sound two or more: the seed's level is then one under its
  notes sounding, so its continuation keeps two hands; without a
  seed, the emotion's texture: chords under a line for happy, tense and sad,
  fuller sustained chords for calm.
- **candidate judging**: with several candidates, the feature judge keeps
  the bar nearest the capsule's valence and arousal, its valence judged on
  the key the bar's header names (see :class:`~affetto.runtime.policies.CandidateJudge`).

A density or texture control the user turns (``SamplingOverrides.density``,
``.texture``) overrides the planned level. An unconditioned capsule plans
nothing but the meter: the model chooses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from affetto.analysis.attributes import bar_attributes, bin_of
from affetto.analysis.emotion import Capsule, Quadrant
from affetto.analysis.metrics import step_polyphony
from affetto.errors import ConfigError
from affetto.music.notes import Note
from affetto.runtime.sampling import DEFAULT_SAMPLING, MAX_DENSITY, MAX_TEXTURE, SamplingConfig, SamplingOverrides

MODE_VALENCE = 0.25  # valence closer to neutral than this leaves the mode to the model
DENSITY_SWING = 1.0  # density levels above (full arousal) or below (none) the baseline's
VELOCITY_SWING = 0.2  # share of the baseline's loudness added (full arousal) or taken (none)
LINE_DENSITY = 2  # the sparsest DENS level a single line is planned at (up to one onset per beat)
PHRASE_BARS = 4  # bars of a phrase: its first and last open on the tonic triad (with a mode asked)

# Without a seed, the emotion's own (density level, polyphony level, mean velocity); a blended
# capsule blends them. Levels as the vocabulary's DENS/POLY bins (see affetto.analysis.attributes):
# density 2 = up to one onset per beat, 4 = up to two, 5 = up to three; polyphony 3 = up to 2.5
# notes per onset (a line over chords or a bass), 4 = up to 3.25 (sustained chords).
EMOTION_TEXTURE: dict[Quadrant, tuple[float, float, float]] = {
    Quadrant.Q1: (4.0, 3.0, 100.0),  # happy: a moving line over a bass
    Quadrant.Q2: (5.0, 3.0, 105.0),  # tense: driving, loud
    Quadrant.Q3: (2.0, 3.0, 64.0),  # sad: a sparse line over low chords
    Quadrant.Q4: (2.0, 4.0, 60.0),  # calm: sustained chords
}


@dataclass(frozen=True)
class Levers:
    """Which levers the plan pulls; all on by default. The evaluation turns them off to compare."""

    mode: bool = True  # the key header's mode and mode following
    tonic: bool = True  # a phrase's first and last bars open on the tonic triad
    leading: bool = True  # in a minor key the seventh degree is the leading tone (no subtonic)
    arousal: bool = True  # density and velocity relative to the baseline
    texture: bool = True  # polyphony from the seed or the emotion
    judge: bool = True  # candidates judged by the emotion (off: the first draw is kept)


@dataclass(frozen=True)
class Baseline:
    """What the player's seed sounds like: median density and polyphony levels, mean velocity.

    The polyphony level is the larger of the bars' median notes per onset and one level under the
    notes sounding where any sound (two hands that take turns strike one note at a time).

    None everywhere when there is no seed (the emotion's own levels stand in).
    """

    density: int | None = None
    polyphony: int | None = None
    velocity: float | None = None

    @classmethod
    def measure(cls, steps: np.ndarray, bar_steps: int, steps_per_beat: int,
                density_edges: tuple[float, ...], polyphony_edges: tuple[float, ...]) -> Baseline:
        """The baseline of an (N, 4) array of onset step, duration, pitch, velocity."""
        steps = np.asarray(steps, dtype=np.int64).reshape(-1, 4)
        if len(steps) == 0:
            return cls()
        n_bars = int(steps[:, 0].max()) // bar_steps + 1
        density, poly = bar_attributes(steps, bar_steps, n_bars, steps_per_beat, density_edges, polyphony_edges)
        played = density > 0
        struck = int(np.round(np.median(poly[played])))
        sounding = int(bin_of(np.array([step_polyphony(steps[:, 0], steps[:, 1], steps[:, 2])]), polyphony_edges)[0])
        return cls(int(np.round(np.median(density[played]))), max(struck, sounding - 1), float(steps[:, 3].mean()))


@dataclass(frozen=True)
class EmotionPlan:
    """Everything the engine does differently for this emotion, for one bar."""

    capsule: Capsule
    guided: bool  # classifier-free guidance: the capsule's row against the unconditioned one
    sampling: SamplingConfig
    minor: bool | None  # the mode the key header holds to (None: the model's choice)
    anchor: bool  # the bar's first onset sounds the key's tonic triad
    density: int | None  # DENS level (None: the model's choice)
    polyphony: int | None  # POLY level (None: the model's choice)
    velocity: float | None  # the bar's mean velocity (None: as the model wrote it)
    judged: bool  # candidates judged by the emotion
    leading: bool = False  # a minor key asked: its subtonic is not written (the leading tone instead)

    def perform(self, notes: Sequence[Note]) -> list[Note]:
        """The bar as played: velocities scaled so their mean is the plan's (their shape kept)."""
        if self.velocity is None or not notes:
            return list(notes)
        scale = self.velocity / (sum(n.velocity for n in notes) / len(notes))
        return [replace(n, velocity=int(min(127, max(1, round(n.velocity * scale))))) for n in notes]


def model_sampling(spec: Mapping | None, capsule: Capsule) -> SamplingConfig:
    """The model's own sampling settings (a manifest's ``sampling``), else the defaults.

    A manifest may name settings per quadrant (``"Q3": {...}``) over a
    ``"default"``; a blended capsule takes those of its heaviest quadrant.
    """
    spec = spec or {}
    base = DEFAULT_SAMPLING.replace(**spec.get("default", {}))
    if capsule.is_unconditioned:
        return base
    return base.replace(**spec.get(capsule.quadrant.name, {}))


def _blend(capsule: Capsule, column: int) -> float:
    return sum(w * EMOTION_TEXTURE[q][column] for w, q in zip(capsule.weights, Quadrant))


def plan_bar(
    capsule: Capsule,
    sampling: SamplingOverrides | SamplingConfig,
    baseline: Baseline,
    *,
    model_spec: Mapping | None = None,
    guidance_ready: bool = True,
    controls: bool = True,
    levers: Levers = Levers(),
    phrase_bar: int = 0,
) -> EmotionPlan:
    """The plan for the next bar.

    ``sampling`` is what is asked over the model's own settings (a complete
    :class:`SamplingConfig` is used as it is); ``controls`` says whether the
    model's vocabulary has the KEY/DENS/POLY header at all; ``phrase_bar`` is
    where the bar falls in its phrase (0 .. PHRASE_BARS - 1).
    """
    if not isinstance(capsule, Capsule):
        raise ConfigError(f"capsule must be a Capsule, got {capsule!r}")
    config = sampling if isinstance(sampling, SamplingConfig) else sampling.over(model_sampling(model_spec, capsule))
    guided = config.guidance != 1.0 and guidance_ready and not capsule.is_unconditioned
    minor = density = polyphony = None
    velocity = None
    if not capsule.is_unconditioned:
        if levers.mode and abs(capsule.valence) >= MODE_VALENCE:
            minor = capsule.valence < 0
        if levers.arousal:
            if baseline.density is not None:
                density = baseline.density + capsule.arousal * DENSITY_SWING
            else:
                density = _blend(capsule, 0)
            if baseline.velocity is not None:
                velocity = baseline.velocity * (1.0 + VELOCITY_SWING * capsule.arousal)
            else:
                velocity = _blend(capsule, 2)
        if levers.texture:
            polyphony = baseline.polyphony if baseline.polyphony is not None else _blend(capsule, 1)
    planned_density = None if density is None else int(min(MAX_DENSITY, max(1, round(density))))
    planned_poly = None if polyphony is None else int(min(MAX_TEXTURE, max(1, round(polyphony))))
    if planned_density is not None and planned_poly is not None and planned_poly <= 1:
        planned_density = max(planned_density, LINE_DENSITY)  # a line of one note a bar says no key
    if not controls:  # no DENS/POLY header to write (mode following still works on the notes)
        planned_density = planned_poly = None
    return EmotionPlan(
        capsule=capsule,
        guided=guided,
        sampling=config,
        minor=minor,
        anchor=levers.tonic and minor is not None and controls and phrase_bar in (0, PHRASE_BARS - 1),
        density=config.density if config.density is not None else planned_density,
        polyphony=config.texture if config.texture is not None else planned_poly,
        velocity=None if velocity is None else float(min(127.0, max(1.0, velocity))),
        judged=levers.judge and not capsule.is_unconditioned and not config.greedy and config.candidates > 1,
        leading=levers.leading and minor is True and controls,
    )
