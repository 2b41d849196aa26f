"""Offline generation: a seed MIDI file (or none) -> bars in an emotion -> a MIDI file.

The same engine the daemon uses, run bar after bar as fast as it goes.
Deterministic for a given ``seed_value``: the engine's sampling draws from
one generator seeded with it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from affetto.analysis.emotion import Capsule, parse_emotion
from affetto.errors import ConfigError
from affetto.music.notes import Note, TimeSignature, bar_count
from affetto.runtime.sampling import NO_OVERRIDES, SamplingOverrides

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class GenerateRequest:
    capsule: Capsule
    emotion_text: str
    bars: int
    bpm: float | None = None
    meter: TimeSignature | None = None
    sampling: SamplingOverrides = NO_OVERRIDES  # None fields: the model's own settings
    seed_value: int = 0
    with_seed: bool = False
    seed_path: str | None = None
    model: str | None = None

    @classmethod
    def build(cls, *, emotion: str, bars: int = 8, bpm: float | None = None, meter: str | None = None,
              temperature: float | None = None, top_p: float | None = None, top_k: int | None = None,
              guidance: float | None = None, seed_value: int = 0, with_seed: bool = False,
              seed_path: str | None = None, model: str | None = None,
              candidates: int | None = None) -> GenerateRequest:
        if not isinstance(bars, int) or bars < 1:
            raise ConfigError(f"bars must be >= 1, got {bars}")
        if bars > 1000:
            raise ConfigError(f"bars must be at most 1000, got {bars}")
        if bpm is not None and not 20 <= bpm <= 400:
            raise ConfigError(f"bpm must be in range 20..400, got {bpm}")
        sampling = SamplingOverrides(temperature=temperature, top_p=top_p, top_k=top_k, guidance=guidance,
                                     candidates=candidates)
        return cls(capsule=parse_emotion(emotion), emotion_text=emotion, bars=bars, bpm=bpm,
                   meter=TimeSignature.parse(meter) if meter else None, sampling=sampling, seed_value=seed_value,
                   with_seed=with_seed, seed_path=seed_path, model=model)


def generate_notes(request: GenerateRequest, engine=None) -> tuple[list[Note], list[Note], TimeSignature, float]:
    """(seed notes, generated notes from the first bar after the seed, meter, bpm)."""
    import numpy as np

    from affetto.music.midifile import read_midi
    from affetto.runtime import load_model

    seed: list[Note] = []
    meter, bpm = request.meter, request.bpm
    if request.seed_path:
        phrase = read_midi(request.seed_path, require_notes=False)
        if not phrase.notes:
            log.warning("%s has no notes: generating without a seed", request.seed_path)
        seed = phrase.notes
        meter = meter or phrase.meter
        bpm = bpm or phrase.tempo
    meter = meter or TimeSignature(4, 4)
    bpm = bpm or 100.0
    if engine is None:
        engine = load_model(request.model, meter=meter)
    seed_bars = bar_count(seed, meter)
    engine.prime(seed, bars=seed_bars or None)
    rng = np.random.default_rng(request.seed_value)
    out: list[Note] = []
    offset = seed_bars * meter.beats_per_bar
    for index in range(request.bars):
        start = offset + index * meter.beats_per_bar
        for n in engine.generate_bar(request.capsule, request.sampling, rng=rng):
            out.append(Note(n.pitch, n.onset + start, n.duration, n.velocity, n.channel))
    return seed, out, meter, bpm


def generate_to_file(request: GenerateRequest, out: str | Path, *, plot: str | Path | None = None) -> str:
    from affetto.music.midifile import write_midi

    seed, notes, meter, bpm = generate_notes(request)
    body = notes if request.with_seed else [
        Note(n.pitch, n.onset - bar_count(seed, meter) * meter.beats_per_bar, n.duration, n.velocity, n.channel)
        for n in notes
    ]
    written = sorted([*seed, *body], key=lambda n: (n.onset, n.pitch)) if request.with_seed else body
    write_midi(out, written, meter=meter, bpm=bpm)
    if plot:
        from affetto.music.plot import piano_roll

        seed_beats = bar_count(seed, meter) * meter.beats_per_bar if request.with_seed else 0.0
        piano_roll(plot, written, meter=meter, title=f"affetto: {request.capsule} ({request.emotion_text})",
                   seed_beats=seed_beats)
    return (f"wrote {out}: {request.bars} bars of {meter} at {bpm:g} BPM, {len(body)} notes, "
            f"emotion {request.capsule}" + (f"; piano roll {plot}" if plot else ""))
