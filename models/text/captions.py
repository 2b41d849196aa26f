"""Captions for the music-text model: where a phrase comes from, what it measures, in many phrasings.

A caption is built from *facts*: the source (collection, composer, genre,
region), read from the music21 corpus's paths and, for ABC tunes, from the
tune's own header (``O:`` origin, ``R:`` rhythm, ``T:`` title); and the
measured fields of :mod:`affetto.words.describe` (key, meter, tempo,
density, register, texture, contour, mood). The key is named plainly when
the project's Krumhansl-Kessler estimate and a second estimator (Bellman-Budge
profiles) agree, and hedged ("probably in D major") when they do not.

The grammar chooses among several phrasings of each clause, leaves some
clauses out, shuffles their order and draws mood words from the quadrant's
word list, so one phrase has many captions. Every word any caption can hold is
listed by :func:`grammar_words` (the model's vocabulary).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np

from affetto.words.describe import SLOT_WORDS, Fields
from affetto.words.textmodel import METERS, tokenize

# group -> (composer, genre, region, collection words)
GROUPS: dict[str, tuple[str, str, str, str]] = {
    "bach": ("bach", "chorale", "germany", ""),
    "cpebach": ("cpe-bach", "sonata", "germany", ""),
    "haydn": ("haydn", "quartet", "austria", ""),
    "mozart": ("mozart", "quartet", "austria", ""),
    "handel": ("handel", "aria", "england", ""),
    "weber": ("weber", "concertino", "germany", ""),
    "corelli": ("corelli", "sonata", "italy", ""),
    "monteverdi": ("monteverdi", "madrigal", "italy", ""),
    "palestrina": ("palestrina", "mass", "italy", ""),
    "josquin": ("josquin", "chanson", "france", ""),
    "joplin": ("joplin", "rag", "america", ""),
    "essenFolksong": ("", "song", "", "the essen collection"),
    "oneills1850": ("", "air", "ireland", "o'neill's collection"),
    "ryansMammoth": ("", "tune", "america", "ryan's mammoth collection"),
    "airdsAirs": ("", "air", "scotland", "aird's airs"),
    "miscFolk": ("", "tune", "", "a folk tune book"),
}
DANCES = ("reel", "jig", "hornpipe", "strathspey", "waltz", "march", "polka", "clog", "schottische", "quickstep",
          "mazurka", "galop", "fling", "minuet", "gavotte", "lament", "air", "song")
MASS = ("kyrie", "gloria", "credo", "sanctus", "benedictus", "agnus")
ESSEN_FILES = {"kinder": "nursery", "ballad": "ballad", "altdeu": "song", "han": "song", "natmin": "song",
               "shanxi": "song"}
ORIGINS = {"deutschland": "germany", "china": "china", "lothringen": "lorraine", "luxemburg": "luxembourg",
           "irland": "ireland", "schweiz": "switzerland", "oesterreich": "austria", "elsass": "alsace",
           "frankreich": "france", "polen": "poland", "niederlande": "netherlands", "jugoslavien": "yugoslavia",
           "ungarn": "hungary", "rumaenien": "romania", "russland": "russia", "daenemark": "denmark",
           "schweden": "sweden", "italien": "italy", "england": "england", "usa": "america",
           "tschechoslowakei": "czechoslovakia", "magyar": "hungary"}
REGIONS = tuple(sorted({*ORIGINS.values(), *(g[2] for g in GROUPS.values() if g[2])}))
GENRES = tuple(sorted({*DANCES, *MASS, *ESSEN_FILES.values(), *(g[1] for g in GROUPS.values())}))
COMPOSERS = tuple(sorted(g[0] for g in GROUPS.values() if g[0]))
COLLECTIONS = tuple(sorted(g[3] for g in GROUPS.values() if g[3]))
PROPER = (*COMPOSERS, *REGIONS, "essen", "o'neill's", "ryan's", "mammoth", "aird's")  # capitalised when shown

# ---- the grammar -------------------------------------------------------------------------------
SUBJECTS = ("a {mood} {genre}", "this {mood} {genre}", "a {genre} , {mood} ,", "{mood} and {mood2} : a {genre}",
            "a {mood} , {mood2} {genre}", "here is a {mood} {genre}", "the {genre} sounds {mood}")
KEY = ("in {tonic} {mode}", "in the key of {tonic} {mode}", "set in {tonic} {mode}", "in a {tonic} {mode} key",
       "written in {tonic} {mode}")
KEY_HEDGED = ("probably in {tonic} {mode}", "perhaps in {tonic} {mode}", "leaning towards {tonic} {mode}")
METER = ("in {meter}", "in {meter} time", "with a {meter} meter", "counted in {meter}")
TEMPO = ("at a {tempo} tempo", "moving at a {tempo} pace", "taken at a {tempo} speed")
DENSITY = ("with {density} rhythms", "its rhythm {density}", "with a {density} flow of notes")
REGISTER = ("in the {register} register", "sitting in a {register} register", "pitched {register}")
TEXTURE = ("in a {texture} texture", "with a {texture} texture", "its writing {texture}")
CONTOUR = ("with a {contour} line", "its melody {contour}", "its top line {contour}")
COMPOSER = ("by {composer}", "in the style of {composer}", "after {composer}")
COLLECTION = ("from {collection}", "as found in {collection}")
REGION = ("from {region}", "heard in {region}", "of {region}")
CLAUSE_P = {"meter": 0.8, "tempo": 0.45, "density": 0.6, "register": 0.55, "texture": 0.6, "contour": 0.55}
SOURCE_P = 0.75
TEMPLATES = (SUBJECTS, KEY, KEY_HEDGED, METER, TEMPO, DENSITY, REGISTER, TEXTURE, CONTOUR, COMPOSER, COLLECTION,
             REGION)
EXTRA = ("an", "and", ",", ".", ":", ";", "it", "is")


@dataclass(frozen=True)
class Source:
    """Where a corpus piece comes from (empty strings where its path and header say nothing)."""

    group: str
    composer: str
    genre: str
    region: str
    collection: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Facts:
    """What one caption may say: the measured fields, whether the key estimators agree, the source."""

    fields: Fields
    key_agreed: bool
    source: Source


# ---- sources ------------------------------------------------------------------------------------
@cache
def _abc_headers(rel: str) -> tuple[dict[str, str], ...]:
    """The header fields of each tune of an ABC corpus file, in the order the corpus parser splits it."""
    from music21 import corpus

    matches = [str(p) for p in corpus.getCorePaths() if str(p).replace("\\", "/").endswith("/" + rel)]
    if not matches:
        return ()
    text = Path(matches[0]).read_text(encoding="latin-1")
    chunks = text.split("\nX:")
    tunes = [chunks[0]] + ["X:" + c for c in chunks[1:]]
    out = []
    for tune in tunes:
        head: dict[str, str] = {}
        for line in tune.splitlines()[:40]:
            m = re.match(r"^([A-Z]):\s*(.*)$", line)
            if m and m.group(1) not in head:
                head[m.group(1)] = m.group(2).strip()
        out.append(head)
    return tuple(out)


def _words(text: str) -> list[str]:
    return [w.lower() for w in re.findall(r"[A-Za-z]+", text)]


def _genre_in(text: str, default: str) -> str:
    words = _words(re.sub(r"([a-z])([A-Z])", r"\1 \2", text))
    for word in reversed(words):
        if word in DANCES:
            return word
    return default


def source_of(name: str, group: str) -> Source:
    """The source facts of a corpus piece named like ``essenFolksong/han1.abc#12`` or ``bach/bwv10.7.mxl``."""
    composer, genre, region, collection = GROUPS.get(group, ("", "piece", "", ""))
    rel, _, index = name.partition("#")
    stem = Path(rel).stem
    if group == "palestrina":
        genre = next((m for m in MASS if stem.lower().startswith(m)), genre)
    elif group == "ryansMammoth":
        genre = _genre_in(stem, genre)
    elif group == "miscFolk":
        region = "america" if "american" in stem else "england"
    if rel.endswith(".abc") and index.isdigit():
        headers = _abc_headers(rel)
        head = headers[int(index)] if int(index) < len(headers) else {}
        if group == "essenFolksong":
            genre = next((g for prefix, g in ESSEN_FILES.items() if stem.startswith(prefix)), "song")
            origin = _words(head.get("O", ""))
            region = next((ORIGINS[w] for w in origin if w in ORIGINS), "")
        elif group in ("airdsAirs", "oneills1850"):
            genre = _genre_in(head.get("T", ""), genre)
    return Source(group, composer, genre, region, collection)


# ---- captions -----------------------------------------------------------------------------------
def _fill(template: str, slots: dict[str, str]) -> list[str]:
    out = []
    for part in template.split():
        if part.startswith("{") and part.endswith("}"):
            out.extend(slots[part[1:-1]].split())
        else:
            out.append(part)
    return out


def _word(slot: str, value: str, rng: np.random.Generator) -> str:
    words = SLOT_WORDS[slot][value]
    return words[0] if rng.random() < 0.5 else str(rng.choice(words))


AN_TONICS = ("A", "Ab", "E", "Eb", "F", "F#")  # key names said with a vowel first


def _articles(tokens: list[str]) -> list[str]:
    def vowel(word: str) -> bool:
        return word in AN_TONICS or word[0] in "aeiou"

    return ["an" if t == "a" and i + 1 < len(tokens) and vowel(tokens[i + 1]) else t for i, t in enumerate(tokens)]


def caption(facts: Facts, rng: np.random.Generator) -> list[str]:
    """One caption of a phrase: a subject with its mood, the key, and a random few other clauses."""
    f = facts.fields
    src = facts.source
    moods = SLOT_WORDS["mood"][f.quadrant]
    first, second = (str(w) for w in rng.choice(moods, size=2, replace=False))
    slots = {"mood": first, "mood2": second, "genre": src.genre or "piece", "tonic": f.tonic, "mode": f.mode,
             "meter": f.meter, "tempo": _word("tempo", f.tempo, rng), "density": _word("density", f.density_word, rng),
             "register": _word("register", f.register, rng), "texture": _word("texture", f.texture, rng),
             "contour": _word("contour", f.contour, rng), "composer": src.composer, "collection": src.collection,
             "region": src.region}
    subject = _fill(str(rng.choice(SUBJECTS)), slots)
    clauses = [_fill(str(rng.choice(KEY if facts.key_agreed else KEY_HEDGED)), slots)]
    for name, p in CLAUSE_P.items():
        if name == "meter" and f.meter not in METERS:
            continue
        if rng.random() < p:
            clauses.append(_fill(str(rng.choice(globals()[name.upper()])), slots))
    order = rng.permutation(len(clauses))
    clauses = [clauses[i] for i in order]
    sources = [(t, s) for t, s in ((COMPOSER, src.composer), (COLLECTION, src.collection), (REGION, src.region)) if s]
    if sources and rng.random() < SOURCE_P:
        templates, _ = sources[int(rng.integers(len(sources)))]
        subject += _fill(str(rng.choice(templates)), slots)
    tokens = list(subject)
    if subject[-1] != ",":
        tokens.append(",")
    for i, clause in enumerate(clauses):
        if i and i == len(clauses) - 1:
            tokens.append("and")
        tokens.extend(clause)
        tokens.append("," if i < len(clauses) - 1 else ".")
    tokens = [t for i, t in enumerate(tokens) if not (t == "," and i + 1 < len(tokens) and tokens[i + 1] == "and"
                                                       and len(clauses) == 2)]
    return _articles(tokens)


def grammar_words() -> list[str]:
    """Every word a caption can hold: the templates' words, the slot words, the sources', the meters."""
    words: set[str] = set(EXTRA)
    for templates in TEMPLATES:
        for template in templates:
            words.update(p for p in template.split() if not p.startswith("{"))
    for values in SLOT_WORDS.values():
        for names in values.values():
            words.update(names)
    for text in (*GENRES, *COMPOSERS, *COLLECTIONS, *REGIONS, "piece"):
        words.update(text.split())
    words.update(m for m in METERS if m != "other")
    return sorted(words)


def check_tokens(tokens: list[str]) -> None:
    """Each grammar word survives the tokenizer as itself (so user text meets the same words)."""
    for word in tokens:
        if word not in (",", ".", ":", ";") and tokenize(word) != [word]:
            raise ValueError(f"the grammar word {word!r} does not tokenize as itself")
