"""A guidance-distilled model (``affetto distill``) exported and run: one row, the guidance scale in its capsule."""

import numpy as np
import onnx
import pytest
import torch

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.errors import ModelFileError
from affetto.export.export import export_checkpoint, grammar_walks
from affetto.manifest import read_manifest
from affetto.models.checkpoint import load_checkpoint
from affetto.runtime.engine import Engine
from affetto.runtime.sampling import SamplingOverrides
from affetto.runtime.session import guidance_value
from affetto.tokens.vocab import Vocabulary

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def distilled_checkpoint(tmp_path_factory):
    from tiny_things import make_distilled_checkpoint

    return make_distilled_checkpoint(tmp_path_factory.mktemp("distilled"))


@pytest.fixture(scope="module")
def distilled_model(tmp_path_factory, distilled_checkpoint):
    out = tmp_path_factory.mktemp("onnx") / "distilled.onnx"
    result = export_checkpoint(distilled_checkpoint, out, sequences=grammar_walks(Vocabulary(), 4, 64))
    assert result.parity is not None and result.parity.passed(), str(result.parity)
    return out


def _student_logits(checkpoint, context, capsule) -> np.ndarray:
    model, _ = load_checkpoint(checkpoint)
    with torch.no_grad():
        logits, _ = model(torch.tensor([context]), torch.tensor([capsule], dtype=torch.float32))
    return logits[0, -1].numpy()


def test_the_export_writes_one_row_that_takes_the_guidance_channel(distilled_model):
    manifest = read_manifest(distilled_model)
    assert manifest["kv_cache"]["rows"] == 1
    channel = manifest["conditioning"]["guidance_channel"]
    assert channel["index"] == 4 and channel["max_scale"] == 5.0
    assert manifest["conditioning"]["guidance_ready"] is True
    cond = next(i for i in onnx.load(distilled_model).graph.input if i.name == "cond")
    assert [d.dim_value for d in cond.type.tensor_type.shape.dim] == [1, 5]


def test_the_engine_runs_one_row_with_the_plans_guidance_in_it(distilled_model, distilled_checkpoint):
    engine = Engine(distilled_model)
    assert engine.cache.rows == 1 and engine.cache.capsule_width == 5
    engine.prime([])
    rng = np.random.default_rng(0)
    for scale in (1.5, 1.0, 3.0):
        bar = engine.generate_bar(Capsule.of(Quadrant.Q3), SamplingOverrides(guidance=scale), rng=rng)
        assert all(0 <= n.onset < engine.meter.beats_per_bar for n in bar)
        capsule = (*Capsule.of(Quadrant.Q3).weights, guidance_value(scale, 5.0))
        assert engine.cache.capsules == (capsule,)
    # what the engine draws from is the student's distribution at that guidance, as PyTorch computes it
    engine.cache.prefill()
    expected = _student_logits(distilled_checkpoint, list(engine.cache.context), capsule)
    np.testing.assert_allclose(engine.cache.logits[0], expected, atol=1e-4)
    other = _student_logits(distilled_checkpoint, list(engine.cache.context), (*capsule[:4], 0.0))
    assert np.abs(other - expected).max() > 1e-2  # the channel changes the distribution


def test_a_change_of_guidance_reads_the_context_again(distilled_model):
    engine = Engine(distilled_model)
    engine.prime([])
    rng = np.random.default_rng(1)
    engine.generate_bar(Capsule.of(Quadrant.Q1), SamplingOverrides(guidance=1.5), rng=rng)
    before = engine.stats["prefill_tokens"]
    engine.generate_bar(Capsule.of(Quadrant.Q1), SamplingOverrides(guidance=1.5), rng=rng)
    assert engine.stats["slides"] == 0  # (the tiny model's window is short: a slide would read it again)
    assert engine.stats["prefill_tokens"] == before  # same capsule and scale: nothing read again
    length = engine.cache.length
    engine.generate_bar(Capsule.of(Quadrant.Q1), SamplingOverrides(guidance=4.0), rng=rng)
    assert engine.stats["slides"] == 0
    assert engine.stats["prefill_tokens"] == before + length  # the whole context, in the new scale


def test_an_unconditioned_capsule_takes_no_guidance(distilled_model):
    engine = Engine(distilled_model)
    engine.prime([])
    engine.generate_bar(Capsule.unconditioned(), SamplingOverrides(guidance=3.0), rng=np.random.default_rng(2))
    assert engine.cache.capsules == ((0.0, 0.0, 0.0, 0.0, 0.0),)


def test_a_manifest_that_disagrees_with_the_graphs_rows_is_refused(distilled_model, tiny_model):
    manifest = read_manifest(distilled_model)
    bare = {**manifest, "conditioning": {k: v for k, v in manifest["conditioning"].items() if k != "guidance_channel"}}
    with pytest.raises(ModelFileError, match="1 rows of 5"):
        Engine(distilled_model, manifest=bare)
    two_rows = read_manifest(tiny_model)
    claimed = {**two_rows, "conditioning": {**two_rows["conditioning"], "guidance_channel": manifest["conditioning"]
                                            ["guidance_channel"]}}
    with pytest.raises(ModelFileError, match="2 rows of 4"):
        Engine(tiny_model, manifest=claimed)


@pytest.mark.parametrize("options", [{"int8": True}, {"kv_int8": True}], ids=["int8", "kv-int8"])
def test_quantised_exports_of_a_distilled_model_run(distilled_checkpoint, tmp_path, options):
    out = tmp_path / "q.onnx"
    result = export_checkpoint(distilled_checkpoint, out, sequences=grammar_walks(Vocabulary(), 4, 64), **options)
    figures = result.manifest.get("quantization") or result.manifest["kv_cache"]
    assert figures["top1_agreement"] >= 0.5
    engine = Engine(out)
    engine.prime([])
    tokens = engine.generate_bar_tokens(Capsule.of(Quadrant.Q2), engine.sampling_for(Capsule.of(Quadrant.Q2)),
                                        np.random.default_rng(3))
    engine.vocab.check(tokens, engine.bar_steps)


def test_held_out_likelihood_reads_a_distilled_model_without_guidance(distilled_model, distilled_checkpoint):
    from affetto.models.evaluation.nll import token_logprobs
    from affetto.runtime.session import open_session

    manifest = read_manifest(distilled_model)
    vocab = Vocabulary.from_dict(manifest["vocab"])
    seq = np.array(grammar_walks(vocab, 1, 30, seed=4)[0][0][1:], np.int64)
    got = token_logprobs(open_session(distilled_model, threads=1), manifest, seq, 2, bos=vocab.bos)
    logits = _student_logits(distilled_checkpoint, [vocab.bos, *seq[:-1].tolist()], (0.0, 0.0, 1.0, 0.0, 0.0))
    last = logits - logits.max()
    expected = last[seq[-1]] - np.log(np.exp(last).sum())
    assert abs(got[-1] - expected) < 1e-3


def test_a_scale_outside_what_the_student_learnt_is_held_to_it_and_said(distilled_model, caplog):
    engine = Engine(distilled_model)
    engine.prime([])
    with caplog.at_level("WARNING", logger="affetto.runtime.engine"):
        engine.generate_bar(Capsule.of(Quadrant.Q1), SamplingOverrides(guidance=8.0), rng=np.random.default_rng(5))
        engine.generate_bar(Capsule.of(Quadrant.Q1), SamplingOverrides(guidance=8.0), rng=np.random.default_rng(6))
    assert engine.cache.capsules == ((*Capsule.of(Quadrant.Q1).weights, 1.0),)
    said = [r.getMessage() for r in caplog.records if "learnt guidance scales" in r.getMessage()]
    assert said == ["this model learnt guidance scales 1 to 5: 8 is played as 5"]  # once, not every bar


def test_the_benchmark_times_pytorch_on_a_distilled_checkpoint(distilled_checkpoint):
    """``affetto bench --checkpoint`` of a distilled model: PyTorch's step takes its five-weight capsule."""
    from bench.bench_engine import torch_step_times

    for cached in (True, False):
        times = torch_step_times(distilled_checkpoint, 2, 20, 3, cached)
        assert len(times) == 3 and all(t > 0 for t in times)
