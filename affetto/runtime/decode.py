"""The decode loop: bars sampled under the grammar mask, several candidates side by side.

After the bar's BAR has been fed, tokens are drawn one by one among those the
vocabulary's grammar allows next, until the model closes the bar (samples
BAR, which is not fed: the next bar opens with it). A bar holds at most
``max_notes`` notes; past that only the open note may be finished.

Candidates are drawn together: each keeps its own grammar state, and every
step feeds one token per candidate still drawing, in one run of the model
(:class:`~affetto.runtime.session.Fork`). A candidate that has closed its bar
stops; the others go on. The step's guidance, masks and draws run over all its
candidates at once (:func:`~affetto.runtime.sampling.sample_rows`); only the
grammar's state machine walks them one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from affetto.runtime.sampling import SamplingConfig, guide, sample_rows
from affetto.runtime.session import CachedSession, Fork
from affetto.tokens.grammar import GrammarState, apply_header
from affetto.tokens.vocab import DUR, Vocabulary


class BarDecoder:
    """Samples bars from a :class:`CachedSession` whose context ends with a fed BAR."""

    def __init__(self, cache: CachedSession, vocab: Vocabulary, bar_steps: int, max_notes: int) -> None:
        self.cache = cache
        self.vocab = vocab
        self.bar_steps = bar_steps
        self.max_notes = max_notes
        self.room = 1 + len(vocab.header) + bar_steps + 3 * max_notes  # the most tokens a bar can take, BAR too
        self._masks = np.empty((0, vocab.size), dtype=bool)  # (candidates, vocab): a step's grammar masks
        self._scores = np.empty((0, vocab.size), dtype=np.float32)  # (candidates, vocab): its guided logits

    def state_after(self, prefix: Sequence[int]) -> GrammarState:
        """The grammar state after a bar's BAR and ``prefix`` (tokens of that bar that follow it)."""
        vocab = self.vocab
        state = vocab.new_state(self.bar_steps)
        state.last = DUR  # what precedes a bar: the previous bar's end
        vocab.advance(state, vocab.bar)
        for token in prefix:
            vocab.advance(state, token)
        return state

    def forced(self, header: dict[int, np.ndarray] | None = None) -> list[int]:
        """The tokens that must follow a bar's BAR: while the grammar and ``header`` leave one token, that one.

        A fresh bar's header is often wholly planned (meter, key, density, polyphony): those tokens
        have no draw to make, so the engine feeds them with the BAR in one run, and the candidates
        branch after them (:meth:`draw` with them as its ``prefix``).
        """
        vocab = self.vocab
        state = self.state_after(())
        mask = np.empty(vocab.size, dtype=bool)
        out: list[int] = []
        while len(out) < self.room - 1:
            vocab.allowed(state, mask)
            if header:
                apply_header(vocab, state, mask, header)
            allowed = np.flatnonzero(mask)
            if len(allowed) != 1 or allowed[0] == vocab.bar:
                break
            token = int(allowed[0])
            vocab.advance(state, token)
            out.append(token)
        return out

    def draw(self, n: int, config: SamplingConfig, rng: np.random.Generator, *, guided: bool,
             header: dict[int, np.ndarray] | None = None, prefix: Sequence[int] = (),
             first_step: int = 0, opens: bool = False) -> Fork:
        """``n`` candidate continuations of the bar, each fed to the cache as it is drawn.

        The context ends with the bar's BAR and ``prefix`` (the bar's tokens
        kept); the candidates' tokens are in the returned fork's ``tokens``,
        and its ``keep`` makes one of them the context. ``guided`` mixes the
        two rows' logits by ``config.guidance``; ``header`` narrows the bar's
        header tokens (see :func:`affetto.tokens.grammar.plan_header`);
        ``first_step`` forbids positions before that grid step; with
        ``opens`` the continuation's first note starts on that step itself
        (where the grammar allows a note there), so what changes is heard
        from there on.
        """
        vocab = self.vocab
        fork = self.cache.fork(n, self.room - 1 - len(prefix))  # room after the BAR and the prefix
        base = self.state_after(prefix)
        states = [replace(base) for _ in range(n)]
        live = list(range(n))
        if len(self._masks) < n:
            self._masks = np.empty((n, vocab.size), dtype=bool)
            self._scores = np.empty((n, vocab.size), dtype=np.float32)
        while live:
            k = len(live)
            masks, scores = self._masks[:k], self._scores[:k]  # (k, V): row j is candidate live[j]
            for mask, i in zip(masks, live):
                state = states[i]
                vocab.allowed(state, mask)
                if header:
                    apply_header(vocab, state, mask, header)
                if state.pos < first_step:  # nothing may start before it: no earlier position, no chord there
                    mask[vocab.pos0 : vocab.pos0 + first_step] = False
                    if state.last == DUR:
                        mask[vocab.pitch0 : vocab.vel0] = False
                    if opens and mask[vocab.pos0 + first_step]:  # the first new note on the step itself
                        mask[:] = False
                        mask[vocab.pos0 + first_step] = True
                if state.notes_in_bar >= self.max_notes:
                    mask[vocab.pos0 : vocab.vel0] = False  # no new notes: finish this one, then close the bar
            last = fork.last[:k] if live[-1] == k - 1 else fork.last[live]  # (k, R, V)
            if guided:  # the conditioned row and the unconditioned one
                guide(last[:, 0], last[:, 1], config.guidance, scores)
            else:
                np.copyto(scores, last[:, 0])
            drawing, tokens = [], []
            for i, token in zip(live, sample_rows(scores, masks, config, rng).tolist()):
                if token == vocab.bar:
                    continue
                vocab.advance(states[i], token)
                drawing.append(i)
                tokens.append(token)
            if drawing:
                fork.step(drawing, tokens)
            live = drawing
        return fork
