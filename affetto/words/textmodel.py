"""The music-text model at run time: word vocabulary, music input, ONNX sessions, decoding, words -> mood.

Three graphs make the model (``affetto-text.onnx`` and two beside it, each
with the same manifest, ``"family": "text"``, and a ``part``):

- ``music``: ``notes [B, L, 4] int64`` (pitch + 1 or 0 for padding, position in
  the bar in grid steps, bar index, duration in steps) and ``globals [B, 2]
  int64`` (meter id, tempo bin) -> ``z_music [B, D]`` (the music space),
  ``z_aligned [B, D]`` (the alignment MLP's image of it in the text space) and
  ``caption [B, P]`` (what the decoder reads: ``z_aligned``, and in a model
  with attribute heads each measured field's distribution beside it; a model
  file without this output is decoded from ``z_aligned``);
- ``encoder``: ``tokens [B, T] int64`` -> ``z_text [B, D]`` (the text space);
- ``decoder``: ``latent [B, P]``, ``tokens [B, T]`` -> ``logits [B, T, V]``
  (a caption from a caption point, one word at a time).

The word vocabulary, the music input's tables and the model config live in
the manifest. This module imports no torch and nothing of the analysis (the
lexicon asks it about words it lacks, so it must not import the lexicon).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from affetto.errors import ModelFileError
from affetto.manifest import read_manifest
from affetto.music.notes import Grid, TimeSignature

FAMILY = "text"
MODEL_NAME = "affetto-text.onnx"
PARTS = {"music": "affetto-text.onnx", "encoder": "affetto-text.encoder.onnx", "decoder": "affetto-text.decoder.onnx"}
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD, BOS, EOS, UNK = range(4)

# The music input: notes of PHRASE_BARS bars on a grid of STEPS_PER_BEAT steps per beat.
PHRASE_BARS = 4
STEPS_PER_BEAT = 4
MAX_NOTES = 128
POSITIONS = 48  # steps into the bar (12/8 and 4/2 fit)
MAX_DURATION = 32  # steps; longer notes count as this long
METERS = ("other", "2/4", "3/4", "4/4", "6/8", "3/8", "2/2", "3/2", "4/2", "6/4", "9/8", "12/8", "5/4", "3/1")
TEMPO_EDGES = (56, 64, 72, 80, 88, 96, 104, 112, 120, 132, 144, 160, 184)
N_TEMPI = len(TEMPO_EDGES) + 1
PROBE = ("a", "{word}", "tune", ".")  # a word is embedded in the text space inside this caption
WORD_SIMILARITY = 0.5  # cosine the nearest known word must reach for an unknown word to be understood

_TOKEN = re.compile(r"\d{1,2}/\d{1,2}|[A-Za-z][A-Za-z'#\-]*|[,.;:]")
_TONIC = re.compile(r"^[A-G](#|b)?$")


# ---- words ---------------------------------------------------------------------------------------
def tokenize(text: str) -> list[str]:
    """Words, meters ("3/4") and punctuation; lower case except key names ("C#", "Bb")."""
    return [t if _TONIC.match(t) else t.lower() for t in _TOKEN.findall(str(text))]


def detokenize(tokens: Sequence[str]) -> str:
    """A sentence from tokens: no space before punctuation, a capital first letter."""
    text = " ".join(t for t in tokens if t not in SPECIALS)
    text = re.sub(r"\s+([,.;:])", r"\1", text)
    return text[:1].upper() + text[1:]


@dataclass(frozen=True)
class Vocabulary:
    """Word <-> id; ids 0..3 are the specials."""

    words: tuple[str, ...]
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if tuple(self.words[: len(SPECIALS)]) != SPECIALS:
            raise ModelFileError(f"a text vocabulary starts with {', '.join(SPECIALS)}")
        if len(set(self.words)) != len(self.words):
            raise ModelFileError("a text vocabulary holds each word once")
        object.__setattr__(self, "index", {w: i for i, w in enumerate(self.words)})

    @classmethod
    def of(cls, words: Sequence[str]) -> Vocabulary:
        return cls((*SPECIALS, *sorted(set(words) - set(SPECIALS))))

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def encode(self, tokens: Sequence[str], max_len: int | None = None) -> np.ndarray:
        """<bos> tokens <eos> as ids (unknown words as <unk>), cut to ``max_len``."""
        ids = [BOS, *(self.index.get(t, UNK) for t in tokens), EOS]
        return np.array(ids[:max_len] if max_len else ids, dtype=np.int64)

    def decode(self, ids: Sequence[int]) -> list[str]:
        out = []
        for i in ids:
            if int(i) == EOS:
                break
            if int(i) >= len(SPECIALS):
                out.append(self.words[int(i)])
        return out


def pad_batch(rows: Sequence[np.ndarray], length: int | None = None) -> np.ndarray:
    """Rows of ids padded with <pad> to one length."""
    length = length or max(len(r) for r in rows)
    out = np.full((len(rows), length), PAD, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : min(len(r), length)] = r[:length]
    return out


# ---- music ---------------------------------------------------------------------------------------
def meter_id(meter: TimeSignature | str) -> int:
    name = str(meter)
    return METERS.index(name) if name in METERS else 0


def tempo_bin(bpm: float) -> int:
    return int(np.searchsorted(np.asarray(TEMPO_EDGES, dtype=float), float(bpm), side="right"))


def note_steps(pitch: np.ndarray, onset: np.ndarray, duration: np.ndarray) -> np.ndarray:
    """(N, 3) int64 of onset step, duration steps, pitch on the input grid (onsets and durations in beats)."""
    grid = Grid(STEPS_PER_BEAT)
    on = np.floor(np.asarray(onset, dtype=float) * grid.steps_per_beat + 0.5).astype(np.int64)
    off = np.floor((np.asarray(onset, dtype=float) + np.asarray(duration, dtype=float)) * grid.steps_per_beat + 0.5)
    dur = np.maximum(off.astype(np.int64) - on, 1)
    return np.stack([on, dur, np.asarray(pitch, dtype=np.int64)], axis=1) if len(on) else np.zeros((0, 3), np.int64)


def bar_steps_of(meter: TimeSignature) -> int:
    return max(1, round(meter.beats_per_bar * STEPS_PER_BEAT))


def music_rows(steps: np.ndarray, meter: TimeSignature) -> np.ndarray:
    """(MAX_NOTES, 4) int64 input rows of one window (onsets in steps from its first bar line)."""
    steps = np.asarray(steps, dtype=np.int64).reshape(-1, steps.shape[-1] if len(steps) else 3)
    bar = bar_steps_of(meter)
    out = np.zeros((MAX_NOTES, 4), dtype=np.int64)
    if len(steps) == 0:
        return out
    order = np.lexsort((steps[:, 2], steps[:, 0]))[:MAX_NOTES]
    s = steps[order]
    n = len(s)
    out[:n, 0] = np.clip(s[:, 2], 0, 127) + 1
    out[:n, 1] = np.clip(s[:, 0] % bar, 0, POSITIONS - 1)
    out[:n, 2] = np.clip(s[:, 0] // bar, 0, PHRASE_BARS * 2 - 1)
    out[:n, 3] = np.clip(s[:, 1], 1, MAX_DURATION)
    return out


def music_windows(steps: np.ndarray, meter: TimeSignature, bpm: float) -> tuple[np.ndarray, np.ndarray]:
    """(notes [W, MAX_NOTES, 4], globals [W, 2]) for each PHRASE_BARS-bar window holding notes."""
    bar = bar_steps_of(meter)
    span = bar * PHRASE_BARS
    rows, glob = [], []
    last = int(steps[:, 0].max()) if len(steps) else 0
    for start in range(0, last + 1, span):
        inside = (steps[:, 0] >= start) & (steps[:, 0] < start + span)
        if inside.any():
            window = steps[inside].copy()
            window[:, 0] -= start
            rows.append(music_rows(window, meter))
            glob.append([meter_id(meter), tempo_bin(bpm)])
    if not rows:
        raise ModelFileError("no notes to encode")
    return np.stack(rows), np.array(glob, dtype=np.int64)


# ---- the model ----------------------------------------------------------------------------------
def default_text_model_path() -> Path:
    """The shipped text model (``affetto/assets/affetto-text.onnx``)."""
    from importlib import resources

    return Path(str(resources.files("affetto") / "assets" / MODEL_NAME))


class TextModel:
    """The three ONNX graphs of a ``text`` model and its vocabulary (ONNX Runtime only)."""

    def __init__(self, path: str | Path | None = None, *, manifest: dict | None = None, threads: int = 1,
                 **_: Any) -> None:
        from affetto.runtime.session import open_session  # lazy: ONNX Runtime loads here

        self.path = Path(path) if path is not None else default_text_model_path()
        self.manifest = manifest or read_manifest(self.path)
        if self.manifest.get("family") != FAMILY:
            raise ModelFileError(f"{self.path}: a {self.manifest.get('family', 'lead')} model, not a text model")
        self.vocab = Vocabulary(tuple(self.manifest["vocabulary"]))
        self.max_len = int(self.manifest["model"]["max_text"])
        self.sessions = {}
        files = self.manifest.get("parts", PARTS)
        for part, name in files.items():
            file = self.path if part == "music" else self.path.with_name(name)
            if part != "music":
                read_manifest(file)  # checks the part's own hash before a session is made
            self.sessions[part] = open_session(file, threads=threads, provider="cpu")
        self._probes: dict[str, np.ndarray] = {}

    # the three graphs
    def encode_music(self, notes: np.ndarray, globals_: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(z_music, z_aligned) of a batch of music windows."""
        z_music, z_aligned = self.sessions["music"].run(["z_music", "z_aligned"],
                                                        {"notes": notes, "globals": globals_})
        return z_music, z_aligned

    def encode_text(self, captions: Sequence[Sequence[str]]) -> np.ndarray:
        tokens = pad_batch([self.vocab.encode(c, self.max_len) for c in captions])
        return self.sessions["encoder"].run(["z_text"], {"tokens": tokens})[0]

    def logits(self, latent: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        return self.sessions["decoder"].run(["logits"], {"latent": latent.astype(np.float32), "tokens": tokens})[0]

    def phrase_latent(self, steps: np.ndarray, meter: TimeSignature, bpm: float) -> np.ndarray:
        """The caption point of a whole phrase (what the decoder reads): the mean over its 4-bar windows."""
        notes, glob = music_windows(steps, meter, bpm)
        session = self.sessions["music"]
        if "caption" in {o.name for o in session.get_outputs()}:
            return session.run(["caption"], {"notes": notes, "globals": glob})[0].mean(axis=0)
        _, aligned = self.encode_music(notes, glob)
        return aligned.mean(axis=0)

    def beam(self, latent: np.ndarray, *, width: int = 4, banned: np.ndarray | None = None,
             max_len: int | None = None) -> list[tuple[list[str], float]]:
        """The n best captions of one latent, best first, as (tokens, mean log-probability per token).

        ``banned`` is a boolean mask over the vocabulary: words the decoder may not choose.
        """
        max_len = max_len or self.max_len
        live: list[tuple[list[int], float]] = [([BOS], 0.0)]
        done: list[tuple[list[int], float]] = []
        never = np.zeros(len(self.vocab), dtype=bool)
        never[[PAD, BOS, UNK]] = True
        if banned is not None:
            never |= banned
        for _ in range(max_len - 1):
            tokens = np.array([seq for seq, _ in live], dtype=np.int64)
            lat = np.repeat(latent[None, :], len(live), axis=0)
            last = self.logits(lat, tokens)[:, -1, :].astype(np.float64)
            last[:, never] = -np.inf
            logp = last - np.logaddexp.reduce(last, axis=1, keepdims=True)
            options = []
            for (seq, score), row in zip(live, logp):
                for tok in np.argsort(row)[::-1][:width]:
                    if np.isfinite(row[tok]):
                        options.append(([*seq, int(tok)], score + float(row[tok])))
            options.sort(key=lambda o: o[1], reverse=True)
            live = []
            for seq, score in options:
                if seq[-1] == EOS:
                    done.append((seq, score))
                elif len(live) < width:
                    live.append((seq, score))
            if not live or len(done) >= width:
                break
        done.extend(live if not done else [])
        ranked = sorted(done, key=lambda d: d[1] / max(1, len(d[0]) - 1), reverse=True)
        return [(self.vocab.decode(seq[1:]), score / max(1, len(seq) - 1)) for seq, score in ranked[:width]]

    # words -> mood
    def word_point(self, word: str, known: dict[str, tuple[float | None, float | None]]
                   ) -> tuple[float, float, list[tuple[str, float]]] | None:
        """A mood word the lexicon lacks placed by its nearest known words in the text space.

        Only words the model learned as mood words (the manifest's ``mood_words``: the captions' mood slot)
        are placed: a word it saw naming something else (a genre, a key) has no mood. Returns (valence,
        arousal, [(known word, cosine), ...]) or None when the model never saw the word as a mood word or
        no known word lies close enough.
        """
        word = word.lower()
        if word not in self.manifest.get("mood_words", ()):
            return None
        placed = {w: (float(va[0]), float(va[1])) for w, va in known.items()
                  if w in self.vocab and va[0] is not None and va[1] is not None}
        if word not in self.vocab or word in known or not placed:
            return None
        missing = [w for w in [word, *placed] if w not in self._probes]
        if missing:
            z = self.encode_text([[word if t == "{word}" else t for t in PROBE] for word in missing])
            z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-9)
            self._probes.update(zip(missing, z))
        names = list(placed)
        sims = np.array([float(self._probes[word] @ self._probes[w]) for w in names])
        order = np.argsort(sims)[::-1][:3]
        if sims[order[0]] < WORD_SIMILARITY:
            return None
        weights = np.maximum(sims[order], 1e-6)
        v = float(np.dot(weights, [placed[names[i]][0] for i in order]) / weights.sum())
        a = float(np.dot(weights, [placed[names[i]][1] for i in order]) / weights.sum())
        return v, a, [(names[i], round(float(sims[i]), 3)) for i in order]


_SHIPPED: dict[str, TextModel] = {}


def shipped_model() -> TextModel:
    """The shipped text model, loaded once per process (raises ModelFileError when absent)."""
    if "model" not in _SHIPPED:
        _SHIPPED["model"] = TextModel()
    return _SHIPPED["model"]


def learned_mood_point(word: str, known: dict[str, tuple[float | None, float | None]]
                       ) -> tuple[float, float, list[tuple[str, float]]] | None:
    """The shipped text model's placement of a word the lexicon lacks; None when it cannot place it."""
    try:
        model = shipped_model()
    except (ModelFileError, ImportError):
        return None
    return model.word_point(word, known)


def manifest_json(manifest: dict) -> str:
    return json.dumps(manifest, sort_keys=True)
