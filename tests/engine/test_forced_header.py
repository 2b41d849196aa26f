"""A bar's planned header: fed with its BAR in one run, the candidates branching after it."""

import numpy as np
import pytest
from tiny_things import assert_cache_read_as_drawn

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.music.notes import Note
from affetto.runtime.assets import default_model_path
from affetto.runtime.engine import Engine
from affetto.runtime.sampling import SamplingConfig
from affetto.runtime.session import CachedSession, cache_shape

SEED = [Note(60 + (i * 5) % 12, i * 0.5, 0.5, 90) for i in range(16)]


@pytest.mark.parametrize("precision", ["int8", "fp32"])  # the CPU's file (its cache int8) and the fp32 reference
def test_the_planned_header_opens_every_candidate_and_the_cache_holds_it_exactly(precision):
    engine = Engine(default_model_path(precision))  # the shipped model: its bars open with meter, key, density, poly
    engine.prime(SEED)
    rng = np.random.default_rng(0)
    config = SamplingConfig(guidance=1.5, candidates=3, top_p=0.95)
    for quadrant in (Quadrant.Q1, Quadrant.Q3):
        plan = engine.plan(Capsule.of(quadrant), config)
        engine.generate_plan_tokens(plan, rng)  # the context read in this capsule (and moved to its mode)
        plan = engine.plan(Capsule.of(quadrant), config)
        forced = engine.decoder.forced(engine.header_for(plan))
        runs, before = engine.stats["prefills"], engine.cache.context
        bar = engine.generate_plan_tokens(plan, rng)
        assert len(forced) >= 3  # the shipped vocabulary's header, all planned
        assert bar[0] == engine.vocab.bar and bar[1 : 1 + len(forced)] == forced
        assert engine.stats["prefills"] - runs == 1  # BAR and the header in one run, nothing else prefilled
        assert engine.cache.context == before + tuple(bar)  # no slide: the bar follows the context
        if engine.cache.kv_dtype == np.int8 and engine.cache.attention == "matmul":
            # the bar read again as the engine read it: its BAR and header in one run, then one token a run
            assert_cache_read_as_drawn(engine.cache, len(before), [bar[: 1 + len(forced)]]
                                       + [[token] for token in bar[1 + len(forced) :]])
            continue
        # the kept candidate's cache is the context's: as a fresh session reads it at once
        fresh = CachedSession(engine.session, **cache_shape(engine.manifest["model"]), max_len=engine.max_len,
                              vocab_size=engine.vocab.size, bos=engine.vocab.bos)
        fresh.condition(engine.rows_for(plan))
        fresh.reset(engine.cache.context)
        fresh.prefill()
        np.testing.assert_allclose(engine.cache.logits, fresh.logits, atol=1e-4)


def test_nothing_is_forced_where_the_model_chooses():
    engine = Engine()
    engine.prime(SEED)
    assert engine.decoder.forced({}) == engine.decoder.forced(None)
    free = engine.decoder.forced(None)  # no plan: only what the grammar itself leaves no choice for
    planned = engine.decoder.forced(engine.header_for(engine.plan(Capsule.of(Quadrant.Q1))))
    assert len(free) < len(planned)
