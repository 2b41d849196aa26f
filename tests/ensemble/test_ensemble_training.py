"""Training on a few real chorales: checkpoints as safetensors + JSON, resume, and export of the result."""

import json

import pytest
from conftest import tiny_config

pytestmark = [pytest.mark.torch, pytest.mark.slow]


def test_train_resume_and_export(tmp_path, monkeypatch):
    pytest.importorskip("music21")
    from affetto.export.musegan import export_ensemble
    from affetto.models.musegan.train import EnsembleTrainConfig, load_checkpoint, train

    monkeypatch.setenv("AFFETTO_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    cfg = EnsembleTrainConfig(out=str(out), steps=2, batch=4, n_critic=2, eval_every=1, limit=6, threads=1,
                              model=tiny_config())
    first = train(cfg, progress=False)
    assert first["step"] == 2
    names = sorted(p.name for p in out.iterdir())
    assert names == ["last.critic.safetensors", "last.generator.safetensors", "last.json", "last.optim.safetensors"]
    meta = json.loads((out / "last.json").read_text())
    assert meta["family"] == "ensemble" and meta["step"] == 2 and meta["train"]["n_critic"] == 2
    assert meta["data_summary"]["chorales"] > 0

    again = train(EnsembleTrainConfig.from_dict({**cfg.to_dict(), "steps": 3}), resume=True, progress=False)
    assert again["step"] == 3
    _, _, meta = load_checkpoint(out)
    assert meta["step"] == 3 and [h["step"] for h in meta["history"]] == [1, 2, 3]

    result = export_ensemble(out / "last", tmp_path / "run.onnx")
    assert result.manifest["training"]["step"] == 3 and result.max_abs_diff <= 1e-4
