"""Policies around the decode loop: best-of-N candidates, mode following, the latest bars.

Candidates: with ``candidates > 1`` several bars are drawn side by side
from the same state (one run of the model per step feeds a token to every
candidate still drawing, all reading the one cache of the context), each is
judged by the feature judge together with the bars before it, and the bar
nearest the capsule's valence and arousal is kept: its keys are already in
the cache, so nothing is read again.

Mode following: a 2 M-parameter model follows the phrase it continues far
more than the capsule's valence (measured: the key of the context decides the
mode of the continuation). So when the mode the emotion plan asks disagrees with the
mode of the context (a clear major key asked to be sad, or the reverse), the
context is moved to its parallel mode (same tonic, third, sixth and seventh
moved a semitone, as training's augmentation does) before the model reads
it: the continuation then starts from a minor version of what was played.

The latest whole bars within a budget (:func:`bars_within`) are what a seed
and a slide of the context window (:mod:`affetto.runtime.window`) keep.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from affetto.analysis.attributes import N_KEYS, UNCLEAR_KEY, heard_key
from affetto.analysis.emotion import Capsule
from affetto.analysis.judge import (
    JudgeConfig,
    change_mode,
    judge_arrays,
    key_correlations,
    pitch_class_histogram,
)
from affetto.music.notes import Note, TimeSignature, sort_notes
from affetto.tokens.vocab import Vocabulary

MODE_CLARITY = 0.65  # key correlation above which the context's mode counts as clear (training uses the same)
JUDGED_BARS = 4  # a candidate bar is judged with the bars before it, this many in all (the eval judges 4)


def recent_bars(context: Sequence[int], bar: int, n: int) -> list[int]:
    """The tokens of the last ``n`` whole bars of ``context`` (``bar`` is the BAR token)."""
    starts = [i for i, t in enumerate(context) if t == bar]
    return list(context[starts[max(0, len(starts) - n)]:]) if n > 0 and starts else []


class CandidateJudge:
    """Scores bars by how near the feature judge puts them to a capsule's valence and arousal.

    With ``key_aware`` (the default), a bar whose header names a clear key (the
    emotion plan's mode on the context's tonic) is judged on that key: its
    valence is how far the asked key stands above every key of the other mode
    (``tanh(gain * (r(asked) - max r(other mode)))``, the sign the mode gives),
    so a sad bar must make *its* minor key heard, not its relative major nor a
    minor key elsewhere. A bar with no clear key in its header is judged as the
    feature judge judges any phrase (best major against best minor).
    """

    def __init__(self, vocab: Vocabulary, meter: TimeSignature, judge_config: JudgeConfig, tempo: float,
                 *, key_aware: bool = True) -> None:
        self.vocab, self.meter = vocab, meter
        self.judge_config, self.tempo = judge_config, tempo
        self.key_aware = key_aware

    def asked_key(self, tokens: list[int]) -> int | None:
        """The key class (0..11 major, 12..23 minor) of the last KEY token in ``tokens``; None when unclear or none."""
        return _clear(self._last_key(tokens))

    def _last_key(self, tokens: list[int]) -> int | None:
        """The class of the last KEY token in ``tokens`` (unclear included); None when there is none."""
        v = self.vocab
        if not v.n_keys:
            return None
        return next((t - v.key0 for t in reversed(tokens) if v.key0 <= t < v.key0 + N_KEYS), None)

    def score(self, tokens: list[int], valence: float, arousal: float) -> float:
        """Agreement of ``tokens`` (whole bars) with a valence and arousal in [-1, 1]; -inf for no notes."""
        return self._score(self.vocab.decode(tokens, self.meter), tokens.count(self.vocab.bar),
                           self.asked_key(tokens), valence, arousal)

    def scorer(self, prefix: list[int], valence: float, arousal: float) -> Callable[[list[int]], float]:
        """``tokens -> score(prefix + tokens, valence, arousal)``, the same figures, with the bars of ``prefix``
        before its last BAR decoded once (a bar's candidates share them: the bars before theirs), and its count
        of bars and last KEY found once."""
        bar = self.vocab.bar
        cut = len(prefix) - 1 - prefix[::-1].index(bar) if bar in prefix else 0
        before, at = self.vocab.decode_from(prefix[:cut], self.meter) if cut else ([], None)
        current, bars, key = prefix[cut:], prefix.count(bar), self._last_key(prefix)

        def score(tokens: list[int]) -> float:
            notes = sort_notes(before + self.vocab.decode_from(current + tokens, self.meter, at=at)[0])
            last = self._last_key(tokens)
            return self._score(notes, bars + tokens.count(bar), _clear(key if last is None else last), valence,
                               arousal)

        return score

    def _score(self, notes: list[Note], n_bars: int, key: int | None, valence: float, arousal: float) -> float:
        """The score of ``notes`` over ``n_bars`` bars whose header asked ``key`` (None: no clear key)."""
        if not notes:
            return -np.inf
        pitch, duration = np.array([n.pitch for n in notes]), np.array([n.duration for n in notes])
        verdict = judge_arrays(pitch, np.array([n.onset for n in notes]), duration,
                               np.array([n.velocity for n in notes]), n_bars * self.meter.beats_per_bar, self.tempo,
                               self.judge_config)
        heard = verdict.valence
        if self.key_aware and key is not None:
            major, minor = key_correlations(pitch_class_histogram(pitch, duration, self.judge_config.max_duration))
            tonic = key % 12
            margin = float(major.max() - minor[tonic]) if key >= 12 else float(major[tonic] - minor.max())
            heard = math.tanh(self.judge_config.valence_gain * margin)
        return heard * valence + verdict.arousal * arousal


def _clear(key: int | None) -> int | None:
    """``key`` (a KEY token's class), or None when it is the unclear one."""
    return None if key is None or key == UNCLEAR_KEY else int(key)


def best_of(bars: Sequence[list[int]], score: Callable[[list[int]], float]) -> int:
    """The index of the best scored of ``bars`` (the first among equals; the first when none scores)."""
    best, best_score = 0, -np.inf
    for i, body in enumerate(bars):
        value = score(body)
        if value > best_score:
            best, best_score = i, value
    return best


class ModeFollower:
    """Moves a context to its parallel mode when its clear mode disagrees with the mode asked.

    Checked once per capsule (a new capsule, or :meth:`reset` after priming);
    the emotion plan (:mod:`affetto.runtime.plan`) says which mode is asked.
    """

    def __init__(self, vocab: Vocabulary, meter: TimeSignature, bar_steps: int, enabled: bool = True) -> None:
        self.vocab, self.meter, self.bar_steps = vocab, meter, bar_steps
        self.enabled = enabled
        self._for: tuple | None = None  # capsule weights the context's mode was last matched to

    def reset(self) -> None:
        self._for = None

    def moved(self, context: Sequence[int], capsule: Capsule, minor: bool | None) -> tuple[list[int], str] | None:
        """The context moved to its parallel mode (and the key it was in), or None to leave it.

        ``minor`` is the mode the plan asks for ``capsule`` (None: either).
        """
        if not self.enabled or capsule.weights == self._for:
            return None
        self._for = capsule.weights
        if minor is None:
            return None
        vocab = self.vocab
        body = list(context[1:])
        n_bars = sum(1 for t in body if t == vocab.bar)
        if n_bars == 0:
            return None
        steps = vocab.notes_to_steps(vocab.decode(body, self.meter))
        if len(steps) < 4:
            return None
        tonic, mode, clarity = heard_key(steps, vocab.config.steps_per_beat)
        if clarity < MODE_CLARITY or (mode == "minor") == minor:
            return None
        moved = change_mode(steps, tonic, mode)
        key = tonic + (12 if minor else 0) if vocab.header else None  # the parallel mode of the key heard
        body = vocab.encode_steps(moved, self.bar_steps, n_bars=n_bars, meter=self.meter, key=key).tolist()
        return [vocab.bos, *body], f"{tonic} {mode}"


def bars_within(context: Sequence[int], bar: int, budget: int) -> list[int]:
    """The latest whole bars of ``context`` (from a ``bar`` token on) that fit in ``budget`` - 1 tokens
    (one is left for the BOS before them); empty when not even the last bar fits."""
    keep = next((i for i, t in enumerate(context) if t == bar and len(context) - i <= budget - 1), len(context))
    return list(context[keep:])
