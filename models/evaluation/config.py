"""What ``affetto eval`` is asked to do (:class:`EvalConfig`), and what one condition yields."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from affetto.errors import ConfigError
from affetto.models.emotion_classifier import ClassifierConfig
from affetto.models.evaluation.data import Phrase

# Neighbouring quadrants share one axis; their even blend should keep that axis and sit on the other's edge.
BLENDS = (
    ("Q1+Q2 excited", (0.5, 0.5, 0.0, 0.0), "arousal", 1.0),
    ("Q2+Q3 dark", (0.0, 0.5, 0.5, 0.0), "valence", -1.0),
    ("Q3+Q4 quiet", (0.0, 0.0, 0.5, 0.5), "arousal", -1.0),
    ("Q4+Q1 bright", (0.5, 0.0, 0.0, 0.5), "valence", 1.0),
)


@dataclass(frozen=True)
class EvalConfig:
    model: str | None = None  # an affetto .onnx; None: the shipped model
    bars_per_quadrant: int = 200  # generated bars per quadrant at the default sampling
    seeds: str = "held-out"  # "held-out" (test split of the model's data) or a folder of MIDI files
    data: str | None = None  # the training data to split; None: the model's own (its manifest)
    guidance_scales: tuple[float, ...] = (1.0, 1.5, 3.0)
    temperatures: tuple[float, ...] = (0.8, 1.0, 1.2)
    candidate_counts: tuple[int, ...] = (1, 4, 8)  # bars drawn per bar kept (the judge picks; see the engine)
    sweep_bars: int = 100  # bars per quadrant for each guidance/temperature setting off the default
    blend_bars: int = 48  # bars per blended capsule
    phrase_bars: int = 4  # generated bars judged together (the judge needs a few bars for a key)
    nll_segments: int = 64  # held-out segments scored for bits per note
    judge_pieces: int = 1500  # training pieces (with augmented variants) the learned judge learns from
    learned_judge: bool = True
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    threads: int = 1  # ONNX Runtime and torch threads
    follow_mode: bool = True  # the engine moves a context to its parallel mode when the valence asks (as the daemon)
    listen: bool = True  # the independent ears: music21's key finders, filled bars, outside seeds (listening.py)
    listen_phrases: int = 12  # unseeded phrases per meter, quadrant and candidate setting for the listening
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("bars_per_quadrant", "sweep_bars", "blend_bars", "phrase_bars"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.nll_segments < 0 or self.judge_pieces < 1 or self.threads < 1:
            raise ConfigError("nll_segments must be >= 0, judge_pieces and threads >= 1")
        for g in self.guidance_scales:
            if not 0 <= g <= 20:
                raise ConfigError(f"guidance scales must be in [0, 20], got {g}")
        for t in self.temperatures:
            if not t > 0:
                raise ConfigError(f"temperatures must be > 0, got {t}")
        for n in self.candidate_counts:
            if not isinstance(n, int) or not 1 <= n <= 16:
                raise ConfigError(f"candidate counts must be ints in 1..16, got {n}")

    @classmethod
    def quick(cls, **changes) -> EvalConfig:
        """Tiny numbers for tests and smoke runs: seconds, not minutes; the figures mean little."""
        small = dict(bars_per_quadrant=8, sweep_bars=4, blend_bars=4, nll_segments=4, judge_pieces=40,
                     classifier=ClassifierConfig(steps=30, batch=16), listen_phrases=1)
        return cls(**{**small, **changes})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Generated:
    """Phrases generated under one condition, with what was measured of each."""

    phrases: list[Phrase] = field(default_factory=list)
    feature: list[int] = field(default_factory=list)  # feature judge's quadrant
    valence: list[float] = field(default_factory=list)
    arousal: list[float] = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)
    # (same key, same tonic, target valence agrees with the seed's mode); None for an unclear seed
    key_kept: list[tuple | None] = field(default_factory=list)
    learned: list[int] = field(default_factory=list)
    seconds: float = 0.0
    tokens: int = 0
