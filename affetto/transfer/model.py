"""The CVAE transfer family at run time, torch-free: a phrase re-played in another emotion.

Representation (shared with training, :mod:`affetto.models.transfer`): a
phrase of 1-4 bars is a piano roll of ``bars x bar_steps`` sixteenth steps
by 88 pitches with two channels, *onset* and *frame* (sounding), so chords
and both hands are kept and a note's length is its run of frames. Before
encoding, the phrase is moved so that its tonic (Krumhansl's estimate, the
project's own judge) is C, by at most six semitones either way; after
decoding it is moved back. Valence then asks the same of every phrase
("minor: the third, sixth and seventh degrees of C a semitone lower"), which
a small model learns from the corpus's parallel-mode copies, whatever the key.

One ONNX graph holds three parts: the encoder (roll + the source's
condition -> a latent ``z`` per eighth note, mean and log-variance), the decoder
(``z`` + a condition -> onset and frame probabilities; non-autoregressive,
all bars at once) and the performance decoder (ToneNet's idea: a velocity
per note from the notes and the emotion). A condition is the emotion
capsule (4 weights) and the mode (major, minor) as soft weights, plus the
attribute tokens of the vocabulary: the meter, and each bar's density and
polyphony bins (:mod:`affetto.analysis.attributes`).

How notes come out of the decoder's probabilities: *anchored* (the
manifest's ``decode.anchor`` > 0, what the shipped model asks for) keeps
every source note, its onset and length, and lets the decoder move it at
most ``anchor`` semitones, to the pitch it scores highest
(:func:`anchored_steps`): the phrase stays the player's, and which notes
move, and which way, is the model's. *Free* (``anchor`` 0) writes a note
wherever the onset probability reaches ``threshold``: the decoder's own
texture, which on dense piano phrases from outside the corpus drops notes
and moves the top line.

``strength`` s in (0, 1] mixes the two conditions, ``(1 - s) * source + s *
target`` (capsule and mode weights alike), and scales the sampled deviation:
``z = mean + s * noise * sigma * eps`` with ``eps`` from ``rng`` (no ``rng``:
``eps = 0``, the posterior mean, the same output every call). ``strength``
0 returns the source itself. Velocities are the source's, each scaled by the
ratio of what the performance decoder plays for the output under the mixed
condition to what it plays for the source under its own, so the player's
accents stay and the emotion moves the level.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from affetto.analysis.attributes import DENSITY_EDGES, POLYPHONY_EDGES, bar_attributes
from affetto.analysis.emotion import Capsule, va_capsule
from affetto.analysis.judge import estimate_key, judge_arrays
from affetto.errors import ConfigError, ModelFileError
from affetto.manifest import read_manifest
from affetto.music.notes import Grid, Note, TimeSignature, sort_notes
from affetto.runtime.assets import asset_path
from affetto.tokens.layout import DEFAULT_METERS

FAMILY = "transfer"
MODEL_NAME = "affetto-transfer.onnx"
STEPS_PER_BEAT = 4
PITCH_MIN = 21  # A0
PITCHES = 88  # A0..C8
MAX_BARS = 4  # bars per run of the graph; longer phrases go in chunks of 4 bars
MAX_BAR_STEPS = 32
METERS = tuple(TimeSignature.parse(m) for m in DEFAULT_METERS)
N_DENSITY = len(DENSITY_EDGES) + 2
N_POLY = len(POLYPHONY_EDGES) + 2
N_FEATURES = 7  # per note for the performance decoder, see note_features
LABEL_TEMPO = 110.0  # the corpus labels' tempo (affetto.models.data.DataConfig.label_tempo)
INPUTS = ("roll", "src_cond", "tgt_cond", "density", "poly", "meter", "eps", "notes", "note_mask", "perf_cond")
OUTPUTS = ("probs", "mean", "velocity")


# ---- representation (shared with training) --------------------------------------------------
def meter_index(meter: TimeSignature) -> int:
    """Index of ``meter`` among the vocabulary's meters, or of one of the same bar length."""
    if meter in METERS:
        return METERS.index(meter)
    for i, m in enumerate(METERS):
        if abs(m.beats_per_bar - meter.beats_per_bar) < 1e-9:
            return i
    raise ConfigError(f"meter {meter} is not one the transfer model knows "
                      f"({', '.join(map(str, METERS))}, or one of the same bar length)")


def tonic_shift(tonic: int) -> int:
    """Semitones to subtract so that pitch class ``tonic`` lands on C, moving at most 6."""
    tonic = int(tonic) % 12
    return tonic if tonic <= 6 else tonic - 12


def fold(pitch: np.ndarray, lo: int = PITCH_MIN, hi: int = PITCH_MIN + PITCHES - 1) -> np.ndarray:
    """Pitches moved by octaves into ``lo..hi``."""
    pitch = np.asarray(pitch, dtype=np.int64)
    below = np.maximum(0, -((pitch - lo) // 12))
    above = np.maximum(0, -((hi - pitch) // 12))
    return np.clip(pitch + 12 * below - 12 * above, lo, hi)


def phrase_roll(notes: np.ndarray, n_bars: int, bar_steps: int, shift: int = 0) -> np.ndarray:
    """(bars, bar_steps, 2, P) float32 roll of an (N, >=3) step array (onset, duration, pitch).

    Pitches are lowered by ``shift`` and folded into the roll; frames stop at
    the phrase's end; notes whose onset is past it are left out.
    """
    total = n_bars * bar_steps
    roll = np.zeros((total, 2, PITCHES), dtype=np.float32)
    notes = np.asarray(notes, dtype=np.int64).reshape(-1, notes.shape[-1] if np.ndim(notes) == 2 else 4)
    keep = (notes[:, 0] >= 0) & (notes[:, 0] < total)
    notes = notes[keep]
    if len(notes):
        p = fold(notes[:, 2] - shift) - PITCH_MIN
        roll[notes[:, 0], 0, p] = 1.0
        for on, dur, q in zip(notes[:, 0].tolist(), notes[:, 1].tolist(), p.tolist()):
            roll[on : min(on + max(dur, 1), total), 1, q] = 1.0
    return roll.reshape(n_bars, bar_steps, 2, PITCHES)


def roll_steps(probs: np.ndarray, shift: int = 0, threshold: float = 0.5) -> np.ndarray:
    """(N, 3) onset, duration, pitch of a (bars, bar_steps, 2, P) probability roll.

    A note starts where the onset channel reaches ``threshold`` and lasts while
    the frame channel does, up to the next onset of its pitch (at least a step).
    """
    bars, steps = probs.shape[:2]
    flat = probs.reshape(bars * steps, 2, -1)
    on = flat[:, 0] >= threshold
    frame = (flat[:, 1] >= threshold) & ~on
    total = len(flat)
    rows = []
    for s, p in zip(*np.nonzero(on)):
        d = 1
        while s + d < total and frame[s + d, p]:
            d += 1
        rows.append((int(s), d, int(p) + PITCH_MIN + shift))
    out = np.array(rows, dtype=np.int64).reshape(-1, 3)
    if len(out):
        out[:, 2] = fold(out[:, 2], 0, 127)
    return out


def anchored_steps(source: np.ndarray, probs: np.ndarray, shift: int = 0, radius: int = 1,
                   bias: float = 1.0, baseline: np.ndarray | None = None, contrast: float = 0.0) -> np.ndarray:
    """(N, 3) onset, duration, pitch: each source note re-pitched by the decoder, its onset and length kept.

    ``source`` is an (N, >=3) step array (onset, duration, pitch) of the phrase
    the (bars, bar_steps, 2, P) probability roll was decoded from, ``shift``
    the semitones the roll was lowered by. Each note may move at most
    ``radius`` semitones: to the pitch whose onset log-odds at its step are
    highest, its own pitch counted ``bias`` higher (where the decoder is
    unsure, the player's note stays). With a ``baseline`` roll (the same z
    decoded under the source's own condition) the scores also count
    ``contrast`` times what the asked emotion changes, ``lo - lo_baseline``:
    what the decoder writes whatever it is asked (a reconstruction's slips,
    common on textures the corpus lacks) cancels, what the emotion asks for
    stands out. Notes struck together are placed from the top down and
    never onto one pitch. Rhythm, texture and register are the source's;
    which notes move, and which way, is the model's.
    """
    source = np.asarray(source, dtype=np.int64).reshape(-1, source.shape[-1] if np.ndim(source) == 2 else 4)
    bars, steps = probs.shape[:2]
    total = bars * steps
    out = source[:, :3].copy()
    inside = np.flatnonzero((source[:, 0] >= 0) & (source[:, 0] < total))
    if not len(inside):
        return out
    onset = source[inside, 0]
    own = fold(source[inside, 2] - shift) - PITCH_MIN  # (n,) each note's cell in the roll
    offsets = np.arange(-radius, radius + 1)
    cells = own[:, None] + offsets[None, :]  # (n, 2r + 1) the pitches each may take
    at = (onset[:, None], 0, np.clip(cells, 0, PITCHES - 1))

    def logodds(roll: np.ndarray) -> np.ndarray:
        p = np.clip(roll.reshape(total, 2, -1)[at].astype(np.float64), 1e-6, 1 - 1e-6)
        return np.log(p) - np.log1p(-p)

    scores = logodds(probs)
    if baseline is not None and contrast:
        scores = scores + contrast * (scores - logodds(baseline))
    scores += np.where(offsets == 0, bias, 0.0)[None, :]
    scores[(cells < 0) | (cells >= PITCHES)] = -np.inf
    choice = scores.argmax(1)  # the first (lowest) of equal scores
    # Notes struck together are placed from the top down, each onto a pitch none above it took; where no
    # two of them chose one pitch, that is what each chose.
    chosen = cells[np.arange(len(choice)), choice]
    pairs, counts = np.unique(np.stack([onset, chosen]), axis=1, return_counts=True)
    for step in np.unique(pairs[0][counts > 1]).tolist():
        rows = np.flatnonzero(onset == step)
        taken: set[int] = set()
        for j in rows[np.argsort(-source[inside[rows], 2], kind="stable")].tolist():
            row = scores[j].tolist()
            ranked = sorted(range(len(row)), key=lambda k: -row[k])  # stable: the lower pitch on a tie
            free = [k for k in ranked if row[k] > -np.inf and int(cells[j, k]) not in taken]
            choice[j] = free[0] if free else radius  # every neighbour taken above: keep it (a doubled note)
            taken.add(int(cells[j, choice[j]]))
    out[inside, 2] = np.clip(source[inside, 2] + offsets[choice], 0, 127)
    return out


def note_features(notes: np.ndarray, bar_steps: int, meter: int) -> np.ndarray:
    """(N, 7) int64 features of an (N, >=3) step array, for the performance decoder.

    Columns: pitch - 21 (clipped to the roll), step in the bar, bar (0..3, then
    repeating), duration class (log2 of steps, 0..7), notes struck with it
    (1..8, minus one), its rank from the top of its onset (0..7), the meter.
    Rows keep the order of ``notes``.
    """
    notes = np.asarray(notes, dtype=np.int64).reshape(-1, notes.shape[-1] if np.ndim(notes) == 2 else 4)
    n = len(notes)
    out = np.zeros((n, N_FEATURES), dtype=np.int64)
    if not n:
        return out
    onset, dur, pitch = notes[:, 0], np.maximum(notes[:, 1], 1), notes[:, 2]
    out[:, 0] = np.clip(pitch - PITCH_MIN, 0, PITCHES - 1)
    out[:, 1] = np.clip(onset % bar_steps, 0, MAX_BAR_STEPS - 1)
    out[:, 2] = (onset // bar_steps) % MAX_BARS
    out[:, 3] = np.clip(np.floor(np.log2(dur)), 0, 7)
    _, inverse, counts = np.unique(onset, return_inverse=True, return_counts=True)
    out[:, 4] = np.clip(counts[inverse] - 1, 0, 7)
    above = (onset[:, None] == onset[None, :]) & (pitch[None, :] > pitch[:, None])
    out[:, 5] = np.clip(above.sum(1), 0, 7)
    out[:, 6] = meter
    return out


def key_of(notes: np.ndarray) -> tuple[int, int]:
    """(tonic pitch class, mode: 0 major, 1 minor) of a step array (durations in steps)."""
    if len(notes) == 0:
        return 0, 0
    tonic, mode, _ = estimate_key(notes[:, 2], notes[:, 1] / STEPS_PER_BEAT)
    return tonic, int(mode == "minor")


def capsule_of(notes: np.ndarray, beats: float) -> np.ndarray:
    """The emotion a phrase shows (the feature judge's valence and arousal as a capsule), (4,) float32."""
    if len(notes) == 0:
        return np.full(4, 0.25, dtype=np.float32)
    v = judge_arrays(notes[:, 2], notes[:, 0] / STEPS_PER_BEAT, notes[:, 1] / STEPS_PER_BEAT, notes[:, 3], beats,
                     LABEL_TEMPO)
    return np.array(va_capsule(max(-1.0, min(1.0, v.valence)), max(-1.0, min(1.0, v.arousal))).weights,
                    dtype=np.float32)


def condition(capsule: Sequence[float] | np.ndarray, mode: int | float) -> np.ndarray:
    """(6,) float32: the capsule's 4 weights, then the mode's (major, minor) weights."""
    minor = float(mode)
    return np.array([*capsule, 1.0 - minor, minor], dtype=np.float32)


def bar_bins(notes: np.ndarray, n_bars: int, bar_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Each bar's density and polyphony bins (the vocabulary's DENS and POLY)."""
    return bar_attributes(np.asarray(notes, dtype=np.int64).reshape(-1, 4), bar_steps, n_bars, STEPS_PER_BEAT,
                          DENSITY_EDGES, POLYPHONY_EDGES)


def steps_of(notes: Sequence[Note], grid: Grid = Grid(STEPS_PER_BEAT)) -> np.ndarray:
    """(N, 4) onset, duration, pitch, velocity in steps (snapped to the grid, at least one step long)."""
    rows = []
    for n in notes:
        on = grid.to_steps(n.onset)
        rows.append((on, max(grid.to_steps(n.end), on + 1) - on, n.pitch, n.velocity))
    return np.array(rows, dtype=np.int64).reshape(-1, 4)


# ---- the runtime ----------------------------------------------------------------------------
@dataclass(frozen=True)
class DecodeSettings:
    threshold: float = 0.5  # onset/frame probability a note needs (free decoding, anchor 0)
    noise: float = 0.5  # share of the posterior's sigma a seeded draw moves z by, at strength 1
    anchor: int = 0  # > 0: every source note kept, moved at most this many semitones (anchored_steps)
    anchor_bias: float = 1.0  # log-odds in favour of a note's own pitch when anchored
    contrast: float = 0.0  # anchored: weight of what the asked condition changes against the source's own

    @classmethod
    def from_manifest(cls, decode: dict) -> DecodeSettings:
        """The manifest's ``decode`` section; a field it lacks (an older export) keeps the default here."""
        return cls(**{f.name: type(getattr(cls, f.name))(decode[f.name]) for f in fields(cls) if f.name in decode})


class CvaeTransfer:
    """The transfer family's ``.onnx`` in an ONNX Runtime session; meets :class:`affetto.transfer.api.Transfer`."""

    name = "cvae"

    def __init__(self, path: str | Path | None = None, threads: int = 1, *, manifest: dict | None = None,
                 settings: DecodeSettings | None = None) -> None:
        from affetto.runtime.session import open_session  # lazy: ONNX Runtime loads here

        self.path = Path(path) if path is not None else asset_path(MODEL_NAME)
        self.manifest = manifest if manifest is not None else read_manifest(self.path)
        if self.manifest.get("family") != FAMILY:
            raise ModelFileError(f"{self.path}: not a transfer model (family {self.manifest.get('family')!r})")
        if not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"threads must be an int >= 1, got {threads!r}")
        decode = self.manifest.get("decode", {})
        self.settings = settings or DecodeSettings.from_manifest(decode)
        self.z_dim = int(self.manifest["model"]["z_dim"])
        self.z_steps = int(self.manifest["model"].get("z_steps", 2))
        self.session = open_session(self.path, threads=threads, provider="cpu")
        # What a run that skips one part feeds it: tiny, valid inputs.
        self._no_notes = (np.zeros((1, 1, N_FEATURES), np.int64), np.ones((1, 1), np.float32),
                          np.zeros((1, 4), np.float32))

    # ---- the parts --------------------------------------------------------------------------
    def _feeds(self, roll: np.ndarray, src: np.ndarray, tgt: np.ndarray, density: np.ndarray, poly: np.ndarray,
               meter: int, eps: np.ndarray) -> dict[str, Any]:
        notes, mask, perf = self._no_notes
        return {"roll": roll[None], "src_cond": src[None], "tgt_cond": tgt[None], "density": density[None],
                "poly": poly[None], "meter": np.array([meter], np.int64), "eps": eps[None].astype(np.float32),
                "notes": notes, "note_mask": mask, "perf_cond": perf}

    def decode(self, roll: np.ndarray, src: np.ndarray, tgt: np.ndarray, density: np.ndarray, poly: np.ndarray,
               meter: int, eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probs (bars, steps, 2, P), posterior mean (bars, steps / z_steps, Z)) of one phrase roll.

        ``tgt`` may be (k, 6), k conditions for the same phrase and z, decoded in one run: probs are then
        (k, bars, steps, 2, P).
        """
        if np.ndim(tgt) == 1:
            probs, mean = self.session.run(["probs", "mean"], self._feeds(roll, src, tgt, density, poly, meter, eps))
            return probs[0], mean[0]
        k = len(tgt)
        feeds = self._feeds(roll, src, tgt[0], density, poly, meter, eps)
        for name in ("roll", "src_cond", "density", "poly", "meter", "eps"):
            feeds[name] = np.repeat(feeds[name], k, axis=0)
        feeds["tgt_cond"] = np.asarray(tgt, np.float32)
        probs, mean = self.session.run(["probs", "mean"], feeds)
        return probs, mean[0]

    def perform(self, features: Sequence[np.ndarray], capsules: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Velocities (1..127 floats) of note sets (each (N, 7) features) under capsules, in one run."""
        rows = max(1, max((len(f) for f in features), default=1))
        feats = np.zeros((len(features), rows, N_FEATURES), np.int64)
        mask = np.zeros((len(features), rows), np.float32)
        for i, f in enumerate(features):
            feats[i, : len(f)] = f
            mask[i, : len(f)] = 1.0
        mask[:, 0] = 1.0  # an empty set attends to its padding rather than to nothing
        roll, src, tgt, density, poly, meter, eps = self._empty_phrase()
        feeds = self._feeds(roll, src, tgt, density, poly, meter, eps)
        feeds.update(notes=feats, note_mask=mask, perf_cond=np.stack(capsules).astype(np.float32))
        (velocity,) = self.session.run(["velocity"], feeds)
        return [velocity[i, : len(f)] for i, f in enumerate(features)]

    def _empty_phrase(self):
        steps = 2 * self.z_steps
        return (np.zeros((1, steps, 2, PITCHES), np.float32), np.zeros(6, np.float32), np.zeros(6, np.float32),
                np.zeros(1, np.int64), np.zeros(1, np.int64), 0, np.zeros((1, 2, self.z_dim), np.float32))

    # ---- the Transfer protocol ----------------------------------------------------------------
    def transfer(self, notes: Sequence[Note], meter: TimeSignature, capsule: Capsule, *, strength: float = 1.0,
                 rng: np.random.Generator | None = None) -> list[Note]:
        """``notes`` re-played in ``capsule``: the same bars and meter (see the module's docstring), decoded as
        the manifest asks (anchored: every note kept)."""
        return self._replay(notes, meter, capsule, strength, rng, self.settings.anchor)

    def vary(self, notes: Sequence[Note], meter: TimeSignature, capsule: Capsule, *,
             rng: np.random.Generator | None = None, strength: float = 0.6) -> list[Note]:
        """A variation of ``notes`` in ``capsule`` (variation mode, each pass): z drawn near the source's with
        ``rng`` and the decoder's own notes written (free decoding), so rhythm and notes change, not only the
        mode; ``strength`` moves the condition as in :meth:`transfer`."""
        return self._replay(notes, meter, capsule, strength, rng, 0)

    def _replay(self, notes: Sequence[Note], meter: TimeSignature, capsule: Capsule, strength: float,
                rng: np.random.Generator | None, anchor: int) -> list[Note]:
        if not isinstance(meter, TimeSignature):
            raise ConfigError(f"meter must be a TimeSignature, got {meter!r}")
        if not isinstance(capsule, Capsule):
            raise ConfigError(f"capsule must be a Capsule, got {capsule!r}")
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 <= strength <= 1.0:
            raise ConfigError(f"strength must be a number in [0, 1], got {strength!r}")
        m_index = meter_index(meter)
        bar_steps = Grid(STEPS_PER_BEAT).steps_per_bar(meter)
        if bar_steps > MAX_BAR_STEPS or bar_steps % self.z_steps:
            raise ConfigError(f"a bar of {meter} ({bar_steps} steps) does not fit the model's latents "
                              f"(at most {MAX_BAR_STEPS} steps, {self.z_steps} per latent)")
        notes = list(notes)
        if strength == 0 or not notes or capsule.is_unconditioned:
            return sort_notes(notes)
        src = steps_of(notes)
        n_bars = int(src[:, 0].max() // bar_steps) + 1
        tonic, mode = key_of(src)
        shift = tonic_shift(tonic)
        target_mode = mode if capsule.valence == 0 else int(capsule.valence < 0)
        s = float(strength)
        out_rows: list[np.ndarray] = []
        for first in range(0, n_bars, MAX_BARS):
            bars = min(MAX_BARS, n_bars - first)
            lo = first * bar_steps
            chunk = src[(src[:, 0] >= lo) & (src[:, 0] < lo + bars * bar_steps)].copy()
            chunk[:, 0] -= lo
            if not len(chunk):
                continue
            own = capsule_of(chunk, bars * meter.beats_per_bar)
            c_src = condition(own, mode)
            c_tgt = (1 - s) * c_src + s * condition(capsule.weights, target_mode)
            density, poly = bar_bins(chunk, bars, bar_steps)
            latents = (bars, bar_steps // self.z_steps, self.z_dim)
            eps = np.zeros(latents, np.float32)
            if rng is not None:
                eps = (s * self.settings.noise * rng.standard_normal(latents)).astype(np.float32)
            roll = phrase_roll(chunk, bars, bar_steps, shift)
            contrast = self.settings.contrast if anchor > 0 else 0.0
            baseline = None
            if contrast:  # the same z under the source's own condition beside the asked one, in one run
                (probs, baseline), _ = self.decode(roll, c_src, np.stack([c_tgt, c_src]), density, poly, m_index, eps)
            else:
                probs, _ = self.decode(roll, c_src, c_tgt, density, poly, m_index, eps)
            if anchor > 0:
                made = anchored_steps(chunk, probs, shift, anchor, self.settings.anchor_bias, baseline, contrast)
            else:
                made = roll_steps(probs, shift, self.settings.threshold)
            velocity = self._velocities(chunk, made, bar_steps, m_index, own, c_tgt[:4])
            made = np.column_stack([made, velocity]) if len(made) else np.zeros((0, 4), np.int64)
            made[:, 0] += lo
            out_rows.append(made)
        return self._notes(out_rows, notes, n_bars * meter.beats_per_bar)

    def _velocities(self, source: np.ndarray, made: np.ndarray, bar_steps: int, meter: int, own: np.ndarray,
                    target: np.ndarray) -> np.ndarray:
        """The source's velocity at each made note (its nearest source note at that onset, else the source's
        mean), times what the performance decoder plays for it under ``target`` over the source under ``own``."""
        if not len(made):
            return np.zeros(0, np.int64)
        v_src, v_made = self.perform([note_features(source, bar_steps, meter), note_features(made, bar_steps, meter)],
                                     [own, target])
        same = made[:, 0][:, None] == source[:, 0][None, :]  # (made, source): struck together
        nearest = np.where(same, np.abs(made[:, 2][:, None] - source[:, 2][None, :]), np.iinfo(np.int64).max).argmin(1)
        matched = same.any(1)
        base = np.where(matched, source[nearest, 3], float(source[:, 3].mean()))
        overall = float(v_made.mean() / max(v_src.mean(), 1.0))
        ratio = np.where(matched, v_made / np.maximum(v_src[nearest], 1.0), overall)
        return np.clip(np.round(base * ratio), 1, 127).astype(np.int64)

    @staticmethod
    def _notes(rows: list[np.ndarray], source: Sequence[Note], end: float) -> list[Note]:
        """Notes of made step rows; channels from the source note nearest in time and pitch; nothing past the
        phrase's last bar line (or the source's own last release, if later)."""
        end = max(end, max(n.end for n in source))
        made = np.concatenate(rows) if rows else np.zeros((0, 4), np.int64)
        onsets = np.array([n.onset for n in source])
        pitches = np.array([n.pitch for n in source])
        channels = np.array([n.channel for n in source])
        # nearest in time, then in pitch (onset gaps in sixteenths outweigh any pitch gap)
        cost = np.abs(made[:, 0][:, None] / STEPS_PER_BEAT - onsets[None, :]) * 1e4 + np.abs(
            made[:, 2][:, None] - pitches[None, :])
        near = channels[cost.argmin(1)] if len(made) else channels[:0]
        out = []
        for (on, dur, pitch, vel), channel in zip(made.tolist(), near.tolist()):
            onset = on / STEPS_PER_BEAT
            out.append(Note(int(pitch), onset, min(dur / STEPS_PER_BEAT, end - onset), int(vel), int(channel)))
        return sort_notes(out)


def load_transfer(path: str | Path | None = None, *, manifest: dict | None = None, threads: int = 1,
                  **_: Any) -> CvaeTransfer:
    """The runtime family registry's loader (:func:`affetto.runtime.families.load_model`)."""
    return CvaeTransfer(path, threads, manifest=manifest)
