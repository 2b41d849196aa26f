"""A knob turn heard within a beat: the rest of a bar already played in part, generated again.

The daemon works a bar ahead, so a turn of the knob would be heard a bar or
two later. Instead, when the knob moves by more than a step, the bar that is
sounding is revised from its next beat: the bars generated after it are
dropped from the context, the bar is cut at that beat (its notes before it
stay in the context as they were played), and the model continues the bar's
prefix under the new capsule. One candidate is drawn: the revision must be
back within a beat.
"""

from __future__ import annotations

import numpy as np

from affetto.music.notes import Note
from affetto.runtime.plan import EmotionPlan
from affetto.runtime.sampling import guide, sample
from affetto.tokens.grammar import apply_header
from affetto.tokens.vocab import DUR


def cut_bar(tokens: list[int], pos0: int, n_pos: int, bar: int, from_step: int) -> int:
    """The index in ``tokens`` (one bar, BAR first) where the positions at or after ``from_step`` begin."""
    for i, t in enumerate(tokens):
        if i > 0 and t == bar:
            return i
        if pos0 <= t < pos0 + n_pos and t - pos0 >= from_step:
            return i
    return len(tokens)


def regenerate_from(engine, from_step: int, plan: EmotionPlan, rng: np.random.Generator, *,
                    drop_bars: int = 0) -> list[Note]:
    """The notes of the engine's last bar from grid step ``from_step`` on, generated again under ``plan``.

    ``drop_bars`` bars generated after that bar are dropped from the context
    first. Onsets are relative to the bar; the bar's notes before
    ``from_step`` stay in the context as they were.
    """
    vocab, cache = engine.vocab, engine.cache
    context = list(cache.context)
    bars = [i for i, t in enumerate(context) if t == vocab.bar]
    if len(bars) <= drop_bars:
        raise ValueError(f"cannot drop {drop_bars} bars of a context with {len(bars)}")
    if drop_bars:
        context = context[: bars[-drop_bars]]
        bars = bars[:-drop_bars]
        engine.bars_since_prime = max(0, engine.bars_since_prime - drop_bars)
    start = bars[-1]
    cut = start + cut_bar(context[start:], vocab.pos0, vocab.config.max_bar_steps, vocab.bar, from_step)
    prefix = context[:cut]
    if cache.condition(plan.rows) or cache.cached < len(prefix):
        cache.reset(prefix)  # the context is read again under the new capsule
        cache.prefill()
    else:
        cache.rewind(len(prefix) - 1)
        cache.step(prefix[-1])
    state = vocab.new_state(engine.bar_steps)
    state.last = DUR
    for t in prefix[start:]:
        vocab.advance(state, t)
    header = engine.header_for(plan)
    mask = np.empty(vocab.size, dtype=bool)
    scores = np.empty(vocab.size, dtype=np.float32)
    body = list(prefix[start:])
    while True:
        vocab.allowed(state, mask)
        if header:
            apply_header(vocab, state, mask, header)
        if state.notes_in_bar >= engine.max_notes_per_bar:
            mask[vocab.pos0 : vocab.vel0] = False  # no new notes: finish this one, then close the bar
        logits = cache.logits
        if cache.batch == 2:
            guide(logits[0], logits[1], plan.sampling.guidance, scores)
        else:
            np.copyto(scores, logits[0])
        token = sample(scores, mask, plan.sampling, rng)
        if token == vocab.bar:
            break
        vocab.advance(state, token)
        cache.step(token)
        body.append(token)
    engine.stats["revisions"] = engine.stats.get("revisions", 0) + 1
    step_beats = from_step / vocab.config.steps_per_beat
    return plan.perform([n for n in vocab.decode(body, engine.meter) if n.onset >= step_beats - 1e-9])
