"""The Bach chorales of the music21 corpus as four-track piano-roll phrases.

Each chorale with exactly four parts (soprano, alto, tenor, bass) becomes one
monophonic line per voice on a sixteenth grid: ``pitch[track, step]`` (-1 for
a rest) and ``onset[track, step]``. A pickup is padded so that step 0 is a bar
line. Phrases are 4 bars with a hop of 2 bars; 3/4 chorales are kept, each
12-step bar padded to the 16-step bar of the roll, with a ``triple`` flag.
Other meters are dropped.

Augmentation happens when a batch is drawn: any of the 12 transpositions
(-5..+6 semitones), pitches folded by octaves into the roll's window. The
parallel-mode copy (major <-> minor with the core's ``change_mode``) of every
chorale whose key is clear is made once, at load time, so the same melody
exists in both modes. Labels per phrase: valence from the mode of the
phrase's four voices (``estimate_key``), arousal from onsets per beat against
the training median.

Parsing runs in worker processes; the result is cached as ``.npz`` + JSON
(no pickle). The split is by chorale name (a deterministic hash).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from affetto.analysis.judge import change_mode, estimate_key
from affetto.errors import DatasetError
from affetto.models.corpus import split_of as corpus_split_of

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
TRACKS = ("soprano", "alto", "tenor", "bass")
STEPS_PER_BEAT = 4
BAR_STEPS = 16  # one 4/4 bar; a 3/4 bar fills the first 12
LOW = 33  # lowest pitch of the roll (A1)
PITCHES = 64  # A1..C7


@dataclass(frozen=True)
class PhraseConfig:
    bars: int = 4
    hop_bars: int = 2
    valid_percent: int = 5
    test_percent: int = 10
    min_key_clarity: float = 0.6  # a chorale gets a parallel-mode copy only when its key is this clear

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Chorale:
    """One chorale: ``pitch`` and ``onset`` are (4, steps) int16 / bool; bars are 16 steps."""

    name: str
    triple: bool  # 3/4: the last 4 steps of every bar are padding
    pitch: np.ndarray
    onset: np.ndarray

    @property
    def bars(self) -> int:
        return self.pitch.shape[1] // BAR_STEPS


def split_of(name: str, valid_percent: int = 5, test_percent: int = 10) -> str:
    """Deterministic split by chorale name (the corpus's hash split, with 10 % held out for test)."""
    return corpus_split_of(name, valid_percent, test_percent)


# ---- parsing (worker processes) -------------------------------------------------
def parse_chorale(path: str, name: str) -> Chorale | None:
    """A four-part chorale in 4/4 or 3/4 as monophonic lines, or None."""
    import music21

    try:
        score = music21.converter.parse(path)
    except Exception as err:  # music21 raises many kinds; one bad file must not stop the corpus
        log.warning("%s: skipped (%s)", name, err)
        return None
    if not isinstance(score, music21.stream.Score):  # a lone part or an opus is no four-part chorale
        return None
    parts = list(score.parts)
    if len(parts) != 4:
        return None
    sigs = {s.ratioString for s in score.recurse().getElementsByClass("TimeSignature")}
    if sigs not in ({"4/4"}, {"3/4"}):
        return None
    triple = sigs == {"3/4"}
    beats_per_bar = 3 if triple else 4
    measures = list(parts[0].getElementsByClass("Measure"))
    pad = float(measures[0].paddingLeft or 0.0) if measures else 0.0
    length = float(score.highestTime) + pad
    bars = int(np.ceil(length / beats_per_bar - 1e-6))
    pitch = np.full((4, bars * BAR_STEPS), -1, dtype=np.int16)
    onset = np.zeros((4, bars * BAR_STEPS), dtype=bool)
    for track, part in enumerate(parts):
        with contextlib.suppress(Exception):
            part = part.stripTies()
        for el in part.flatten().notes:
            dur = float(el.quarterLength)
            if dur <= 0:
                continue  # grace note
            start = float(el.offset) + pad
            top = max(int(p.midi) for p in el.pitches)
            a = round(start * STEPS_PER_BEAT)
            b = max(round((start + dur) * STEPS_PER_BEAT), a + 1)
            for s in range(a, b):  # bar-relative step in the 16-step roll
                bar, pos = divmod(s, beats_per_bar * STEPS_PER_BEAT)
                if bar < bars:
                    pitch[track, bar * BAR_STEPS + pos] = top
            bar, pos = divmod(a, beats_per_bar * STEPS_PER_BEAT)
            if bar < bars:
                onset[track, bar * BAR_STEPS + pos] = True
    if (pitch >= 0).sum() < 32:
        return None
    return Chorale(name, triple, pitch, onset)


def chorale_files() -> list[tuple[str, str]]:
    """(path, name) of every Bach score in the music21 corpus (the chorales among them have four parts)."""
    from music21 import corpus

    out = []
    for path in corpus.getComposer("bach"):
        path = str(path)
        if path.lower().endswith((".mxl", ".xml", ".krn")):
            out.append((path, "bach/" + Path(path).name))
    return sorted(out)


def load_chorales(*, cache_dir: str | Path | None = None, workers: int = 2, progress: bool = True,
                  limit: int | None = None) -> list[Chorale]:
    """Parse (or read from cache) the four-part chorales."""
    import music21

    from affetto.models.corpus import default_cache_dir

    files = chorale_files()[:limit]
    if not files:
        raise DatasetError("no Bach chorales found in the music21 corpus")
    key = json.dumps([CACHE_FORMAT, limit, music21.__version__])
    stem = Path(cache_dir or default_cache_dir()) / f"chorales-{hashlib.sha1(key.encode()).hexdigest()[:12]}"
    if stem.with_suffix(".npz").exists() and stem.with_suffix(".json").exists():
        return read_chorales(stem)
    from tqdm import tqdm

    chorales = []
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(parse_chorale, p, n) for p, n in files]
        for fut in tqdm(futures, desc="parsing chorales", unit="file", disable=not progress):
            c = fut.result()
            if c is not None:
                chorales.append(c)
    write_chorales(stem, chorales)
    log.info("chorales: %d of %d files; cached at %s", len(chorales), len(files), stem)
    return chorales


def write_chorales(stem: Path, chorales: list[Chorale]) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    tmp = stem.with_name(stem.name + ".tmp.npz")
    np.savez_compressed(
        tmp,
        pitch=np.concatenate([c.pitch for c in chorales], axis=1),
        onset=np.concatenate([c.onset for c in chorales], axis=1),
    )
    meta = [{"name": c.name, "triple": c.triple, "steps": int(c.pitch.shape[1])} for c in chorales]
    stem.with_suffix(".json").write_text(json.dumps(meta), encoding="utf-8")
    os.replace(tmp, stem.with_suffix(".npz"))


def read_chorales(stem: Path) -> list[Chorale]:
    with np.load(stem.with_suffix(".npz"), allow_pickle=False) as data:
        pitch, onset = data["pitch"], data["onset"]
    meta = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
    bounds = np.concatenate([[0], np.cumsum([m["steps"] for m in meta])])
    return [Chorale(m["name"], m["triple"], pitch[:, a:b], onset[:, a:b])
            for m, a, b in zip(meta, bounds[:-1], bounds[1:])]


# ---- phrases ----------------------------------------------------------------------
def piece_key(c: Chorale) -> tuple[int, str, float]:
    sounding = c.pitch[c.pitch >= 0]
    return estimate_key(sounding, np.ones(len(sounding)))


def parallel_mode(c: Chorale, min_clarity: float) -> Chorale | None:
    """The chorale moved to its parallel mode (major <-> natural minor), or None if its key is unclear."""
    tonic, mode, clarity = piece_key(c)
    if clarity < min_clarity:
        return None
    pitch = c.pitch.copy()
    sounding = pitch >= 0
    rows = np.zeros((int(sounding.sum()), 3), dtype=np.int64)
    rows[:, 2] = pitch[sounding]
    pitch[sounding] = change_mode(rows, tonic, mode)[:, 2]
    return Chorale(c.name + "@parallel", c.triple, pitch, c.onset.copy())


@dataclass
class Phrases:
    """Phrases of one split: ``pitch``/``onset`` (N, 4, bars*16); ``valence``, ``density`` (N,)."""

    names: list[str]
    pitch: np.ndarray
    onset: np.ndarray
    triple: np.ndarray  # (N,) bool
    valence: np.ndarray  # (N,) +1 major, -1 minor
    density: np.ndarray  # (N,) onsets per beat, all voices
    key_tonic: np.ndarray  # (N,) pitch class of the phrase's key

    def __len__(self) -> int:
        return len(self.names)


def cut_phrases(chorales: list[Chorale], cfg: PhraseConfig) -> Phrases:
    names, pitches, onsets, triples, valences, densities, tonics = [], [], [], [], [], [], []
    width = cfg.bars * BAR_STEPS
    for c in chorales:
        for bar in range(0, max(c.bars - cfg.bars, 0) + 1, cfg.hop_bars):
            p = c.pitch[:, bar * BAR_STEPS : bar * BAR_STEPS + width]
            o = c.onset[:, bar * BAR_STEPS : bar * BAR_STEPS + width]
            if p.shape[1] < width or (p >= 0).mean() < 0.5:
                continue
            sounding = p[p >= 0]
            tonic, mode, _ = estimate_key(sounding, np.ones(len(sounding)))
            beats = cfg.bars * (3 if c.triple else 4)
            names.append(f"{c.name}:{bar}")
            pitches.append(p)
            onsets.append(o)
            triples.append(c.triple)
            valences.append(1.0 if mode == "major" else -1.0)
            densities.append(o.sum() / beats)
            tonics.append(tonic)
    if not names:
        return Phrases([], np.zeros((0, 4, width), np.int16), np.zeros((0, 4, width), bool),
                       np.zeros(0, bool), np.zeros(0), np.zeros(0), np.zeros(0, np.int64))
    return Phrases(names, np.stack(pitches), np.stack(onsets), np.array(triples), np.array(valences),
                   np.array(densities), np.array(tonics))


def build_splits(chorales: list[Chorale], cfg: PhraseConfig = PhraseConfig()) -> dict[str, Phrases]:
    """Phrases per split; training and validation pieces also in their parallel mode."""
    out = {}
    for split in ("train", "valid", "test"):
        chosen = [c for c in chorales if split_of(c.name, cfg.valid_percent, cfg.test_percent) == split]
        if split != "test":
            chosen += [p for p in (parallel_mode(c, cfg.min_key_clarity) for c in chosen) if p is not None]
        out[split] = cut_phrases(chosen, cfg)
    return out


# ---- rolls and batches --------------------------------------------------------------
def fold(pitch: np.ndarray) -> np.ndarray:
    """Pitches folded by octaves into [LOW, LOW + PITCHES); rests (-1) stay."""
    out = pitch.astype(np.int64)
    sounding = out >= 0
    while ((out < LOW) & sounding).any():
        out = np.where((out < LOW) & sounding, out + 12, out)
    while (out >= LOW + PITCHES).any():
        out = np.where(out >= LOW + PITCHES, out - 12, out)
    return out


def to_roll(pitch: np.ndarray, onset: np.ndarray, bars: int) -> np.ndarray:
    """(..., 4, bars*16) lines -> (..., 4, bars, 16, PITCHES) float32 roll.

    A note re-struck at the same pitch loses the last step of the note before
    it, so repeated notes stay apart in a binary roll.
    """
    p = fold(pitch)
    gap = np.zeros_like(onset)
    gap[..., :-1] = onset[..., 1:] & (p[..., 1:] == p[..., :-1])
    p = np.where(gap, -1, p)
    roll = np.zeros((*p.shape, PITCHES), dtype=np.float32)
    idx = np.nonzero(p >= 0)
    cells = (*idx, p[idx] - LOW)  # (..., pitch) of every sounding step
    roll[cells] = 1.0
    return roll.reshape(*p.shape[:-1], bars, BAR_STEPS, PITCHES)


def capsules(valence: np.ndarray, density: np.ndarray, density_median: float) -> np.ndarray:
    """(N, 4) one-hot quadrants: valence from mode, arousal from onsets per beat against the median."""
    positive_v = valence > 0
    positive_a = density > density_median
    q = np.where(positive_v, np.where(positive_a, 0, 3), np.where(positive_a, 1, 2))
    return np.eye(4, dtype=np.float32)[q]


def sample_batch(ph: Phrases, size: int, rng: np.random.Generator, bars: int, density_median: float,
                 transpose: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(roll [B,4,bars,16,P], capsule [B,4], triple [B,1]) of random phrases in random keys."""
    idx = rng.integers(0, len(ph), size)
    pitch = ph.pitch[idx].astype(np.int64)
    if transpose:
        shift = rng.integers(-5, 7, size)[:, None, None]
        pitch = np.where(pitch >= 0, pitch + shift, -1)
    roll = to_roll(pitch, ph.onset[idx], bars)
    cond = capsules(ph.valence[idx], ph.density[idx], density_median)
    return roll, cond, ph.triple[idx].astype(np.float32)[:, None]
