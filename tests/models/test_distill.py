"""Guidance distillation on small data made here: the student starts as the teacher's conditioned row, learns
the guided distribution, and resumes where it stopped."""

import pytest
import torch

from affetto.errors import ConfigError
from affetto.models.checkpoint import load_checkpoint, read_meta
from affetto.models.distill import DistillConfig, capsules, distill, distill_loss, guided_log_probs, student_of

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    from tiny_things import make_checkpoint

    return make_checkpoint(tmp_path_factory.mktemp("teacher"), cond_layers=True)


def _config(teacher, out, midi_folder, **kw) -> DistillConfig:
    base = dict(teacher=str(teacher), out=str(out), data=str(midi_folder), steps=8, batch=4, lr=3e-3, min_lr=1e-3,
                warmup=1, eval_every=4, eval_examples=8, threads=1)
    return DistillConfig(**(base | kw))


def test_the_student_starts_as_the_teachers_conditioned_row(teacher):
    model, _ = load_checkpoint(teacher)
    student = student_of(model).eval()
    assert student.cfg.n_cond == 5 and model.cfg.n_cond == 4
    tokens = torch.randint(0, model.cfg.vocab_size, (2, 12))
    capsule = torch.tensor([[1.0, 0, 0, 0], [0, 0, 0.4, 0.6]])
    with torch.no_grad():
        expected, _ = model(tokens, capsule)
        got, _ = student(tokens, torch.cat([capsule, torch.zeros(2, 1)], dim=1))
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    mask = torch.ones(2, 12)
    with torch.no_grad():
        at_one = distill_loss(student, model, tokens, mask, capsule, torch.ones(2), 5.0)
        at_three = distill_loss(student, model, tokens, mask, capsule, torch.full((2,), 3.0), 5.0)
    assert float(at_one) < 1e-6 < float(at_three)  # guidance 1 is the conditioned row; 3 is not
    guided = guided_log_probs(model, tokens, capsule, torch.full((2,), 3.0))
    assert torch.allclose(guided.exp().sum(-1), torch.ones(2, 12), atol=1e-5)


def test_mixed_capsules_keep_their_weight_on_two_quadrants():
    import numpy as np

    rows = torch.eye(4).repeat(8, 1)  # 32 one-hot capsules
    mixed = capsules(rows, np.random.default_rng(0), 1.0)
    assert torch.allclose(mixed.sum(1), torch.ones(32))
    assert ((mixed > 0).sum(1) <= 2).all() and ((mixed > 0).sum(1) == 2).any()
    assert torch.equal(capsules(rows, np.random.default_rng(0), 0.0), rows)


def test_distillation_learns_and_resumes_where_it_stopped(tmp_path, teacher, midi_folder):
    # warmup over the first 4 steps: the interrupted run's learning rates are the whole run's
    straight = distill(_config(teacher, tmp_path / "a", midi_folder, warmup=4), progress=False)
    meta = read_meta(tmp_path / "a" / "last")
    first, last = meta["history"][0], meta["history"][-1]
    assert straight["step"] == 8 and [h["step"] for h in meta["history"]] == [4, 8]
    assert last["kl_at_3.0"] < first["kl_at_3.0"]  # the student comes nearer the guided teacher
    assert meta["distill"]["channel"]["index"] == 4 and meta["model"]["n_cond"] == 5
    assert meta["vocab"] == read_meta(teacher)["vocab"]
    distill(_config(teacher, tmp_path / "b", midi_folder, steps=4, warmup=4), progress=False)
    resumed = distill(_config(teacher, tmp_path / "b", midi_folder, steps=8, warmup=4), resume=True, progress=False)
    assert resumed["step"] == 8
    a, _ = load_checkpoint(tmp_path / "a" / "last")
    b, _ = load_checkpoint(tmp_path / "b" / "last")
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.allclose(pa, pb, atol=1e-6), name


def test_bad_distillation_config(tmp_path, teacher, midi_folder):
    with pytest.raises(ConfigError, match="max_scale"):
        distill(_config(teacher, tmp_path / "x", midi_folder, max_scale=1.0), progress=False)
    with pytest.raises(ConfigError, match="mix_share"):
        distill(_config(teacher, tmp_path / "x", midi_folder, mix_share=2.0), progress=False)


def test_only_the_channel_learns_when_asked(tmp_path, teacher, midi_folder):
    distill(_config(teacher, tmp_path / "c", midi_folder, only_channel=True, lr=1e-2, min_lr=1e-2),
            progress=False)
    model, _ = load_checkpoint(teacher)
    student, meta = load_checkpoint(tmp_path / "c" / "last")
    assert meta["distill"]["config"]["only_channel"] is True
    history = meta["history"]
    assert history[-1]["kl_at_3.0"] < history[0]["kl_at_3.0"]
    own, theirs = student.state_dict(), model.state_dict()
    for name, value in theirs.items():
        if name == "cond.weight":
            torch.testing.assert_close(own[name][:, :4], value, atol=0, rtol=0)
            assert own[name][:, 4].abs().max() > 0  # the channel learnt
        elif name == "cond_layers":
            torch.testing.assert_close(own[name][:, :4], value, atol=0, rtol=0)
            assert own[name][:, 4].abs().max() > 0
        else:
            torch.testing.assert_close(own[name], value, atol=0, rtol=0, msg=name)


def test_a_run_can_start_from_another_students_weights(tmp_path, teacher, midi_folder):
    distill(_config(teacher, tmp_path / "a", midi_folder, steps=4), progress=False)
    start, _ = load_checkpoint(tmp_path / "a" / "last")
    distill(_config(teacher, tmp_path / "b", midi_folder, steps=4, lr=1e-12, min_lr=1e-12,
                    init=str(tmp_path / "a" / "last")), progress=False)
    continued, meta = load_checkpoint(tmp_path / "b" / "last")
    assert meta["distill"]["config"]["init"] == str(tmp_path / "a" / "last")
    for (name, a), (_, b) in zip(start.state_dict().items(), continued.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), name  # (no learning to speak of at this rate)
    fresh, _ = load_checkpoint(teacher)
    assert not torch.allclose(continued.state_dict()["tok.weight"], fresh.state_dict()["tok.weight"])
    with pytest.raises(ConfigError, match="not a student"):
        distill(_config(teacher, tmp_path / "c", midi_folder, init=str(tmp_path / "a" / "last"), max_scale=3.0),
                progress=False)
