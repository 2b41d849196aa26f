"""The ONNX Runtime engine: grammar-valid bars, determinism, guidance, the slide, bad input."""

import numpy as np
import pytest
import torch

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.errors import ConfigError, ModelFileError
from affetto.models.checkpoint import load_checkpoint
from affetto.music.notes import Note, TimeSignature
from affetto.runtime.engine import Engine
from affetto.runtime.sampling import SamplingConfig, SamplingOverrides, sample

pytestmark = pytest.mark.torch

SEED = [Note(60, 0, 1), Note(64, 1, 0.5), Note(67, 1.5, 0.5), Note(72, 2, 2), Note(55, 4, 4)]


@pytest.mark.parametrize("meter", [TimeSignature(4, 4), TimeSignature(3, 4), TimeSignature(6, 8)])
def test_bars_are_valid_over_many_random_seeds(tiny_model, meter):
    engine = Engine(tiny_model, meter=meter)
    length = meter.beats_per_bar
    for seed in range(12):
        engine.prime(SEED if seed % 2 else [])
        rng = np.random.default_rng(seed)
        for _ in range(3):
            capsule = Capsule.of(Quadrant(seed % 4))
            tokens = engine.generate_bar_tokens(capsule, SamplingConfig(guidance=2.0 if seed % 3 else 1.0), rng)
            engine.vocab.check(tokens, engine.bar_steps)
            for n in engine.vocab.decode(tokens, meter):
                assert 0 <= n.onset < length
                assert engine.vocab.config.pitch_min <= n.pitch <= engine.vocab.config.pitch_max


def test_same_seed_same_music(tiny_model):
    def run(value):
        engine = Engine(tiny_model)
        engine.prime(SEED)
        rng = np.random.default_rng(value)
        guided = SamplingOverrides(guidance=1.5)
        return [engine.generate_bar(Capsule.of(Quadrant.Q3), guided, rng=rng) for _ in range(4)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_engine_logits_match_pytorch(tiny_model, tiny_checkpoint):
    """The engine's cached, guided step equals PyTorch's full pass on the same tokens."""
    model, _ = load_checkpoint(tiny_checkpoint)
    engine = Engine(tiny_model)
    engine.prime(SEED)
    capsule = Capsule.of(Quadrant.Q2)
    engine.generate_bar_tokens(capsule, SamplingConfig(guidance=2.0, greedy=True), np.random.default_rng(0))
    context = torch.tensor([engine.cache.context])
    with torch.no_grad():
        cond, _ = model(context, torch.tensor([capsule.weights], dtype=torch.float32))
        uncond, _ = model(context, torch.zeros(1, 4))
    np.testing.assert_allclose(engine.cache.logits[0], cond[0, -1].numpy(), atol=1e-4)
    np.testing.assert_allclose(engine.cache.logits[1], uncond[0, -1].numpy(), atol=1e-4)


def test_context_slides_at_bar_lines_and_stays_correct(tiny_model, tiny_checkpoint):
    model, _ = load_checkpoint(tiny_checkpoint)
    engine = Engine(tiny_model)  # 256 positions: a few dense bars fill it
    engine.prime(SEED)
    rng = np.random.default_rng(1)
    for _ in range(30):
        engine.generate_bar_tokens(Capsule.of(Quadrant.Q1), SamplingConfig(temperature=1.5), rng)
        assert engine.cache.length <= engine.max_len
    assert engine.stats["slides"] > 0
    assert engine.cache.context[:2] == (engine.vocab.bos, engine.vocab.bar)
    with torch.no_grad():
        ref, _ = model(torch.tensor([engine.cache.context]), torch.tensor([[1.0, 0, 0, 0]]))
    np.testing.assert_allclose(engine.cache.logits[0], ref[0, -1].numpy(), atol=1e-4)


def test_capsule_change_rereads_the_context(tiny_model):
    engine = Engine(tiny_model)
    engine.prime(SEED)
    rng = np.random.default_rng(0)
    engine.generate_bar(Capsule.of(Quadrant.Q1), rng=rng)
    before = engine.stats["prefills"]
    engine.generate_bar(Capsule.of(Quadrant.Q1), rng=rng)
    assert engine.stats["prefills"] == before  # same emotion: the cache is reused
    engine.generate_bar(Capsule.of(Quadrant.Q3), rng=rng)
    assert engine.stats["prefills"] == before + 1


def test_seed_outside_range_is_folded_with_a_warning(tiny_model, caplog):
    engine = Engine(tiny_model)
    engine.prime([Note(5, 0, 1), Note(127, 1, 1)])
    assert "2 seed notes outside the model's range" in caplog.text
    names = [engine.vocab.name(t) for t in engine.cache.context]
    assert "PITCH_29" in names and "PITCH_103" in names
    for _ in range(50):  # every re-prime of a live set would say it again
        engine.prime([Note(5, 0, 1)])
    assert sum("outside the model's range" in r.getMessage() for r in caplog.records) == 1


def test_bad_engine_input(tiny_model, tmp_path):
    with pytest.raises(ConfigError, match="threads must be"):
        Engine(tiny_model, threads=0)
    with pytest.raises(ConfigError, match="provider must be one of"):
        Engine(tiny_model, provider="tpu")
    with pytest.raises(ConfigError, match="longer than this model's bars"):
        Engine(tiny_model, meter=TimeSignature(9, 4))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    with pytest.raises(ModelFileError, match="bad.onnx"):
        Engine(bad)
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        SamplingConfig(temperature=0)


def test_a_graph_of_the_old_contract_asks_for_a_new_export(tiny_model, tmp_path):
    """Before candidates ran side by side, graphs had a batch of rows and no attention bias."""
    import onnx
    from onnx import TensorProto, helper

    from affetto.export.export import with_manifest
    from affetto.manifest import read_manifest

    inputs = [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "sequence"]),
              helper.make_tensor_value_info("cond", TensorProto.FLOAT, ["batch", 4])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.INT64, ["batch", "sequence"])]
    graph = helper.make_graph([helper.make_node("Identity", ["tokens"], ["logits"])], "old", inputs, outputs)
    old = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)
    path = tmp_path / "old.onnx"
    onnx.save(with_manifest(old, read_manifest(tiny_model)), path)
    with pytest.raises(ModelFileError, match="old.onnx: the graph lacks position_ids.*exported by an older affetto"):
        Engine(path)


def test_sampler_respects_mask_top_k_and_top_p():
    rng = np.random.default_rng(0)
    allowed = np.array([True, True, False, True])
    for _ in range(200):
        logits = np.array([0.0, 1.0, 9.0, 2.0], np.float32)
        assert sample(logits, allowed, SamplingConfig(), rng) != 2
    picks = {sample(np.array([0.0, 1.0, 9.0, 2.0], np.float32), allowed, SamplingConfig(top_k=1), rng)
             for _ in range(50)}
    assert picks == {3}
    picks = {sample(np.array([5.0, 4.0, 0.0, 0.0], np.float32), np.ones(4, bool), SamplingConfig(top_p=0.5), rng)
             for _ in range(50)}
    assert picks == {0}
    assert sample(np.array([1.0, 3.0, 2.0, 0.0], np.float32), np.ones(4, bool), SamplingConfig(greedy=True), rng) == 1


def _context_pitch_classes(engine) -> set[int]:
    return {n.pitch % 12 for n in engine.vocab.decode(engine.cache.context[1:], engine.meter)}


def test_context_follows_the_mode_the_valence_asks_for(tiny_model):
    # two bars of plain C major: scale up, tonic triad held
    c_major = [Note(p, i * 0.5, 0.5, 80) for i, p in enumerate((60, 62, 64, 65, 67, 69, 71, 72))]
    c_major += [Note(p, 4.0, 4.0, 80) for p in (60, 64, 67)]
    engine = Engine(tiny_model)
    engine.prime(c_major)
    assert _context_pitch_classes(engine) == {0, 2, 4, 5, 7, 9, 11}
    rng = np.random.default_rng(0)
    engine.generate_bar(Capsule.of(Quadrant.Q3), rng=rng)  # sad: the phrase moves to C minor
    assert engine.stats["mode_changes"] == 1
    seed_part = engine.vocab.decode(engine.cache.context[1:], engine.meter)[: len(c_major)]
    assert [n.pitch for n in seed_part[:8]] == [60, 62, 63, 65, 67, 68, 70, 72]

    # (the tiny model's own bars are random notes, so the rest looks at the primed phrase alone)
    engine.prime(c_major)
    engine.match_mode(engine.plan(Capsule.of(Quadrant.Q1)))  # happy and major: nothing to move
    engine.match_mode(engine.plan(Capsule((0.5, 0.5, 0.0, 0.0))))  # neutral valence: left alone
    engine.match_mode(engine.plan(Capsule.unconditioned()))
    assert engine.stats["mode_changes"] == 1
    engine.match_mode(engine.plan(Capsule.of(Quadrant.Q2)))  # tense: minor
    engine.match_mode(engine.plan(Capsule.of(Quadrant.Q3)))  # still negative valence: already minor
    assert engine.stats["mode_changes"] == 2
    engine.match_mode(engine.plan(Capsule.of(Quadrant.Q4)))  # calm: back to major
    assert engine.stats["mode_changes"] == 3
    assert _context_pitch_classes(engine) == {0, 2, 4, 5, 7, 9, 11}

    off = Engine(tiny_model, follow_mode=False)
    off.prime(c_major)
    off.generate_bar(Capsule.of(Quadrant.Q3), rng=rng)
    assert off.stats["mode_changes"] == 0
    assert {4, 9, 11} <= _context_pitch_classes(off)


def test_candidates_keep_the_best_judged_bar_and_leave_only_it(tiny_model, tiny_checkpoint, monkeypatch):
    model, _ = load_checkpoint(tiny_checkpoint)
    engine = Engine(tiny_model)
    engine.prime(SEED)
    drawn: list[list[int]] = []
    draw = engine.decoder.draw

    def recording(n, config, rng, **kwargs):
        fork = draw(n, config, rng, **kwargs)  # the tokens after the bar's BAR, which is fed once for all
        drawn.extend([engine.vocab.bar, *tokens] for tokens in fork.tokens)
        return fork

    monkeypatch.setattr(engine.decoder, "draw", recording)
    monkeypatch.setattr(engine.judge, "scorer", lambda prefix, valence, arousal: lambda tokens: float(len(tokens)))
    # (the longest bar wins)
    before = engine.cache.context
    config = SamplingConfig(temperature=1.5, guidance=1.5, candidates=5)
    bar = engine.generate_bar_tokens(Capsule.of(Quadrant.Q1), config, np.random.default_rng(3))
    assert len(drawn) == 5 and len({tuple(d) for d in drawn}) > 1
    assert bar == max(drawn, key=len)
    assert engine.cache.context == (*before, *bar)  # the losers left nothing behind
    # the cache holds exactly the kept context: its next-token logits match PyTorch on it, both rows
    with torch.no_grad():
        ref, _ = model(torch.tensor([engine.cache.context] * 2), torch.tensor([[1.0, 0, 0, 0], [0.0, 0, 0, 0]]))
    np.testing.assert_allclose(engine.cache.logits, ref[:, -1].numpy(), atol=1e-4)


def test_candidates_are_validated():
    for bad in (0, 17, 2.5):
        with pytest.raises(ConfigError, match="candidates"):
            SamplingConfig(candidates=bad)


def test_candidates_that_all_judge_as_nothing_still_give_a_bar(tiny_model, monkeypatch):
    engine = Engine(tiny_model)
    engine.prime(SEED)
    monkeypatch.setattr(engine.judge, "scorer", lambda prefix, valence, arousal: lambda tokens: -np.inf)  # empty bars
    bar = engine.generate_bar_tokens(Capsule.of(Quadrant.Q3), SamplingConfig(candidates=3), np.random.default_rng(0))
    assert bar[0] == engine.vocab.bar and list(engine.cache.context[-len(bar):]) == bar


def test_sampling_overrides_apply_over_the_models_settings():
    base = SamplingConfig(top_p=0.95, guidance=1.5, candidates=4)
    assert SamplingOverrides().over(base) == base
    assert SamplingOverrides(temperature=0.7, candidates=1).over(base) == base.replace(temperature=0.7, candidates=1)
    assert SamplingOverrides(greedy=True).given() == {"greedy": True}
    for bad, message in (({"temperature": 0}, "temperature must be in range 0.01..5.0"),
                         ({"candidates": 2.0}, "candidates must be an int"),
                         ({"top_p": float("nan")}, "top_p must be a number")):
        with pytest.raises(ConfigError, match=message):
            SamplingOverrides(**bad)


def test_the_judge_hears_tempo_against_the_tempo_the_model_was_labelled_at(tiny_model):
    from affetto.manifest import read_manifest

    manifest = read_manifest(tiny_model)
    manifest["training"]["config"]["data_config"]["label_tempo"] = 80.0  # as `affetto export` writes it
    assert Engine(tiny_model, manifest=manifest).judge.tempo == 80.0
    del manifest["training"]["config"]["data_config"]["label_tempo"]
    assert Engine(tiny_model, manifest=manifest).judge.tempo == Engine(tiny_model).judge.judge_config.tempo_ref
