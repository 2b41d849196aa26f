"""The vocabulary: its layout (:mod:`.layout`), codec (:mod:`.codec`) and grammar (:mod:`.grammar`)
in one object, with the JSON every model file carries."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from affetto.errors import VocabularyError
from affetto.tokens.codec import Codec
from affetto.tokens.grammar import Grammar, GrammarState
from affetto.tokens.layout import (
    BAR,
    BOS,
    DENS,
    DUR,
    KEY,
    METER,
    PAD,
    PITCH,
    POLY,
    POS,
    VEL,
    VocabConfig,
)

__all__ = ["BAR", "BOS", "DENS", "DUR", "KEY", "METER", "PAD", "PITCH", "POLY", "POS", "VEL",
           "GrammarState", "VocabConfig", "Vocabulary"]


class Vocabulary(Codec, Grammar):
    """Token ids, encoding notes to tokens and back, and the grammar masks."""

    def to_dict(self) -> dict:
        return {"format": "affetto-vocab", **asdict(self.config), "size": self.size}

    @classmethod
    def from_dict(cls, data: dict) -> Vocabulary:
        if data.get("format") != "affetto-vocab":
            raise VocabularyError("not an affetto vocabulary (missing format: affetto-vocab)")
        fields = {k: v for k, v in data.items() if k in VocabConfig.__dataclass_fields__}
        for name in ("durations", "meters", "density_edges", "polyphony_edges"):
            if name in fields:
                fields[name] = tuple(fields[name])
        vocab = cls(VocabConfig(**fields))
        if "size" in data and data["size"] != vocab.size:
            raise VocabularyError(f"vocabulary size {data['size']} does not match its config ({vocab.size})")
        return vocab

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Vocabulary:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise VocabularyError(f"vocabulary JSON is malformed: {err}") from err
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))
