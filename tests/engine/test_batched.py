"""Candidates drawn side by side: the same logits and greedy tokens as one by one, the kept one's cache,
and the partial bar (the rest of a bar drawn again in a new capsule)."""

import numpy as np
import pytest
import torch
from tiny_things import assert_cache_read_as_drawn

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.errors import ConfigError
from affetto.models.checkpoint import load_checkpoint
from affetto.music.notes import Note
from affetto.runtime.assets import default_model_path
from affetto.runtime.engine import Engine
from affetto.runtime.sampling import DEFAULT_SAMPLING, SamplingConfig
from affetto.runtime.session import UNCONDITIONED

pytestmark = pytest.mark.torch

SEED = [Note(60 + (i * 5) % 12, i * 0.5, 0.5, 90) for i in range(16)]
Q1, Q3 = Capsule.of(Quadrant.Q1), Capsule.of(Quadrant.Q3)
ROWS = (Q1.weights, UNCONDITIONED)


@pytest.fixture(params=["tiny", "shipped", "shipped-fp32", "tiny-kv8", "tiny-kv8-gqa", "tiny-gqa", "tiny-int8",
                        "tiny-gqa-op"])
def engine(request, tiny_model, tiny_kv8_model, tiny_kv8_gqa_model, tiny_gqa_model, tiny_int8_model,
           tiny_gqa_op_model):
    """The shipped model is the CPU's (one row, guidance distilled) and the fp32 reference (two rows)."""
    return Engine({"tiny": tiny_model, "shipped": None, "shipped-fp32": default_model_path("fp32"),
                   "tiny-kv8": tiny_kv8_model, "tiny-kv8-gqa": tiny_kv8_gqa_model, "tiny-gqa": tiny_gqa_model,
                   "tiny-int8": tiny_int8_model, "tiny-gqa-op": tiny_gqa_op_model}[request.param])


def _bar_opened(engine: Engine) -> int:
    """Prime, condition (the rows of a guided Q1 bar, as the model runs them), feed a BAR; the context's length."""
    engine.prime(SEED)
    engine.cache.condition(engine.rows_for(engine.plan(Q1, DEFAULT_SAMPLING)))
    engine.cache.feed([engine.vocab.bar])
    return engine.cache.length


def _continuations(engine: Engine, lengths, seed: int = 0) -> list[list[int]]:
    """Grammar-valid bar bodies (after a BAR) of the given lengths, none closing the bar."""
    rng = np.random.default_rng(seed)
    vocab, out = engine.vocab, []
    for length in lengths:
        state = engine.decoder.state_after([])
        tokens = []
        while len(tokens) < length:
            allowed = np.flatnonzero(vocab.allowed(state))
            token = int(rng.choice(allowed[allowed != vocab.bar]))
            vocab.advance(state, token)
            tokens.append(token)
        out.append(tokens)
    return out


def test_side_by_side_gives_the_logits_of_one_by_one(engine):
    start = _bar_opened(engine)
    cache = engine.cache
    candidates = _continuations(engine, (12, 5, 9))
    fork = cache.fork(len(candidates), 16)
    together = [[fork.logits(i).copy()] for i in range(len(candidates))]
    for t in range(max(map(len, candidates))):
        live = [i for i, c in enumerate(candidates) if t < len(c)]  # the shorter ones have closed their bars
        fork.step(live, [candidates[i][t] for i in live])
        for i in live:
            together[i].append(fork.logits(i).copy())
    # An int8 cache is written as it is read: a token run again alone (the BAR, after a rewind) attends the
    # cache where it first attended the tokens of its prefill beside it in fp32, so its keys may differ; one
    # by one then continues from the BAR as the fork did, without running it again.
    again = not (cache.kv_dtype == np.int8 and cache.attention == "matmul")
    for i, tokens in enumerate(candidates):
        cache.rewind(start)
        if again:
            cache.prefill()  # the BAR again: its logits
        alone = [cache.logits.copy() if again else together[i][0]]
        for token in tokens:
            cache.feed([token])
            alone.append(cache.logits.copy())
        np.testing.assert_allclose(np.stack(together[i]), np.stack(alone), atol=1e-4)


def test_side_by_side_greedy_tokens_are_those_of_one_draw(engine):
    start = _bar_opened(engine)
    greedy = SamplingConfig(greedy=True, guidance=1.5)
    mixes = engine.cache.rows == 2  # two rows mix; a distilled model's one row carries the guidance itself
    fork = engine.decoder.draw(3, greedy, np.random.default_rng(0), guided=mixes)
    engine.cache.rewind(start)
    alone = engine.decoder.draw(1, greedy, np.random.default_rng(1), guided=mixes)
    assert fork.tokens[0] and fork.tokens == [alone.tokens[0]] * 3


def test_the_kept_candidate_holds_the_cache_of_its_bar_read_whole(engine):
    start = _bar_opened(engine)
    cache = engine.cache
    candidates = _continuations(engine, (6, 11, 8), seed=1)
    fork = cache.fork(len(candidates), 16)
    for t in range(max(map(len, candidates))):
        live = [i for i, c in enumerate(candidates) if t < len(c)]
        fork.step(live, [candidates[i][t] for i in live])
    assert fork.keep(1) == candidates[1]
    assert cache.context[start:] == tuple(candidates[1]) and cache.cached == cache.length
    if cache.kv_dtype == np.int8 and cache.attention == "matmul":
        # read whole, a run's tokens attend each other in fp32 (its own keys) where drawn they attended the int8
        # cache: the kept candidate's cache is that of its bar read one token at a time
        assert_cache_read_as_drawn(cache, start, [[token] for token in candidates[1]])
        return
    kept = [b[:, :, : cache.cached].copy() for b in cache.host_buffers()]
    logits = cache.logits.copy()
    cache.reset(cache.context)  # the same context read whole, in one run
    cache.prefill()
    for a, b in zip(kept, cache.host_buffers()):
        np.testing.assert_allclose(a, b[:, :, : cache.cached], atol=1e-4)
    np.testing.assert_allclose(logits, cache.logits, atol=1e-4)


def test_both_attentions_draw_the_same_bars(tiny_model, tiny_gqa_op_model):
    """The checkpoint written with the MatMul attention (the engine's own cache) and with GroupQueryAttention
    (the op's shared buffer): the same logits through the engine, and the same sampled bars, candidates and
    slides of the window included."""
    from affetto.manifest import read_manifest

    assert read_manifest(tiny_gqa_op_model)["kv_cache"]["op"] == "com.microsoft.GroupQueryAttention"
    engines = [Engine(tiny_model, window=96), Engine(tiny_gqa_op_model, window=96)]
    assert [e.cache.attention for e in engines] == ["matmul", "gqa"]
    starts = [_bar_opened(e) for e in engines]
    assert starts[0] == starts[1]
    np.testing.assert_allclose(engines[0].cache.logits, engines[1].cache.logits, atol=1e-4)
    cfg = SamplingConfig(candidates=3, guidance=1.5)
    bars = [[e.generate_bar_tokens(Q1 if k % 2 else Q3, cfg, rng)
             for k in range(6)] for e, rng in ((e, np.random.default_rng(5)) for e in engines)]
    assert bars[0] == bars[1] and sum(map(len, bars[0])) > 6
    assert engines[0].stats["slides"] == engines[1].stats["slides"] > 0


def test_the_matmul_cache_is_bound_at_the_used_length(tiny_model):
    """The MatMul attention reads its cache at the used length rounded up to BLOCK slots, whatever the model's
    positions: it grows with the context and a fork, shrinks again when the context does, and the logits
    after a shrink are those of the context read afresh."""
    from affetto.runtime.session import BLOCK, SHRINK

    engine = Engine(tiny_model)
    cache = engine.cache
    assert cache.attention == "matmul"
    cache.condition(ROWS)
    walk = engine.vocab.random_walk(3 * BLOCK + 5, np.random.default_rng(2))
    cache.reset(walk)
    cache.prefill()
    assert cache._kv.bound == 4 * BLOCK < engine.max_len  # 3 BLOCK + 5 used slots, rounded up
    fork = cache.fork(3, 2 * BLOCK)
    for _ in range(BLOCK):
        fork.step([0, 1, 2], [walk[-1]] * 3)
    assert cache._kv.bound >= 3 * BLOCK + 5 + 3 * BLOCK  # the candidates' slots too
    grown = cache._kv.bound
    cache.rewind(BLOCK // 2)  # a short context: the next run binds far fewer slots
    cache.prefill()
    assert cache._kv.bound < grown - SHRINK and cache._kv.bound <= BLOCK + SHRINK
    after_shrink = cache.logits.copy()
    cache.reset(walk[: BLOCK // 2])
    cache.prefill()
    np.testing.assert_allclose(after_shrink, cache.logits, atol=1e-5)


def test_candidates_on_the_tiny_model_match_pytorch(tiny_model, tiny_checkpoint):
    model, _ = load_checkpoint(tiny_checkpoint)
    engine = Engine(tiny_model)
    start = _bar_opened(engine)
    candidates = _continuations(engine, (7, 4), seed=2)
    fork = engine.cache.fork(2, 8)
    for t in range(7):
        live = [i for i, c in enumerate(candidates) if t < len(c)]
        fork.step(live, [candidates[i][t] for i in live])
    context = list(engine.cache.context[:start])
    for i, tokens in enumerate(candidates):
        with torch.no_grad():
            ref, _ = model(torch.tensor([context + tokens] * 2), torch.tensor(ROWS))
        np.testing.assert_allclose(fork.logits(i), ref[:, -1].numpy(), atol=1e-4)


def _bar_start(engine: Engine) -> int:
    return max(i for i, t in enumerate(engine.cache.context) if t == engine.vocab.bar)


def test_the_partial_bar_keeps_what_was_played(tiny_model):
    engine = Engine(tiny_model)
    engine.prime(SEED)
    rng = np.random.default_rng(5)
    dense = SamplingConfig(temperature=1.3, top_p=0.95, guidance=1.5)
    for _ in range(20):  # a bar with notes on both sides of beat 2
        engine.prime(SEED)
        bar = engine.generate_bar(Q1, dense, rng=rng)
        if any(n.onset < 2 for n in bar) and any(n.onset >= 2 for n in bar):
            break
    else:
        pytest.fail("no bar with notes before and after beat 2 in 20 draws")
    start = _bar_start(engine)
    before = engine.cache.context
    cut = next(i for i in range(start, len(before))
               if engine.vocab.name(before[i]).startswith("POS_") and int(engine.vocab.name(before[i])[4:]) >= 8)
    read = engine.stats["prefill_tokens"]
    again = engine.regenerate_from(2.0, Q3, dense, rng=rng)
    after = engine.cache.context
    assert after[:cut] == before[:cut]  # everything before beat 2, the header too, as played
    played = engine.vocab.decode(before[start:], engine.meter)  # as written (generate_bar also scales loudness)
    assert [n for n in again if n.onset < 2] == [n for n in played if n.onset < 2]
    engine.vocab.check(after[start:], engine.bar_steps)
    assert engine.stats["prefill_tokens"] <= read + 1  # only the last kept token ran again, for its logits
    assert engine.cache.cached == engine.cache.length
    length = engine.cache.length
    engine.generate_bar(Q3, dense, rng=rng)  # the next bar reads the context in the new capsule
    assert engine.stats["prefill_tokens"] >= read + length


def test_the_partial_bar_in_the_same_capsule_leaves_an_exact_cache(tiny_model, tiny_checkpoint):
    model, _ = load_checkpoint(tiny_checkpoint)
    engine = Engine(tiny_model)
    engine.prime(SEED)
    rng = np.random.default_rng(2)
    engine.generate_bar(Q1, SamplingConfig(guidance=1.5), rng=rng)
    notes = engine.regenerate_from(1.0, Q1, SamplingConfig(guidance=1.5), rng=rng)
    assert all(0 <= n.onset < engine.meter.beats_per_bar for n in notes)
    with torch.no_grad():
        ref, _ = model(torch.tensor([engine.cache.context] * 2), torch.tensor(ROWS))
    np.testing.assert_allclose(engine.cache.logits, ref[:, -1].numpy(), atol=1e-4)


def test_the_partial_bar_checks_its_beat(tiny_model):
    engine = Engine(tiny_model)
    engine.prime([])
    with pytest.raises(ConfigError, match="no bar to regenerate"):
        engine.regenerate_from(0.0, Q1)
    engine.generate_bar(Q1, rng=np.random.default_rng(0))
    for beat in (-0.5, 4.0):
        with pytest.raises(ConfigError, match="beat must be >= 0 and < 4"):
            engine.regenerate_from(beat, Q1)
