"""The rest of a bar generated again: the prefix is kept exactly, the bars after it are forgotten."""

import numpy as np
import pytest

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.music.notes import Note
from affetto.runtime.engine import Engine
from affetto.runtime.revise import cut_bar

pytestmark = pytest.mark.torch

SEED = [Note(60 + 4 * (i % 3), i * 0.5, 0.5, 80) for i in range(16)]


def test_the_bar_is_cut_at_its_first_position_from_the_step():
    # BAR POS0 p v d POS4 p v d POS8 p v d
    bar, pos0 = 2, 3
    tokens = [bar, pos0 + 0, 50, 60, 70, pos0 + 4, 50, 60, 70, pos0 + 8, 50, 60, 70]
    assert cut_bar(tokens, pos0, 32, bar, 4) == 5
    assert cut_bar(tokens, pos0, 32, bar, 5) == 9
    assert cut_bar(tokens, pos0, 32, bar, 9) == len(tokens)


def test_revising_keeps_what_was_played_and_forgets_the_bar_ahead(tiny_model):
    engine = Engine(tiny_model)
    engine.prime(SEED)
    rng = np.random.default_rng(0)
    for _ in range(2):
        engine.generate_bar(Capsule.of(Quadrant.Q1), rng=rng)
    context = list(engine.cache.context)
    bars = [i for i, t in enumerate(context) if t == engine.vocab.bar]
    engine.generate_bar(Capsule.of(Quadrant.Q1), rng=rng)  # the bar ahead, forgotten by the revision
    rest = engine.revise(2.0, Capsule.of(Quadrant.Q3), rng=rng, drop_bars=1)
    assert all(2.0 <= n.onset < 4.0 for n in rest)
    revised = list(engine.cache.context)
    cut = bars[-1] + cut_bar(context[bars[-1]:], engine.vocab.pos0, engine.vocab.config.max_bar_steps,
                             engine.vocab.bar, 8)
    assert revised[:cut] == context[:cut]  # the bar up to beat 3 exactly as played, and all before it
    assert revised.count(engine.vocab.bar) == len(bars)  # the bar ahead is gone
    after = engine.vocab.decode(revised[bars[-1]:], engine.meter)
    assert [(n.pitch, n.onset) for n in after if n.onset >= 2.0] == [(n.pitch, n.onset) for n in rest]
    # the cache holds what the context says: the same logits as the context read afresh
    logits = engine.cache.logits.copy()
    engine.cache.reset(revised)
    engine.cache.prefill()
    np.testing.assert_allclose(engine.cache.logits, logits, atol=1e-4)
    engine.generate_bar(Capsule.of(Quadrant.Q3), rng=rng)
    assert list(engine.cache.context)[: len(revised)] == revised


def test_revising_more_bars_than_there_are_is_refused(tiny_model):
    engine = Engine(tiny_model)
    engine.prime([])
    with pytest.raises(ValueError, match="cannot drop"):
        engine.revise(1.0, Capsule.of(Quadrant.Q3), drop_bars=3)
