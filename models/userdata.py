"""A user's own data set as pieces with labels: a folder of MIDI files, or EMOPIA.

Two layouts are understood:

* any folder of ``.mid``/``.midi`` files (searched recursively), optionally
  with a CSV of labels (``file,quadrant`` header; quadrant as Q1..Q4 or
  happy/tense/sad/calm);
* EMOPIA, whose clips are named ``Q1_<id>_<n>.mid`` with the quadrant in the
  name, in ``midis/`` or directly in the given folder.

Each file is read with :func:`affetto.music.midifile.read_midi` (every channel but
drums merged into one part, time 0 taken as the first bar line) and snapped
to the grid the way the corpus is. A real data set always holds a few broken
files, so a bad file or label row never stops the load: it is logged as one
warning line naming the file and the reason, recorded in ``skipped`` when it
is a file, and the rest loads. Only a missing folder, a folder without MIDI
files, or a label CSV without the expected header raise :class:`DatasetError`.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from affetto.analysis.emotion import Quadrant
from affetto.errors import DatasetError, EmotionError, MidiFileError
from affetto.models.corpus import Piece, _to_steps
from affetto.music.midifile import read_midi
from affetto.music.notes import Grid

log = logging.getLogger(__name__)

MIDI_SUFFIXES = (".mid", ".midi")
LABEL_COLUMNS = ("file", "quadrant")
# EMOPIA clip stems: quadrant, YouTube-style id (may itself hold "_" or "-"), clip number.
EMOPIA_STEM = re.compile(r"(Q[1-4])_(.+)_(\d+)")
DEFAULT_GRID = Grid()  # frozen, so safe to share as a default


@dataclass
class LoadedDataset:
    """Pieces read from a user's folder; ``labels`` maps a piece index to its quadrant."""

    pieces: list[Piece] = field(default_factory=list)
    labels: dict[int, Quadrant] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, one-line reason)


# ---- files -----------------------------------------------------------------------
def _folder(path: str | Path) -> Path:
    folder = Path(path)
    if not folder.exists():
        raise DatasetError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder")
    return folder


def midi_files(folder: Path) -> list[Path]:
    """Every .mid/.midi file under ``folder``, sorted by relative path; DatasetError if none."""
    files = [p for p in folder.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file()]
    if not files:
        raise DatasetError(f"{folder}: no .mid or .midi files found (searched recursively)")
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace(" ()", "")


def read_piece(file: Path, name: str, group: str, grid: Grid = DEFAULT_GRID) -> Piece:
    """One MIDI file as a grid-aligned piece; MidiFileError whose message is the reason alone."""
    if file.stat().st_size == 0:
        raise MidiFileError("empty file (0 bytes)")
    try:
        phrase = read_midi(file)
    except MidiFileError as err:
        reason = str(err).removeprefix(f"{file}: ")
        raise MidiFileError(_one_line(reason)) from err
    except Exception as err:  # mido raises many kinds on a damaged file; one must not stop the load
        raise MidiFileError(_one_line(f"not a readable MIDI file ({type(err).__name__}: {err})")) from err
    try:
        grid.steps_per_bar(phrase.meter)
    except ValueError as err:
        raise MidiFileError(_one_line(str(err))) from err
    rows = [(n.onset, n.duration, n.pitch, n.velocity) for n in phrase.notes]
    notes = _to_steps(rows, grid)  # (N, 4) onset, duration, pitch, velocity in steps
    if len(notes) == 0:
        raise MidiFileError("no notes")
    return Piece(name, group, phrase.meter, phrase.tempo, notes)


class _Loader:
    """Collects pieces and skipped files of one folder, logging each problem once."""

    def __init__(self, folder: Path, grid: Grid, group: str) -> None:
        self.folder, self.grid, self.group = folder, grid, group
        self.data = LoadedDataset()
        self.index: dict[str, int] = {}  # piece name -> index
        self.failed: dict[str, str] = {}  # file name -> reason
        self.files = 0

    def skip(self, name: str, reason: str) -> None:
        self.data.skipped.append((name, reason))
        self.failed[name] = reason
        log.warning("%s: skipped: %s", self.folder / name, reason)

    def add(self, file: Path) -> int | None:
        name = file.relative_to(self.folder).as_posix()
        try:
            piece = read_piece(file, name, self.group, self.grid)
        except (MidiFileError, OSError) as err:
            self.skip(name, _one_line(str(err)))
            return None
        self.index[name] = len(self.data.pieces)
        self.data.pieces.append(piece)
        return self.index[name]

    def finish(self) -> LoadedDataset:
        d = self.data
        log.log(
            logging.WARNING if d.skipped else logging.INFO,
            "%s: loaded %d pieces (%d labelled) from %d MIDI files; skipped %d",
            self.folder, len(d.pieces), len(d.labels), self.files, len(d.skipped),
        )
        return d


# ---- labels ----------------------------------------------------------------------
def read_label_rows(path: str | Path) -> list[tuple[int, str, str]]:
    """(line, file, quadrant text) of every non-blank row of a label CSV.

    The header must name the columns ``file`` and ``quadrant`` (any case, any
    order); other columns are ignored. A missing file, a file that is not
    UTF-8 text or a header without these columns raise :class:`DatasetError`.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:  # -sig: spreadsheets write a BOM
            lines = list(csv.reader(fh))
    except FileNotFoundError as err:
        raise DatasetError(f"{path}: no such label file") from err
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path}: not a UTF-8 text file") from err
    except (OSError, csv.Error) as err:
        raise DatasetError(_one_line(f"{path}: not a readable CSV file ({err})")) from err
    if not lines:
        raise DatasetError(f"{path}: empty; expected a header with the columns file,quadrant")
    header = [cell.strip().lower() for cell in lines[0]]
    missing = [c for c in LABEL_COLUMNS if c not in header]
    if missing:
        raise DatasetError(
            f"{path}: the header must have the columns file,quadrant; missing {','.join(missing)} "
            f"in {','.join(lines[0])!r}"
        )
    at = [header.index(c) for c in LABEL_COLUMNS]
    rows = []
    for line, cells in enumerate(lines[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue
        values = [cells[i].strip() if i < len(cells) else "" for i in at]
        rows.append((line, values[0], values[1]))
    return rows


def _resolve(text: str, names: list[str]) -> tuple[str | None, str]:
    """The file name a CSV cell refers to, or None and why not.

    A path relative to the folder matches exactly; a bare file name matches
    the one file of that name anywhere under the folder.
    """
    key = text.replace("\\", "/").removeprefix("./")
    if key in names:
        return key, ""
    if "/" not in key:
        found = [n for n in names if n.rsplit("/", 1)[-1] == key]
        if len(found) == 1:
            return found[0], ""
        if found:
            return None, f"names {len(found)} files; give the path relative to the folder"
    return None, "no such MIDI file in the folder"


def _apply_labels(loader: _Loader, csv_path: Path, rows: list[tuple[int, str, str]]) -> None:
    names = sorted([*loader.index, *loader.failed])
    where = csv_path.name
    for line, text, quadrant in rows:
        if not text:
            log.warning("%s line %d: no file name; row ignored", where, line)
            continue
        name, why = _resolve(text, names)
        if name is None:
            log.warning("%s line %d: %s: %s; row ignored", where, line, text, why)
            continue
        if name in loader.failed:
            log.warning("%s line %d: %s: the file was skipped (%s); label ignored",
                        where, line, name, loader.failed[name])
            continue
        try:
            q = Quadrant.parse(quadrant)
        except EmotionError as err:
            log.warning("%s line %d: %s: %s; left unlabelled", where, line, name, err)
            continue
        index = loader.index[name]
        old = loader.data.labels.setdefault(index, q)
        if old != q:
            log.warning("%s line %d: %s: labelled twice (%s, then %s); keeping %s",
                        where, line, name, old.name, q.name, old.name)


# ---- entry points ------------------------------------------------------------------
def load_midi_folder(
    path: str | Path, labels_csv: str | Path | None = None, *, grid: Grid = DEFAULT_GRID
) -> LoadedDataset:
    """Every MIDI file under ``path`` as a piece (group "user"), labelled from ``labels_csv``.

    Piece names are paths relative to ``path``; files the CSV does not name
    stay unlabelled. The folder and the CSV header are checked before any
    file is read, so a wrong argument fails fast.
    """
    folder = _folder(path)
    labels = (Path(labels_csv), read_label_rows(labels_csv)) if labels_csv is not None else None
    files = midi_files(folder)
    loader = _Loader(folder, grid, "user")
    loader.files = len(files)
    for file in files:
        loader.add(file)
    if labels is not None:
        _apply_labels(loader, *labels)
    return loader.finish()


def load_emopia(path: str | Path, *, grid: Grid = DEFAULT_GRID) -> LoadedDataset:
    """EMOPIA clips (``Q1_<id>_<n>.mid``) from ``path/midis`` or ``path``, labelled by name.

    Files whose name does not follow the pattern are skipped with a reason.
    Clips of one song share the ``<id>``, which becomes the piece's ``song`` so
    the train/validation split never separates them.
    """
    root = _folder(path)
    folder = root / "midis" if (root / "midis").is_dir() else root
    files = midi_files(folder)
    loader = _Loader(folder, grid, "emopia")
    loader.files = len(files)
    for file in files:
        match = EMOPIA_STEM.fullmatch(file.stem)
        if match is None:
            name = file.relative_to(folder).as_posix()
            loader.skip(name, "name does not match Q<1-4>_<id>_<n>.mid")
            continue
        index = loader.add(file)
        if index is not None:
            loader.data.labels[index] = Quadrant[match.group(1)]
            # Clips of one song share the id: the split keeps them on one side.
            loader.data.pieces[index].song = f"emopia:{match.group(2)}"
    return loader.finish()


# ---- MAESTRO ----------------------------------------------------------------------------
MAESTRO_CSV = re.compile(r"maestro-v[\d.]+\.csv")


def maestro_csv(folder: Path) -> Path | None:
    """The ``maestro-v*.csv`` index of a MAESTRO folder (the newest version when several), or None."""
    found = sorted(p for p in folder.iterdir() if p.is_file() and MAESTRO_CSV.fullmatch(p.name))
    return found[-1] if found else None


def detect_layout(path: str | Path) -> str:
    """``maestro`` (a ``maestro-v*.csv`` beside ``YYYY/*.midi``), ``emopia`` (a ``midis/`` folder or
    clips named ``Q1_<id>_<n>.mid``) or ``folder`` (any other folder of MIDI files)."""
    folder = _folder(path)
    if maestro_csv(folder) is not None:
        return "maestro"
    if (folder / "midis").is_dir() or any(EMOPIA_STEM.fullmatch(p.stem) for p in folder.glob("*.mid")):
        return "emopia"
    return "folder"


def load_maestro(path: str | Path, *, grid: Grid = DEFAULT_GRID, limit: int | None = None) -> LoadedDataset:
    """MAESTRO performances (``YYYY/*.midi``, listed in ``maestro-v*.csv``), unlabelled.

    The CSV's ``midi_filename`` column names the files; performances of one
    piece (the same composer and title) share a ``song``, so the split keeps
    them together. Rows naming a missing file are skipped with a reason;
    without a CSV every ``.midi`` file under the folder is read. ``limit``
    reads only the first performances (quick runs).
    """
    folder = _folder(path)
    index = maestro_csv(folder)
    loader = _Loader(folder, grid, "maestro")
    songs: list[tuple[Path, str]] = []
    if index is None:
        songs = [(f, "") for f in midi_files(folder)]
    else:
        try:
            with index.open(newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise DatasetError(_one_line(f"{index}: not a readable CSV file ({err})")) from err
        if not rows or "midi_filename" not in rows[0]:
            raise DatasetError(f"{index}: expected MAESTRO's columns (midi_filename, canonical_title, ...)")
        for row in rows:
            song = f"maestro:{row.get('canonical_composer', '')}:{row.get('canonical_title', '')}"
            songs.append((folder / row["midi_filename"], song))
    songs = songs[:limit] if limit is not None else songs
    loader.files = len(songs)
    for file, song in songs:
        if not file.is_file():
            loader.skip(file.relative_to(folder).as_posix(), "listed in the CSV but not in the folder")
            continue
        at = loader.add(file)
        if at is not None and song:
            loader.data.pieces[at].song = song
    if not loader.data.pieces and not loader.data.skipped:
        raise DatasetError(f"{folder}: no MAESTRO performances found")
    return loader.finish()
