"""The default corpus: the scores that install with music21, as grid-aligned pieces.

ABC collections (folk tunes) are split on ``X:`` and parsed with symusic,
which expands repeats and takes well under a millisecond per tune; MusicXML
and Humdrum scores are parsed with music21 in worker processes. Every voice
is merged into one piano part, onsets and durations are snapped to the grid,
and a pickup bar is shifted so that beat 0 of every piece is a bar line.
The parsed result is cached as ``.npz`` + JSON (no pickle), keyed by the
corpus groups, the grid and the parser versions, so a second run is fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from affetto.errors import DatasetError
from affetto.music.notes import Grid, TimeSignature
from affetto.quiet import quiet_fds

log = logging.getLogger(__name__)

CACHE_FORMAT = 2

# Corpus groups used by default. Left out: atonal (Schoenberg, Webern), oddly
# notated (Trecento), and the large Beethoven and Schumann scores, which take
# music21 up to a minute each to parse for little material before their first
# change of meter.
DEFAULT_GROUPS = (
    "essenFolksong",
    "oneills1850",
    "ryansMammoth",
    "airdsAirs",
    "miscFolk",
    "bach",
    "haydn",
    "mozart",
    "monteverdi",
    "palestrina",
    "handel",
    "corelli",
    "joplin",
    "josquin",
    "weber",
    "cpebach",
)
SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".abc")


@dataclass
class Piece:
    """One piece on the grid: ``notes`` is (N, 4) int32 of onset, duration, pitch, velocity.

    Onsets and durations are in grid steps from the first bar line.
    """

    name: str
    group: str
    meter: TimeSignature
    tempo: float
    notes: np.ndarray
    song: str = ""  # pieces of one song (e.g. clips) share it, so the split keeps them together

    @property
    def split_key(self) -> str:
        return self.song or self.name


def split_of(name: str, valid_percent: int = 5, test_percent: int = 5) -> str:
    """Deterministic split by piece name: "train", "valid" or "test"."""
    bucket = int(hashlib.md5(name.encode("utf-8")).hexdigest()[:8], 16) % 100
    if bucket < valid_percent:
        return "valid"
    if bucket < valid_percent + test_percent:
        return "test"
    return "train"


# ---- parsing -------------------------------------------------------------------
def _to_steps(rows: Iterable[tuple[float, float, int, int]], grid: Grid) -> np.ndarray:
    """Rows of (onset beats, duration beats, pitch, velocity) -> deduplicated step array."""
    best: dict[tuple[int, int], tuple[int, int, int, int]] = {}
    for onset, dur, pitch, vel in rows:
        on = grid.to_steps(onset)
        off = max(grid.to_steps(onset + dur), on + 1)
        if on < 0 or not 0 <= pitch <= 127:
            continue
        key = (on, pitch)
        old = best.get(key)
        if old is None or off - on > old[1]:
            best[key] = (on, off - on, pitch, max(1, min(int(vel), 127)))
    if not best:
        return np.zeros((0, 4), dtype=np.int32)
    arr = np.array(sorted(best.values()), dtype=np.int32)
    return arr


def _accent_phase(notes: np.ndarray, bar_steps: int) -> int:
    """Steps to add so the loudest notes (abc2midi accents downbeats) fall on bar lines."""
    if len(notes) == 0 or notes[:, 3].min() == notes[:, 3].max():
        return 0
    loud = notes[notes[:, 3] == notes[:, 3].max(), 0] % bar_steps
    phase = int(np.bincount(loud, minlength=bar_steps).argmax())
    return (-phase) % bar_steps




def parse_abc_text(text: str, name: str, group: str, grid: Grid) -> list[Piece]:
    """Every tune in an ABC file, parsed with symusic; tunes that fail are skipped."""
    import symusic

    pieces = []
    chunks = text.split("\nX:")
    tunes = [chunks[0]] + ["X:" + c for c in chunks[1:]]
    for index, tune in enumerate(tunes):
        if "X:" not in tune[:200] or "K:" not in tune:
            continue
        try:
            with quiet_fds(1, 2):
                # the tick class the factory's Score.from_abc dispatches to: the factory is typed as
                # returning the empty generic placeholder, the class names its fields
                score = symusic.core.ScoreTick.from_abc(tune)
        except Exception as err:  # symusic raises plain RuntimeError on bad ABC
            log.debug("%s#%d: skipped (%s)", name, index, err)
            continue
        tpq = score.ticks_per_quarter
        meter = TimeSignature(4, 4)
        if len(score.time_signatures):
            ts = score.time_signatures[0]
            with contextlib.suppress(ValueError):
                meter = TimeSignature(int(ts.numerator), int(ts.denominator))
        tempo = float(score.tempos[0].qpm) if len(score.tempos) else 120.0
        rows = [
            (n.time / tpq, n.duration / tpq, n.pitch, n.velocity)
            for track in score.tracks
            if not track.is_drum
            for n in track.notes
        ]
        notes = _to_steps(rows, grid)
        if len(notes) < 8:
            continue
        try:
            bar_steps = grid.steps_per_bar(meter)
        except ValueError:
            continue
        notes[:, 0] += _accent_phase(notes, bar_steps)
        pieces.append(Piece(f"{name}#{index}", group, meter, tempo, notes))
    return pieces


def parse_score_file(path: str, name: str, group: str, steps_per_beat: int) -> list[Piece]:
    """One MusicXML/Humdrum score with music21 (run in a worker process)."""
    import music21

    grid = Grid(steps_per_beat)
    try:
        score = music21.converter.parse(path)
        with contextlib.suppress(Exception):
            score = score.stripTies()
    except Exception as err:  # music21 raises many kinds; one bad file must not stop the corpus
        log.warning("%s: skipped (%s)", name, err)
        return []
    sigs = list(score.recurse().getElementsByClass("TimeSignature"))
    meter = TimeSignature(4, 4)
    end = None
    if sigs:
        with contextlib.suppress(ValueError):
            meter = TimeSignature(int(sigs[0].numerator), int(sigs[0].denominator))
        changes = [float(s.getOffsetInHierarchy(score)) for s in sigs[1:] if s.ratioString != sigs[0].ratioString]
        end = min(changes) if changes else None  # cut at the first change of meter
    marks = list(score.recurse().getElementsByClass("MetronomeMark"))
    tempo = float(marks[0].number) if marks and marks[0].number else 100.0
    pad = 0.0
    parts = list(getattr(score, "parts", [])) or [score]
    measures = list(parts[0].getElementsByClass("Measure"))
    if measures:
        pad = float(measures[0].paddingLeft or 0.0)
    rows = []
    for el in score.flatten().notes:
        dur = float(el.quarterLength)
        if dur <= 0:
            continue  # grace note
        onset = float(el.offset)
        if end is not None and onset >= end:
            continue
        velocity = el.volume.velocity if el.volume is not None and el.volume.velocity else 80
        for p in el.pitches:
            rows.append((onset + pad, dur, int(p.midi), velocity))
    notes = _to_steps(rows, grid)
    if len(notes) < 8:
        return []
    return [Piece(name, group, meter, tempo, notes)]


def corpus_files(groups: Sequence[str]) -> list[tuple[str, str, str]]:
    """(path, name, group) of every score in the music21 corpus in ``groups``."""
    from music21 import corpus

    out = []
    for core_path in corpus.getCorePaths():
        path = str(core_path)
        rel = path.split(os.sep + "corpus" + os.sep, 1)[-1]
        group = rel.split(os.sep)[0]
        if group in groups and path.lower().endswith(SCORE_SUFFIXES):
            out.append((path, rel.replace(os.sep, "/"), group))
    return sorted(out)


def load_corpus(
    groups: Sequence[str] = DEFAULT_GROUPS,
    *,
    cache_dir: str | Path | None = None,
    grid: Grid = Grid(),
    workers: int = 2,
    progress: bool = True,
    limit: int | None = None,
) -> list[Piece]:
    """Parse (or read from cache) the music21 corpus groups as pieces."""
    import music21
    import symusic

    files = corpus_files(groups)
    if limit is not None:
        files = files[:limit]
    if not files:
        raise DatasetError(f"no scores found in the music21 corpus for groups {list(groups)}")
    key = json.dumps(
        [CACHE_FORMAT, sorted(groups), grid.steps_per_beat, limit, music21.__version__, symusic.__version__]
    )
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    cache = Path(cache_dir or default_cache_dir()) / f"corpus-{digest}"
    if (cache.with_suffix(".npz")).exists() and (cache.with_suffix(".json")).exists():
        cached = read_pieces(cache)
        log.info("corpus: %d pieces from cache %s", len(cached), cache)
        return cached

    from tqdm import tqdm

    pieces: list[Piece] = []
    abc = [f for f in files if f[0].lower().endswith(".abc")]
    scores = [f for f in files if not f[0].lower().endswith(".abc")]
    bar = tqdm(total=len(files), desc="parsing corpus", unit="file", disable=not progress)
    for path, name, group in abc:
        text = Path(path).read_text(encoding="latin-1")
        pieces.extend(parse_abc_text(text, name, group, grid))
        bar.update(1)
    if scores:
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [pool.submit(parse_score_file, p, n, g, grid.steps_per_beat) for p, n, g in scores]
            for fut in futures:
                pieces.extend(fut.result())
                bar.update(1)
    bar.close()
    write_pieces(cache, pieces)
    log.info("corpus: parsed %d pieces from %d files; cached at %s", len(pieces), len(files), cache)
    return pieces


def default_cache_dir() -> Path:
    root = os.environ.get("AFFETTO_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "affetto"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_pieces(stem: Path, pieces: Sequence[Piece]) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    lengths = np.array([len(p.notes) for p in pieces], dtype=np.int64)
    notes = np.concatenate([p.notes for p in pieces]) if pieces else np.zeros((0, 4), np.int32)
    tmp = stem.with_name(stem.name + ".tmp.npz")
    np.savez_compressed(tmp, notes=notes, lengths=lengths)
    meta = [
        {"name": p.name, "group": p.group, "meter": str(p.meter), "tempo": p.tempo} for p in pieces
    ]
    stem.with_suffix(".json").write_text(json.dumps(meta), encoding="utf-8")
    os.replace(tmp, stem.with_suffix(".npz"))


def read_pieces(stem: Path) -> list[Piece]:
    with np.load(stem.with_suffix(".npz"), allow_pickle=False) as data:
        notes, lengths = data["notes"], data["lengths"]
    meta = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return [
        Piece(m["name"], m["group"], TimeSignature.parse(m["meter"]), float(m["tempo"]), notes[a:b])
        for m, a, b in zip(meta, bounds[:-1], bounds[1:])
    ]
