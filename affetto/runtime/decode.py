"""The decode loop: one bar's tokens, sampled under the grammar mask.

After the bar's BAR has been fed, tokens are drawn one by one among those the
vocabulary's grammar allows next, until the model closes the bar (samples
BAR, which is not fed: the next bar opens with it). A bar holds at most
``max_notes`` notes; past that only the open note may be finished.
"""

from __future__ import annotations

import numpy as np

from affetto.runtime.sampling import SamplingConfig, guide, sample
from affetto.runtime.session import CachedSession
from affetto.tokens.grammar import apply_header
from affetto.tokens.vocab import DUR, Vocabulary


class BarDecoder:
    """Samples bars from a :class:`CachedSession` whose context ends with a fed BAR."""

    def __init__(self, cache: CachedSession, vocab: Vocabulary, bar_steps: int, max_notes: int) -> None:
        self.cache = cache
        self.vocab = vocab
        self.bar_steps = bar_steps
        self.max_notes = max_notes
        self._mask = np.empty(vocab.size, dtype=bool)
        self._guided = np.empty(vocab.size, dtype=np.float32)

    def sample_bar(self, config: SamplingConfig, rng: np.random.Generator,
                   header: dict[int, np.ndarray] | None = None) -> list[int]:
        """The bar's tokens after its BAR, each fed to the cache as it is drawn.

        ``header`` narrows the bar's header tokens (meter, key, density, ...) by
        type; see :func:`affetto.tokens.grammar.plan_header`.
        """
        vocab, cache = self.vocab, self.cache
        state = vocab.new_state(self.bar_steps)
        state.last = DUR  # what precedes a bar: the previous bar's end
        vocab.advance(state, vocab.bar)
        body: list[int] = []
        mask, guided = self._mask, self._guided
        while True:
            vocab.allowed(state, mask)
            if header:
                apply_header(vocab, state, mask, header)
            if state.notes_in_bar >= self.max_notes:
                mask[vocab.pos0 : vocab.vel0] = False  # no new notes: finish this one, then close the bar
            logits = cache.logits
            if cache.batch == 2:  # guidance: the conditioned row and the unconditioned one
                scores = guide(logits[0], logits[1], config.guidance, guided)
            else:
                np.copyto(guided, logits[0])
                scores = guided
            token = sample(scores, mask, config, rng)
            if token == vocab.bar:
                return body
            vocab.advance(state, token)
            cache.step(token)
            body.append(token)
