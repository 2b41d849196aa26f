"""Training on a few real chorales: checkpoints as safetensors + JSON, resume, and export of the result."""

import json

import pytest
from conftest import tiny_config

pytestmark = [pytest.mark.torch, pytest.mark.slow]


def test_train_resume_and_export(tmp_path, monkeypatch):
    pytest.importorskip("music21")
    from affetto.export.musegan import export_ensemble
    from affetto.models.checkpoint import load_checkpoint
    from affetto.models.musegan.train import EnsembleTrainConfig, train

    monkeypatch.setenv("AFFETTO_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    cfg = EnsembleTrainConfig(out=str(out), steps=2, batch=4, n_critic=2, eval_every=1, limit=40, threads=1,
                              emotion_weight=0.5, emotion_level_weight=0.5, voice_leading_weight=1.0,
                              model=tiny_config())
    first = train(cfg, progress=False)
    assert first["step"] == 2
    names = sorted(p.name for p in out.iterdir())
    assert names == ["last.critic.safetensors", "last.emotion.safetensors", "last.generator.safetensors", "last.json",
                     "last.optim.safetensors"]
    meta = json.loads((out / "last.json").read_text())
    assert meta["family"] == "ensemble" and meta["step"] == 2 and meta["train"]["n_critic"] == 2
    assert meta["data_summary"]["chorales"] > 0
    assert meta["train"]["emotion_weight"] == 0.5
    assert 0 <= meta["history"][-1]["emotion_real_accuracy"] <= 1 and "sad_more_minor" in meta["history"][-1]

    again = train(EnsembleTrainConfig.from_dict({**cfg.to_dict(), "steps": 3}), resume=True, progress=False)
    assert again["step"] == 3
    _, meta = load_checkpoint(out)
    assert meta["step"] == 3 and [h["step"] for h in meta["history"]] == [1, 2, 3]

    result = export_ensemble(out / "last", tmp_path / "run.onnx")
    assert result.manifest["training"]["step"] == 3 and result.max_abs_diff <= 1e-4


def test_a_checkpoint_without_the_emotion_classifier_resumes_with_a_fresh_one(tmp_path, monkeypatch):
    pytest.importorskip("music21")
    from affetto.models.musegan.train import EnsembleTrainConfig, train

    monkeypatch.setenv("AFFETTO_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    cfg = EnsembleTrainConfig(out=str(out), steps=1, batch=4, n_critic=1, eval_every=1, limit=6, threads=1,
                              model=tiny_config())
    train(cfg, progress=False)
    # what a checkpoint from before the classifier looks like: no weights for it, no optimizer state
    (out / "last.emotion.safetensors").unlink()
    meta = json.loads((out / "last.json").read_text())
    del meta["optimizer_groups"]["e"]
    del meta["train"]["emotion_weight"]
    (out / "last.json").write_text(json.dumps(meta))
    again = train(EnsembleTrainConfig.from_dict({**cfg.to_dict(), "steps": 2, "emotion_weight": 1.0}), resume=True,
                  progress=False)
    assert again["step"] == 2 and (out / "last.emotion.safetensors").exists()
    assert json.loads((out / "last.json").read_text())["train"]["emotion_weight"] == 1.0
