"""Seed phrases from outside the training corpus, written for this project.

The corpus is mostly folk melodies, chorales and Renaissance polyphony; a
musician plays something else into affetto: a waltz with an oom-pah-pah left
hand, a pop pattern with a driving bass, a nocturne's arpeggios, a sparse
lullaby. These eight pieces (written here as notes, and shipped as MIDI files
in ``models/seeds/`` by :func:`write_seeds`) differ on purpose in density (a
half to four onsets per beat), texture (one line to four voices), meter (4/4,
3/4, 6/8) and mode, so the evaluation can ask whether a continuation follows
the seed it continues. They are the project's own compositions, free to use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from affetto.music.notes import Note, TimeSignature, sort_notes

SEED_FOLDER = Path(__file__).with_name("seeds")


@dataclass(frozen=True)
class OutsideSeed:
    name: str
    meter: TimeSignature
    tempo: float
    key: str  # as written, e.g. "D major"
    texture: str  # "melody", "melody and accompaniment", "chords"
    notes: tuple[Note, ...]


def _line(pitches_durations: Sequence[tuple[int, float]], start: float = 0.0, velocity: int = 80) -> list[Note]:
    out, t = [], start
    for pitch, dur in pitches_durations:
        if pitch > 0:
            out.append(Note(pitch, t, dur, velocity))
        t += dur
    return out


def _chords(chords: Sequence[tuple[Sequence[int], float, float]], velocity: int = 72) -> list[Note]:
    """(pitches, onset, duration) triples."""
    return [Note(p, onset, dur, velocity) for pitches, onset, dur in chords for p in pitches]


def waltz() -> OutsideSeed:
    """D major, 3/4: melody over an oom-pah-pah left hand."""
    melody = [(78, 2), (81, 1), (78, 1), (76, 1), (74, 1), (76, 2), (73, 1), (76, 1), (79, 1), (76, 1),
              (78, 2), (74, 1), (79, 1), (78, 1), (76, 1), (76, 1), (74, 1), (73, 1), (74, 3)]
    harmony = {"D": (50, (57, 62, 66)), "A7": (45, (55, 61, 64)), "G": (43, (55, 59, 62))}
    left = []
    for bar, name in enumerate(("D", "D", "A7", "A7", "D", "G", "A7", "D")):
        root, chord = harmony[name]
        t = 3.0 * bar
        left += [Note(root, t, 1.0, 70)] + [Note(p, t + b, 1.0, 58) for b in (1, 2) for p in chord]
    notes = _line(melody, velocity=84) + left
    return OutsideSeed("waltz", TimeSignature(3, 4), 150.0, "D major", "melody and accompaniment",
                       tuple(sort_notes(notes)))


def pop_pattern() -> OutsideSeed:
    """C major, 4/4: I-V-vi-IV, a driving eighth-note bass and syncopated right-hand chords."""
    chords = {"C": (48, (60, 64, 67)), "G": (43, (59, 62, 67)), "Am": (45, (60, 64, 69)), "F": (41, (60, 65, 69))}
    notes = []
    for bar, name in enumerate(("C", "G", "Am", "F") * 2):
        root, triad = chords[name]
        t = 4.0 * bar
        notes += [Note(root, t + 0.5 * i, 0.5, 88 if i % 2 == 0 else 70) for i in range(8)]
        for onset, dur in ((0.0, 1.0), (1.5, 1.0), (2.5, 0.5), (3.0, 1.0)):
            notes += [Note(p, t + onset, dur, 76) for p in triad]
    top = [(76, 1), (74, 1), (72, 2), (74, 1), (71, 1), (67, 2), (72, 1), (76, 1), (79, 2), (77, 1), (76, 1),
           (72, 2)]
    notes += _line(top, start=16.0, velocity=92)
    return OutsideSeed("pop-pattern", TimeSignature(4, 4), 110.0, "C major", "melody and accompaniment",
                       tuple(sort_notes(notes)))


def chorale() -> OutsideSeed:
    """G major, 4/4: a four-voice chorale played on the piano."""
    v = {"G": (43, 59, 62, 67), "C": (48, 60, 64, 67), "D": (50, 57, 62, 66), "Em": (52, 59, 64, 67),
         "Am": (45, 57, 64, 72), "Bm": (47, 59, 62, 66), "D7": (50, 60, 62, 66), "G/B": (47, 62, 67, 71)}
    plan = [("G", 1), ("C", 1), ("G/B", 1), ("D", 1), ("Em", 1), ("Am", 1), ("D", 2),
            ("G", 1), ("Bm", 1), ("Em", 1), ("C", 1), ("Am", 1), ("D7", 1), ("G", 2),
            ("C", 1), ("G", 1), ("Am", 1), ("Em", 1), ("D", 1), ("G/B", 1), ("C", 1), ("D", 1),
            ("Em", 1), ("C", 1), ("D", 2), ("G", 4)]
    out, t = [], 0.0
    for name, dur in plan:
        out.append((v[name], t, float(dur)))
        t += dur
    return OutsideSeed("chorale", TimeSignature(4, 4), 80.0, "G major", "chords", tuple(sort_notes(_chords(out))))


def lament() -> OutsideSeed:
    """A minor, 6/8: a single slow line."""
    line = [(76, 1.5), (72, 1.0), (71, 0.5), (69, 1.5), (71, 0.5), (72, 0.5), (74, 0.5),
            (76, 1.0), (77, 0.5), (76, 1.0), (74, 0.5), (72, 3.0),
            (72, 1.5), (71, 1.0), (69, 0.5), (68, 1.5), (69, 0.5), (71, 0.5), (72, 0.5),
            (71, 1.0), (69, 0.5), (68, 1.0), (64, 0.5), (69, 3.0)]
    return OutsideSeed("lament", TimeSignature(6, 8), 60.0, "A minor", "melody",
                       tuple(_line(line, velocity=62)))


def etude() -> OutsideSeed:
    """E minor, 4/4: sixteenth-note arpeggios over a held bass."""
    chords = {"Em": (40, (64, 67, 71, 76)), "Am": (45, (64, 69, 72, 76)), "B7": (47, (63, 66, 69, 71)),
              "C": (48, (64, 67, 72, 76))}
    notes = []
    for bar, name in enumerate(("Em", "Am", "B7", "Em", "C", "Am", "B7", "Em")):
        bass, arp = chords[name]
        t = 4.0 * bar
        notes.append(Note(bass, t, 4.0, 70))
        for beat in range(4):
            order = arp if beat % 2 == 0 else arp[::-1]
            notes += [Note(p, t + beat + 0.25 * i, 0.25, 86 if i == 0 else 74) for i, p in enumerate(order)]
    return OutsideSeed("etude", TimeSignature(4, 4), 120.0, "E minor", "melody and accompaniment",
                       tuple(sort_notes(notes)))


def nocturne() -> OutsideSeed:
    """F major, 4/4: a long-breathed melody over arpeggiated eighths."""
    arps = {"F": (41, 48, 57, 60), "C": (36, 43, 52, 55), "Bb": (46, 53, 58, 62), "Dm": (38, 45, 53, 57),
            "C7": (36, 46, 52, 55)}
    notes = []
    for bar, name in enumerate(("F", "C", "F", "Bb", "F", "Dm", "C7", "F")):
        a = arps[name]
        pattern = (a[0], a[1], a[2], a[3], a[2], a[1], a[2], a[1])
        notes += [Note(p, 4.0 * bar + 0.5 * i, 0.5, 52) for i, p in enumerate(pattern)]
    melody = [(81, 4), (79, 2), (77, 1), (79, 1), (81, 2), (84, 2), (82, 3), (81, 1), (81, 2), (77, 2),
              (77, 1), (76, 1), (74, 2), (76, 2), (79, 2), (77, 4)]
    notes += _line(melody, velocity=70)
    return OutsideSeed("nocturne", TimeSignature(4, 4), 66.0, "F major", "melody and accompaniment",
                       tuple(sort_notes(notes)))


def ostinato() -> OutsideSeed:
    """D minor, 4/4: loud repeated eighth-note chords over a pounding bass."""
    chords = {"Dm": (38, (62, 65, 69)), "Bb": (34, (62, 65, 70)), "A": (33, (61, 64, 69)), "Gm": (31, (62, 67, 70))}
    notes = []
    for bar, name in enumerate(("Dm", "Dm", "Bb", "A", "Dm", "Gm", "A", "Dm")):
        bass, triad = chords[name]
        t = 4.0 * bar
        for i in range(8):
            accent = 112 if i in (0, 3, 6) else 96
            notes.append(Note(bass, t + 0.5 * i, 0.5, accent))
            notes += [Note(p, t + 0.5 * i, 0.375, accent) for p in triad]
    return OutsideSeed("ostinato", TimeSignature(4, 4), 140.0, "D minor", "chords", tuple(sort_notes(notes)))


def lullaby() -> OutsideSeed:
    """B-flat major, 3/4: a sparse, soft melody alone."""
    line = [(74, 2), (72, 1), (70, 3), (72, 2), (74, 1), (72, 3), (77, 2), (75, 1), (74, 2), (72, 1),
            (72, 2), (69, 1), (70, 3)]
    return OutsideSeed("lullaby", TimeSignature(3, 4), 76.0, "B-flat major", "melody",
                       tuple(_line(line, velocity=52)))


def outside_seeds() -> list[OutsideSeed]:
    return [waltz(), pop_pattern(), chorale(), lament(), etude(), nocturne(), ostinato(), lullaby()]


def write_seeds(folder: str | Path = SEED_FOLDER) -> list[Path]:
    """Write every seed as ``<name>.mid`` (its meter and tempo in the file)."""
    from affetto.music.midifile import write_midi

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in outside_seeds():
        path = folder / f"{seed.name}.mid"
        write_midi(path, list(seed.notes), meter=seed.meter, bpm=seed.tempo)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_seeds():
        print(written)
