"""Model families: the manifest and the checkpoint name one; loading, export and the runtime dispatch on it."""

import json

import pytest

from affetto.errors import ModelFileError
from affetto.manifest import read_manifest
from affetto.runtime import families as runtime_families
from affetto.runtime import family_of, load_model
from affetto.runtime.engine import Engine


def test_export_writes_the_family_and_the_runtime_loads_it(tiny_model):
    manifest = read_manifest(tiny_model)
    assert manifest["family"] == "lead"
    engine = load_model(tiny_model)
    assert isinstance(engine, Engine) and engine.family == "lead"


def test_a_manifest_without_family_is_lead():
    assert family_of({}) == "lead"
    assert family_of({"family": "ensemble"}) == "ensemble"
    with pytest.raises(ModelFileError, match="family must be a string"):
        family_of({"family": 3})


def test_the_runtime_dispatches_on_the_family(tiny_model, monkeypatch):
    seen = {}

    def loader(path, *, manifest, **options):
        seen.update(path=path, family=manifest["family"], options=options)
        return "a fake generator"

    real = read_manifest(tiny_model)
    monkeypatch.setattr(runtime_families, "read_manifest", lambda path: dict(real, family="fake"))
    monkeypatch.setitem(runtime_families._LOADERS._entries, "fake", loader)
    assert load_model(tiny_model, threads=1) == "a fake generator"
    assert seen == {"path": tiny_model, "family": "fake", "options": {"threads": 1}}
    monkeypatch.setattr(runtime_families, "read_manifest", lambda path: dict(real, family="nobody"))
    with pytest.raises(ModelFileError, match="no runtime for model family 'nobody'"):
        load_model(tiny_model)


@pytest.mark.torch
def test_checkpoints_name_their_family_and_loading_dispatches_on_it(tiny_checkpoint, tmp_path):
    from affetto.models.checkpoint import checkpoint_paths, load_checkpoint
    from affetto.models.families import get_family
    from affetto.models.transformer import EmotionTransformer

    model, meta = load_checkpoint(tiny_checkpoint)
    assert meta["family"] == "lead" and isinstance(model, EmotionTransformer)
    assert get_family("lead").module is EmotionTransformer

    # a checkpoint written before the key existed is a lead checkpoint; an unknown family is refused
    weights, _, meta_path = checkpoint_paths(tiny_checkpoint)
    old = tmp_path / "old"
    (tmp_path / "old.safetensors").write_bytes(weights.read_bytes())
    data = json.loads(meta_path.read_text())
    del data["family"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    assert isinstance(load_checkpoint(old)[0], EmotionTransformer)
    (tmp_path / "old.json").write_text(json.dumps(dict(data, family="nobody")))
    with pytest.raises(ModelFileError, match="unknown model family 'nobody'"):
        load_checkpoint(old)


@pytest.mark.torch
def test_export_dispatches_on_the_family():
    from affetto.export.families import get_family
    from affetto.export.graph import build_graph

    assert get_family("lead").graph is build_graph
    with pytest.raises(ModelFileError, match="no exporter for model family 'nobody'"):
        get_family("nobody")


def test_load_model_gives_each_shipped_model_its_familys_runtime():
    from affetto.ensemble.engine import Ensemble
    from affetto.runtime import load_model
    from affetto.runtime.assets import default_ensemble_path
    from affetto.runtime.engine import Engine

    assert isinstance(load_model(), Engine)
    ensemble = load_model(default_ensemble_path())
    assert isinstance(ensemble, Ensemble) and ensemble.manifest["family"] == "ensemble"
