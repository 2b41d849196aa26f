"""The grammar: which token may follow which, and what the next bar's header may say.

The engine masks every sampling step with :meth:`Grammar.allowed`, so every generated bar
decodes to notes that fit inside it; :func:`plan_header` narrows the header tokens
(meter, key, density, polyphony) to what the engine asks for.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from affetto.analysis.attributes import N_KEYS, UNCLEAR_KEY
from affetto.errors import VocabularyError
from affetto.music.notes import TimeSignature
from affetto.tokens.layout import BAR, BOS, DENS, DUR, KEY, METER, PAD, PITCH, POLY, POS, TYPE_NAMES, VocabLayout


@dataclass
class GrammarState:
    """Where a token stream is: last token type, position and pitch in the bar."""

    bar_steps: int
    last: int = BOS
    pos: int = -1  # current position step, -1 before the first POS of a bar
    pitch: int = -1  # last pitch index at this position, -1 before the first
    bars: int = 0  # BAR tokens seen
    notes_in_bar: int = 0
    key: int = -1  # the bar's key class (its KEY token), -1 before it
    first_pos: int = -1  # the bar's first onset (step), -1 before it


class Grammar(VocabLayout):
    """The grammar's state machine over a vocabulary's ids."""

    def new_state(self, bar_steps: int) -> GrammarState:
        if not 1 <= bar_steps <= self.config.max_bar_steps:
            raise VocabularyError(
                f"a bar of {bar_steps} steps does not fit this vocabulary (max {self.config.max_bar_steps})"
            )
        return GrammarState(bar_steps=bar_steps)

    def advance(self, state: GrammarState, token: int) -> None:
        """Move the grammar state past ``token`` (which must be allowed)."""
        t = int(self.types[token])
        if t == BAR:
            state.pos = -1
            state.pitch = -1
            state.bars += 1
            state.notes_in_bar = 0
            state.key = state.first_pos = -1
        elif t == KEY:
            state.key = token - self.key0
        elif t == POS:
            state.pos = token - self.pos0
            state.pitch = -1
            if state.first_pos < 0:
                state.first_pos = state.pos
        elif t == METER:
            state.bar_steps = self.steps_of_meter(token)
        elif t == PITCH:
            state.pitch = token - self.pitch0
            state.notes_in_bar += 1
        state.last = t

    def allowed(self, state: GrammarState, out: np.ndarray | None = None) -> np.ndarray:
        """Boolean mask of tokens allowed after ``state`` (written into ``out``)."""
        if out is None:
            out = np.empty(self.size, dtype=bool)
        np.copyto(out, self.follow_masks[state.last])
        last = state.last
        if last in (self.opens, DUR):
            # Positions strictly after the current one and inside the bar.
            lo = self.pos0 + state.pos + 1
            out[self.pos0 : lo] = False
            out[self.pos0 + state.bar_steps : self.pitch0] = False
        if last == DUR:
            # Another pitch at the same position must be higher.
            out[self.pitch0 : self.pitch0 + state.pitch + 1] = False
            if state.pitch >= self.n_pitches - 1:
                out[self.pitch0 : self.vel0] = False
        return out

    def random_walk(self, length: int, rng: np.random.Generator, bar_steps: int = 16) -> list[int]:
        """``length`` tokens (BOS first) drawn uniformly among those the grammar allows.

        Valid streams with no musical sense: inputs for parity checks and benchmarks.
        """
        state = self.new_state(bar_steps)
        tokens = [self.bos]
        mask = np.empty(self.size, dtype=bool)
        while len(tokens) < length:
            token = int(rng.choice(np.flatnonzero(self.allowed(state, mask))))
            tokens.append(token)
            self.advance(state, token)
        return tokens

    def check(self, tokens: Sequence[int], bar_steps: int) -> None:
        """Raise :class:`VocabularyError` at the first token the grammar forbids."""
        state = GrammarState(bar_steps=bar_steps)
        state.last = PAD
        mask = np.empty(self.size, dtype=bool)
        for i, tok in enumerate(tokens):
            tok = int(tok)
            if not 0 <= tok < self.size:
                raise VocabularyError(f"token {tok} at index {i} is outside the vocabulary")
            if i == 0:
                if tok not in (self.bos, self.bar):
                    raise VocabularyError(f"a stream must start with BOS or BAR, got {self.name(tok)}")
            else:
                self.allowed(state, mask)
                if not mask[tok]:
                    raise VocabularyError(
                        f"{self.name(tok)} may not follow {TYPE_NAMES[state.last]} at index {i}"
                    )
            self.advance(state, tok)


# ---- run time: which header tokens the engine allows ----------------------------------------


def plan_header(
    vocab: VocabLayout,
    context: Sequence[int],
    meter: TimeSignature,
    minor: bool | None,
    *,
    density: int | None = None,
    polyphony: int | None = None,
    anchor: bool = False,
    leading: bool = False,
) -> dict[int, np.ndarray]:
    """Masks over the vocabulary for the header tokens of the next bar, by token type.

    - METER: the meter the engine plays in.
    - KEY: with ``minor`` True or False, that mode (the emotion plan asks it
      from the valence), on the tonic of the context's latest KEY token when
      that key is clear; else the model picks among the keys of that mode.
      With None the model keeps or changes the key as it likes.
    - DENS, POLY: a given bin; None lets the model choose (it follows the
      context's bars and the capsule).
    - With ``anchor``, the bar's first onset on the key's tonic triad; with ``leading`` and a minor
      key asked, no pitch on the subtonic anywhere in the bar (the seventh degree is the leading tone).

    A type with no entry is left to the grammar alone.
    """
    plan: dict[int, np.ndarray] = {}

    def only(tokens: Sequence[int]) -> np.ndarray:
        mask = np.zeros(vocab.size, dtype=bool)
        mask[list(tokens)] = True
        return mask

    if vocab.meters:
        plan[METER] = only([vocab.meter(meter)])
    if not vocab.n_keys:
        return plan
    if minor is not None:
        last = next((t for t in reversed(context) if vocab.key0 <= t < vocab.key0 + N_KEYS), None)
        tonic = None if last is None or last - vocab.key0 == UNCLEAR_KEY else (last - vocab.key0) % 12
        base = vocab.key0 + (12 if minor else 0)
        plan[KEY] = only([base + tonic] if tonic is not None else range(base, base + 12))
        if anchor:
            plan[PITCH] = tonic_triad_masks(vocab)
        if minor and leading:
            plan[LEADING] = leading_tone_masks(vocab)
    if density is not None:
        if not 0 <= density < vocab.n_density:
            raise ValueError(f"density must be in range 0..{vocab.n_density - 1}, got {density}")
        plan[DENS] = only([vocab.density(density)])
    if polyphony is not None:
        if not 0 <= polyphony < vocab.n_polyphony:
            raise ValueError(f"polyphony must be in range 0..{vocab.n_polyphony - 1}, got {polyphony}")
        plan[POLY] = only([vocab.polyphony(polyphony)])
    return plan


def apply_header(vocab: VocabLayout, state: GrammarState, mask: np.ndarray, plan: dict[int, np.ndarray]) -> None:
    """Narrow ``mask`` in place when the next token is a planned header token."""
    allowed = plan.get(vocab.header_after.get(state.last, -1))
    if allowed is not None:
        np.logical_and(mask, allowed, out=mask)
    if state.last not in (POS, DUR) or not 0 <= state.key < N_KEYS:
        return  # the pitch masks below touch pitches only, and a pitch comes only after POS or DUR
    leading = plan.get(LEADING)
    if leading is not None:
        np.logical_and(mask, leading[state.key], out=mask)
    pitches = plan.get(PITCH)
    if pitches is not None and state.pos == state.first_pos >= 0:
        np.logical_and(mask, pitches[state.key], out=mask)


LEADING = -2  # a plan entry (not a token type): in a minor key, pitches on the subtonic give way


@functools.lru_cache(maxsize=8)
def leading_tone_masks(vocab: VocabLayout) -> np.ndarray:
    """(key classes, vocabulary) masks: in each minor key the subtonic (a whole tone under the tonic) is
    not allowed, so the seventh degree that sounds is the leading tone; every other token is."""
    return _pitch_class_masks(vocab, range(12, 24), lambda tonic, _third: [(tonic + 10) % 12], allow=False)


@functools.lru_cache(maxsize=8)
def tonic_triad_masks(vocab: VocabLayout) -> np.ndarray:
    """(key classes, vocabulary) masks: every token allowed but pitches outside the key's tonic triad.

    Made once per vocabulary, read-only (the decode loop only reads it); the unclear key allows all.
    """
    return _pitch_class_masks(vocab, range(24), lambda tonic, third: [tonic, (tonic + third) % 12, (tonic + 7) % 12])


def _pitch_class_masks(vocab: VocabLayout, keys: Iterable[int], classes: Callable[[int, int], list[int]], *,
                       allow: bool = True) -> np.ndarray:
    """(key classes, vocabulary) read-only masks, all True but for the pitches of each key in ``keys``:
    those whose pitch class is in ``classes(tonic, third)`` (``allow``) or is not (not ``allow``)."""
    masks = np.ones((N_KEYS, vocab.size), dtype=bool)
    pcs = (np.arange(vocab.n_pitches) + vocab.config.pitch_min) % 12
    for key in keys:
        listed = np.isin(pcs, classes(key % 12, 3 if key >= 12 else 4))
        masks[key, vocab.pitch0 : vocab.pitch0 + vocab.n_pitches] = listed if allow else ~listed
    masks.flags.writeable = False
    return masks
