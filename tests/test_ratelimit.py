"""The per-kind log rate limiter."""

from __future__ import annotations

import logging

import pytest

from affetto.ratelimit import RateLimitedLog

S = 1_000_000_000


class Now:
    def __init__(self) -> None:
        self.t = 0

    def __call__(self) -> int:
        return self.t


def test_first_of_each_kind_is_logged_then_at_most_burst_per_period(caplog):
    caplog.set_level("INFO", logger="t.rl")
    now = Now()
    rl = RateLimitedLog(logging.getLogger("t.rl"), period_s=10, burst=2, now_ns=now)
    for _ in range(1000):  # all at once
        rl.info("a", "line a")
        rl.info("b", "line b %d", 7)
        now.t += 1_000_000  # 1 ms each: one second in all
    messages = [r.getMessage() for r in caplog.records]
    assert messages[:2] == ["line a", "line b 7"]
    assert messages.count("line a") + messages.count("line b 7") == 4  # the burst of each kind
    assert rl.suppressed == 2000 - 4
    now.t += 10 * S  # the period passed: a line again, saying how many were held back
    assert rl.info("a", "line a")
    assert caplog.records[-1].getMessage() == "line a (and 998 like it held back)"


def test_kinds_are_bounded():
    rl = RateLimitedLog(logging.getLogger("t.rl2"), now_ns=Now(), max_kinds=8)
    for k in range(100):
        rl.warning(f"kind {k}", "x")
    assert len(rl._buckets) == 8


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="period_s"):
        RateLimitedLog(logging.getLogger("t"), period_s=0)
    with pytest.raises(ValueError, match="burst"):
        RateLimitedLog(logging.getLogger("t"), burst=0)
