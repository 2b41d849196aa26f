"""The shared offset tracker: lower envelope of delayed readings, following drift."""

from __future__ import annotations

import pytest

from affetto.daemon.timebase import OffsetTracker


def test_first_reading_sets_the_offset_and_a_lower_one_wins_at_once():
    tracker = OffsetTracker(leak_ns=5_000)
    assert tracker.offset_ns == 0
    assert tracker.sample(1_000_000, 1_300_000) == 300_000
    assert tracker.observe(250_000) == 250_000
    assert tracker.to_ns(2_000_000) == 2_250_000
    assert tracker.to_outside(2_250_000) == 2_000_000


def test_a_delayed_reading_moves_the_estimate_one_leak_step_at_most():
    tracker = OffsetTracker(leak_ns=5_000)
    tracker.observe(100_000)
    assert tracker.observe(100_000 + 3_000_000) == 105_000  # a callback held up 3 ms
    assert tracker.observe(100_000) == 100_000  # the next undisturbed reading brings it back


def test_drift_is_followed_both_ways():
    up = OffsetTracker(leak_ns=20_000)
    down = OffsetTracker(leak_ns=20_000)
    for k in range(200):
        up.observe(1_000_000 + 10_000 * k)  # the offset grows 10 us per reading: under the leak
        down.observe(1_000_000 - 10_000 * k)
    assert up.offset_ns == 1_000_000 + 10_000 * 199
    assert down.offset_ns == 1_000_000 - 10_000 * 199


def test_leak_is_checked():
    with pytest.raises(ValueError, match="leak_ns must be an int >= 0"):
        OffsetTracker(leak_ns=-1)
