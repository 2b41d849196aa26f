"""Material: the model's training data loaded and split again; held-out phrases and seeds."""

from __future__ import annotations

import logging

from affetto.analysis.judge import JudgeConfig
from affetto.errors import ConfigError
from affetto.models.data import DataConfig
from affetto.models.evaluation.config import EvalConfig
from affetto.models.evaluation.data import Phrase, Source, labelled_windows, load_seed_folder, load_source
from affetto.tokens.vocab import Vocabulary

log = logging.getLogger(__name__)


def training_config(manifest: dict) -> dict:
    return (manifest.get("training") or {}).get("config") or {}


def data_config_of(train: dict) -> DataConfig:
    dc = dict(train.get("data_config") or {})
    for key in ("time_scales", "velocity_scales"):
        if key in dc:
            dc[key] = tuple(dc[key])
    return DataConfig(**{k: v for k, v in dc.items() if k in DataConfig.__dataclass_fields__})


def resolve_material(
    cfg: EvalConfig, manifest: dict, vocab: Vocabulary, data_config: DataConfig, judge_config: JudgeConfig
) -> tuple[Source | None, list[int], list[Phrase], list[Phrase], dict]:
    """(training source or None, held-out piece indices, held-out phrases, seed phrases, report notes)."""
    train = training_config(manifest)
    data = cfg.data or train.get("data") or "corpus"
    notes: dict = {"data": data}
    source: Source | None = None
    try:
        source = load_source(data, groups=tuple(train.get("groups") or ()), emopia=bool(train.get("emopia")),
                             labels_csv=None if cfg.data else train.get("labels"), vocab=vocab,
                             progress=cfg.progress)
    except ConfigError as err:
        if cfg.seeds == "held-out":
            raise ConfigError(f"{err}; or pass --seeds FOLDER") from err
        log.warning("%s: judges' ceilings use the seed folder and the learned judge is skipped", err)
        notes["data_unavailable"] = str(err)
    held_idx: list[int] = []
    heldout: list[Phrase] = []
    if source is not None:
        held_idx = source.indices("test") or source.indices("valid")
        notes["source"] = source.description
        notes["heldout_split"] = "test" if source.indices("test") else "valid"
        heldout = labelled_windows(source, held_idx, vocab, data_config, judge_config,
                                   window_bars=cfg.phrase_bars)
    if cfg.seeds == "held-out":
        seeds = heldout
        notes["seeds"] = f"held-out {notes.get('heldout_split')} split of {notes.get('source')}"
    else:
        folder = load_seed_folder(cfg.seeds, vocab)
        seeds = labelled_windows(folder, range(len(folder.pieces)), vocab, data_config, judge_config,
                                 window_bars=cfg.phrase_bars)
        notes["seeds"] = folder.description
        if not heldout:
            heldout = seeds
            notes["heldout_is_seed_folder"] = True
    seeds = [s for s in seeds if vocab.grid.steps_per_bar(s.meter) <= vocab.config.max_bar_steps]
    if not seeds:
        raise ConfigError(f"no usable seed phrases ({notes['seeds']})")
    notes.update(heldout_pieces=len(held_idx), heldout_phrases=len(heldout), seed_phrases=len(seeds))
    return source, held_idx, heldout, seeds, notes
