"""The ensemble's checkpoints go through the one checkpoint module the lead's use: safetensors plus JSON."""

from __future__ import annotations

import json

import pytest
from conftest import tiny_config

torch = pytest.importorskip("torch", reason="checkpoints need the train extra")

from affetto.errors import ModelFileError  # noqa: E402
from affetto.models.checkpoint import load_checkpoint, load_part, read_meta, save_checkpoint  # noqa: E402
from affetto.models.musegan.model import Critic, EmotionClassifier, Generator  # noqa: E402


def trained_a_step():
    """A tiny generator, critic and classifier, each with an Adam that has taken a step (state to save)."""
    torch.manual_seed(1)
    cfg = tiny_config()
    modules = {"g": Generator(cfg), "d": Critic(cfg), "e": EmotionClassifier(cfg)}
    opts = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in modules.items()}
    for name, module in modules.items():
        loss = sum(p.float().pow(2).sum() for p in module.parameters())
        opts[name].zero_grad()
        loss.backward()
        opts[name].step()
    return modules, opts


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def fresh(modules):
    cfg = tiny_config()
    new = {"g": Generator(cfg), "d": Critic(cfg), "e": EmotionClassifier(cfg)}
    return new, {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in new.items()}


def test_an_ensemble_checkpoint_round_trips_through_the_shared_module(tmp_path, monkeypatch):
    modules, opts = trained_a_step()
    save_checkpoint(tmp_path / "last", modules["g"], {"step": 7, "train": {"out": "x"}},
                    parts={"critic": modules["d"], "emotion": modules["e"]}, optimizers=opts)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "last.critic.safetensors", "last.emotion.safetensors", "last.generator.safetensors", "last.json",
        "last.optim.safetensors"]
    meta = read_meta(tmp_path / "last")
    assert meta["format"] == "affetto-checkpoint" and meta["family"] == "ensemble" and meta["step"] == 7
    assert meta["model"] == tiny_config().to_dict() and sorted(meta["optimizer_groups"]) == ["d", "e", "g"]

    def no_pickle(*args, **kwargs):
        raise AssertionError("torch.load (pickle) must never read a checkpoint")

    monkeypatch.setattr(torch, "load", no_pickle)
    new, new_opts = fresh(modules)
    gen, loaded_meta = load_checkpoint(tmp_path, parts={"critic": new["d"]}, optimizers=new_opts)
    assert isinstance(gen, Generator) and not gen.training and loaded_meta == meta
    assert same_weights(gen, modules["g"]) and same_weights(new["d"], modules["d"])
    assert not same_weights(new["e"], modules["e"]) and load_part(tmp_path, "emotion", new["e"])
    assert same_weights(new["e"], modules["e"])
    for name, opt in opts.items():
        want, got = opt.state_dict(), new_opts[name].state_dict()
        assert json.loads(json.dumps(want["param_groups"])) == got["param_groups"]  # JSON keeps tuples as lists
        for index, state in want["state"].items():
            assert all(torch.equal(state[k], got["state"][index][k]) for k in state), (name, index)


def test_missing_parts_older_checkpoints_and_newer_optimizers(tmp_path):
    modules, opts = trained_a_step()
    save_checkpoint(tmp_path / "ck", modules["g"], {"step": 1}, parts={"critic": modules["d"]},
                    optimizers={"g": opts["g"], "d": opts["d"]})
    new, new_opts = fresh(modules)
    assert load_part(tmp_path / "ck", "emotion", new["e"]) is False  # older than the classifier: left fresh
    with pytest.raises(ModelFileError, match="no 'emotion' weights"):
        load_checkpoint(tmp_path / "ck", parts={"emotion": new["e"]})
    load_checkpoint(tmp_path / "ck", optimizers=new_opts)  # "e" is newer than the checkpoint: starts fresh
    assert new_opts["e"].state_dict()["state"] == {} and new_opts["g"].state_dict()["state"]

    # what the ensemble's trainer wrote before it shared this module: its own format name, same files
    meta = json.loads((tmp_path / "ck.json").read_text())
    (tmp_path / "ck.json").write_text(json.dumps({**meta, "format": "affetto-ensemble-checkpoint"}))
    gen, _ = load_checkpoint(tmp_path / "ck.json")
    assert same_weights(gen, modules["g"])
    (tmp_path / "ck.json").write_text(json.dumps({**meta, "format": "something else"}))
    with pytest.raises(ModelFileError, match="not an affetto checkpoint"):
        load_checkpoint(tmp_path / "ck")


def test_the_ensemble_exporter_reads_checkpoints_by_their_family(tmp_path):
    from affetto.export.musegan import export_ensemble
    from affetto.models.transformer import EmotionTransformer, ModelConfig

    lead = EmotionTransformer(ModelConfig(vocab_size=40, n_layer=1, n_head=2, d_model=16, d_ff=32, max_len=32))
    save_checkpoint(tmp_path / "lead", lead, {"step": 0})
    with pytest.raises(ModelFileError, match="a lead checkpoint, not an ensemble one"):
        export_ensemble(tmp_path / "lead", tmp_path / "lead.onnx")
    modules, _ = trained_a_step()
    save_checkpoint(tmp_path / "ens", modules["g"], {"step": 3, "train": {"out": "runs/tiny"}})
    result = export_ensemble(tmp_path / "ens", tmp_path / "ens.onnx")
    assert result.manifest["family"] == "ensemble" and result.manifest["training"]["step"] == 3
    assert result.max_abs_diff <= 1e-4
