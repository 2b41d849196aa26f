"""The sliding window, read ahead: the context the next slide keeps is read a chunk per bar.

When the context fills its window, it slides at a bar line to its latest
whole bars in half the window (:meth:`ReadAhead.slid`), and every kept token must be read
again (positions are absolute: each key changes). Read at once, that costs
the slide's bar a prefill of half the window. :class:`ReadAhead` instead
starts, a few bars before the slide, a second cache on the bars the window
will keep, and reads a chunk of them after each bar (with the bars that
follow); at the slide the engine takes that cache in place of its own.
The window it keeps is what the slide would keep, give or take the bars
drawn while it was read.

It gives up (and the slide reads as before) when the context stops being
the one it follows: a new capsule, a re-prime, a move to the parallel
mode, a partial bar.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from affetto.runtime.policies import bars_within
from affetto.runtime.session import CachedSession

BARS_AHEAD = 4  # bars over which the window is read before the slide
# The most context tokens a bar follows, by default: the slide keeps half, so a bar follows 192-384 tokens.
# The lead model was trained on segments of 16 bars, of which few run past 600 tokens, and its loss on a
# bar rises when the bar sits later than that; it is flat from 288 to 512 tokens of context and rises below
# 256 (README, Benchmarks: The context window). 384 against 512 costs 0.0025 nats a token over a window's
# cycle and makes bars 0.87-0.90x as long (the attention reads fewer keys); the re-read a slide needs is one
# bar's tokens a bar whatever the window, since the slide keeps half.
WINDOW = 384
MIN_WINDOW = 64


class ReadAhead:
    """Reads the window the context will slide to, a chunk per bar (see the module docstring)."""

    def __init__(self, new_cache: Callable[[], CachedSession], *, bar: int, bos: int, max_len: int, room: int,
                 window: int, bars_ahead: int = BARS_AHEAD) -> None:
        self._new_cache = new_cache
        self.bar, self.bos = bar, bos
        self.bars_ahead = bars_ahead
        self.limit = min(window, max_len - room)  # the longest context a bar may follow (past it, slid slides)
        self.budget = window // 2  # what the slide keeps, BOS included
        self.ahead: CachedSession | None = None
        self._spare: CachedSession | None = None
        self._cut = 0  # where in the followed context the window starts (a bar line)
        self._bar_tokens = 0.0  # bars' length in tokens, smoothed

    def slid(self, context: Sequence[int]) -> list[int] | None:
        """``context`` slid to BOS and its latest whole bars in half the window, or None while the next bar may
        follow it as it is (it holds at most the window, and a bar's room more fits in the model's positions)."""
        if len(context) <= self.limit:
            return None
        return [self.bos, *bars_within(context, self.bar, self.budget)]

    def drop(self) -> None:
        if self.ahead is not None:
            self._spare, self.ahead = self.ahead, None

    def _follows(self, cache: CachedSession) -> bool:
        ahead = self.ahead
        if ahead is None or cache.capsules is None or ahead.capsules != cache.capsules:
            return False
        mine = ahead.context[1:]
        return cache.context[self._cut : self._cut + len(mine)] == mine

    def advance(self, cache: CachedSession, bar_tokens: int) -> None:
        """After a bar of ``bar_tokens`` tokens: start reading ahead when the slide nears, or read a chunk."""
        if not self._follows(cache):
            self.drop()
        context = cache.context
        self._bar_tokens = bar_tokens if not self._bar_tokens else 0.7 * self._bar_tokens + 0.3 * bar_tokens
        per_bar = max(1, round(self._bar_tokens))
        lead = min(self.bars_ahead * per_bar, self.budget // 2)  # tokens until the slide, about (a short window
        # slides every few bars: it is read over fewer, and keeps at least half of what the slide keeps)
        if self.ahead is None:
            if cache.capsules is None or len(context) + lead <= self.limit:
                return
            tail = bars_within(context, self.bar, self.budget - lead)  # what the slide keeps, less the bars to come
            if not tail:
                return
            cut = len(context) - len(tail)
            ahead = self._spare or self._new_cache()
            self._spare = None
            ahead.stats = {}  # its reading counts as read ahead (below), not as the context's prefills
            ahead.condition(cache.capsules)
            ahead.reset([self.bos, *context[cut:]])
            self.ahead, self._cut = ahead, cut
        else:
            self.ahead.extend(context[self._cut + self.ahead.length - 1 :])
        ahead = self.ahead
        bars_left = max(1, (self.limit - len(context)) // per_bar)
        ran = ahead.prefill(limit=math.ceil((ahead.length - ahead.cached) / bars_left))
        cache.count("read_ahead_tokens", ran)

    def take(self, cache: CachedSession) -> CachedSession | None:
        """At the slide: the cache of the window, read to its end, or None when there is none to take."""
        if not self._follows(cache):
            self.drop()
            return None
        ahead = self.ahead
        if ahead is None:  # (_follows saw one)
            return None
        ahead.extend(cache.context[self._cut + ahead.length - 1 :])
        if ahead.length > self.limit:  # the bars came shorter than thought: slide as before
            self.drop()
            return None
        ran = ahead.prefill()
        cache.count("read_ahead_tokens", ran)
        ahead.stats = cache.stats
        self.ahead, self._spare = None, cache
        return ahead
