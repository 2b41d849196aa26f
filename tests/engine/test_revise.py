"""The rest of a bar generated again: the prefix is kept exactly, the bars after it are forgotten."""

import numpy as np
import pytest

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.errors import ConfigError
from affetto.music.notes import Note
from affetto.runtime.engine import Engine

pytestmark = pytest.mark.torch

SEED = [Note(60 + 4 * (i % 3), i * 0.5, 0.5, 80) for i in range(16)]


def test_revising_keeps_what_was_played_and_forgets_the_bar_ahead(tiny_model):
    engine = Engine(tiny_model, follow_mode=False)  # the context stays as played (no move to the parallel mode)
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
    vocab = engine.vocab
    cut = next((i for i in range(bars[-1] + 1, len(context))
                if vocab.pos0 <= context[i] < vocab.pitch0 and context[i] - vocab.pos0 >= 8), len(context))
    assert revised[:cut] == context[:cut]  # the bar up to beat 3 exactly as played, and all before it
    assert revised.count(engine.vocab.bar) == len(bars)  # the bar ahead is gone
    after = engine.vocab.decode(revised[bars[-1]:], engine.meter)
    assert [(n.pitch, n.onset) for n in after if n.onset >= 2.0] == [(n.pitch, n.onset) for n in rest]
    engine.generate_bar(Capsule.of(Quadrant.Q3), rng=rng)
    now = list(engine.cache.context)  # the next bar follows the revised one (the window may have slid)
    last_bar = len(now) - 1 - now[::-1].index(engine.vocab.bar)
    revised_bar = revised[bars[-1]:]
    assert now[last_bar - len(revised_bar) : last_bar] == revised_bar


def test_a_revision_opens_on_its_beat_so_the_turn_is_heard_there(tiny_model):
    for opens in (True, False):
        starts = []
        for seed in range(6):
            engine = Engine(tiny_model, follow_mode=False)
            engine.prime(SEED)
            rng = np.random.default_rng(seed)
            engine.generate_bar(Capsule.of(Quadrant.Q1), rng=rng)
            rest = engine.regenerate_from(2.5, Capsule.of(Quadrant.Q3), rng=rng, opens=opens)
            new = [n.onset for n in rest if n.onset >= 2.5]
            starts.append(min(new) if new else None)
        if opens:
            assert starts == [2.5] * 6, starts
        else:
            assert all(s is None or s >= 2.5 for s in starts), starts


def test_revising_more_bars_than_there_are_is_refused(tiny_model):
    engine = Engine(tiny_model)
    engine.prime([])
    with pytest.raises(ConfigError, match="cannot drop"):
        engine.revise(1.0, Capsule.of(Quadrant.Q3), drop_bars=3)
