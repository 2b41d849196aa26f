"""The clock family: one factory, and ``begin`` as the one way a source is told the daemon is ready."""

from __future__ import annotations

import sys

import pytest

from affetto.daemon.clocks import InternalClock, MidiClockFollower, Transport, make_clock
from affetto.daemon.config import DaemonConfig
from affetto.errors import ConfigError


def test_make_clock_builds_the_source_the_config_names():
    internal = make_clock(DaemonConfig(clock="internal", bpm=90.0))
    assert isinstance(internal, InternalClock)
    assert internal.state.bpm == pytest.approx(90.0)
    assert isinstance(make_clock(DaemonConfig(clock="midi")), MidiClockFollower)


def test_make_clock_says_a_missing_link_binding_in_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "link", None)
    with pytest.raises(ConfigError, match=r"pip install LinkPython-extern"):
        make_clock(DaemonConfig(clock="link"))


def test_begin_starts_a_clock_that_runs_by_itself_and_not_a_follower():
    internal = InternalClock(120.0)
    events = internal.begin(5_000)
    assert [e.kind for e in events] == [Transport.START]
    assert internal.state.running and internal.state.time_at(0.0) == 5_000
    follower = MidiClockFollower()
    assert follower.begin(5_000) == []
    assert not follower.state.running


def test_every_source_is_a_context_manager():
    with make_clock(DaemonConfig(clock="internal")) as clock:
        assert isinstance(clock, InternalClock)
