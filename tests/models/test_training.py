"""Training end to end on small data made here: checkpoints, resume, and DDP with 2 ranks."""

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from affetto.errors import ConfigError
from affetto.models.checkpoint import load_checkpoint, read_meta, save_checkpoint
from affetto.models.data import DataConfig
from affetto.models.train import TrainConfig, train
from affetto.models.transformer import EmotionTransformer, ModelConfig

pytestmark = pytest.mark.torch

TINY = ModelConfig(n_layer=1, n_head=2, d_model=16, d_ff=32, max_len=128, dropout=0.0)


def tiny_config(out, data, **kw) -> TrainConfig:
    base = dict(out=str(out), data=str(data), steps=6, batch=4, eval_every=3, eval_examples=8, warmup=2,
                model=TINY, data_config=DataConfig(max_tokens=127, variants=1), threads=1)
    return TrainConfig(**(base | kw))


def test_train_writes_safetensors_checkpoints_with_configs(tmp_path, midi_folder):
    result = train(tiny_config(tmp_path / "run", midi_folder), progress=False)
    assert result["step"] == 6
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == ["best.json", "best.safetensors", "last.json", "last.optim.safetensors",
                     "last.safetensors", "summary.json"]
    meta = read_meta(tmp_path / "run" / "last")
    assert meta["step"] == 6 and meta["vocab"]["format"] == "affetto-vocab"
    assert [h["step"] for h in meta["history"]] == [3, 6]
    assert "MIDI folder" in meta["data_summary"]["source"]
    model, _ = load_checkpoint(tmp_path / "run" / "last")
    assert model.cfg.vocab_size == meta["model"]["vocab_size"]


def test_resume_continues_exactly_where_it_stopped(tmp_path, midi_folder):
    straight = train(tiny_config(tmp_path / "a", midi_folder, steps=6), progress=False)
    train(tiny_config(tmp_path / "b", midi_folder, steps=3), progress=False)
    resumed = train(tiny_config(tmp_path / "b", midi_folder, steps=6), resume=True, progress=False)
    assert resumed["step"] == 6
    # Same batches, same optimizer state: the same weights as the uninterrupted run.
    a, _ = load_checkpoint(tmp_path / "a" / "last")
    b, _ = load_checkpoint(tmp_path / "b" / "last")
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.allclose(pa, pb, atol=1e-6), name
    assert resumed["val_loss"] == pytest.approx(straight["val_loss"], rel=1e-5)


def test_checkpoint_round_trip_and_bad_files(tmp_path):
    model = EmotionTransformer(TINY)
    save_checkpoint(tmp_path / "ck", model, {"step": 1})
    loaded, _meta = load_checkpoint(tmp_path / "ck")
    for (_, pa), (_, pb) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(pa, pb)
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(OSError, match="not valid JSON"):
        read_meta(tmp_path / "bad")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something"}))
    with pytest.raises(OSError, match="not an affetto checkpoint"):
        read_meta(tmp_path / "other")
    with pytest.raises(OSError, match="no optimizer state"):
        load_checkpoint(tmp_path / "ck", torch.optim.AdamW(model.parameters()))


def test_bad_training_config():
    with pytest.raises(ValueError, match="steps must be >= 1"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="exceed the model's"):
        TrainConfig(model=ModelConfig(max_len=64))


@pytest.mark.slow
def test_ddp_two_ranks_on_cpu(tmp_path, midi_folder):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
        "-m", "affetto.cli", "train", "--data", str(midi_folder), "--out", str(out), "--steps", "4",
        "--batch", "2", "--eval-every", "2", "--layers", "1", "--width", "16", "--heads", "2",
        "--context", "128", "--threads", "1",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = read_meta(out / "last")
    assert meta["world_size"] == 2 and meta["step"] == 4


def test_init_gains_per_block_capsules_that_start_at_zero(tmp_path, midi_folder):
    base = train(tiny_config(tmp_path / "base", midi_folder, steps=3), progress=False)
    cfg = tiny_config(tmp_path / "grown", midi_folder, steps=3)
    cfg = replace(cfg, init=str(tmp_path / "base" / "last"), model=replace(cfg.model, cond_layers=True))
    grown = train(cfg, progress=False)
    assert grown["step"] == 3 and base["step"] == 3
    start, _ = load_checkpoint(tmp_path / "base" / "last")
    model, _ = load_checkpoint(tmp_path / "grown" / "last")
    assert model.cond_layers is not None and start.cond_layers is None
    assert float(model.cond_layers.detach().abs().sum()) > 0  # trained away from zero
    # the other way round is refused: per-block capsules cannot be dropped silently
    back = replace(tiny_config(tmp_path / "back", midi_folder, steps=3), init=str(tmp_path / "grown" / "last"))
    with pytest.raises(ConfigError, match="differs"):
        train(back, progress=False)


def test_cli_init_takes_the_checkpoints_architecture_and_vocabulary(tmp_path, midi_folder):
    """`affetto train --init CKPT` fine-tunes CKPT as it is: its width, layers and vocabulary, not the options'."""
    from click.testing import CliRunner

    from affetto.models.cli import train as train_command
    from affetto.tokens.vocab import VocabConfig

    first = tiny_config(tmp_path / "first", midi_folder, steps=2, vocab=VocabConfig())  # the version 1 vocabulary
    train(first, progress=False)
    result = CliRunner().invoke(train_command, [
        "--out", str(tmp_path / "tuned"), "--data", str(midi_folder), "--init", str(tmp_path / "first" / "last"),
        "--steps", "2", "--batch", "2", "--eval-every", "2", "--width", "64", "--layers", "3", "--threads", "1"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    tuned = read_meta(tmp_path / "tuned" / "last")
    assert tuned["model"]["d_model"] == 16 and tuned["model"]["n_layer"] == 1  # the checkpoint's, not --width 64
    assert tuned["vocab"] == read_meta(tmp_path / "first" / "last")["vocab"]
    missing = CliRunner().invoke(train_command, ["--out", str(tmp_path / "x"), "--init", str(tmp_path / "none")])
    assert missing.exit_code != 0 and "no checkpoint metadata" in missing.output


def test_the_shipped_checkpoint_is_the_shipped_model():
    """The default model's PyTorch weights ship beside its .onnx, for `affetto train --init default`."""
    from affetto.manifest import read_manifest
    from affetto.models.checkpoint import default_checkpoint_path
    from affetto.runtime import default_model_path

    model, meta = load_checkpoint(default_checkpoint_path())
    manifest = read_manifest(default_model_path("fp32"))  # the reference (the CPU's int8 is its distilled student)
    assert meta["vocab"] == manifest["vocab"]
    assert model.cfg.to_dict() == {**model.cfg.to_dict(), **{k: v for k, v in manifest["model"].items()
                                                              if k in model.cfg.to_dict()}}
    assert meta["step"] == manifest["training"]["step"]
