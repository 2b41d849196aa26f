"""One registry for modes and one for clock sources: the config, the command line and the service read them.

A mode or a clock registered from outside (here, from the test) is checked,
offered and built with no other edit.
"""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from daemon_fakes import make_rig

from affetto.daemon import service
from affetto.daemon.cli import run
from affetto.daemon.clocks import CLOCKS, InternalClock, make_clock
from affetto.daemon.config import DaemonConfig
from affetto.daemon.fakes import FakeGenerator
from affetto.daemon.generators import default_factory
from affetto.daemon.modes import MODES, Ask, Mode, make_mode, register_mode
from affetto.daemon.seed import SeedBuffer
from affetto.errors import ConfigError


def help_choices(option: str) -> list[str]:
    """The choices ``affetto run --help`` shows for ``option``."""
    result = CliRunner().invoke(run, ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    match = re.search(rf"{option} \[([^\]]+)\]", result.output)
    assert match, result.output
    return match.group(1).split("|")


class EveryOtherBar(Mode):
    """A mode from outside the folder: the lead model's bars on even bars only."""

    name = "every-other-bar"
    task = "continue"

    def __init__(self) -> None:
        self.asked: list[int] = []

    def at_bar_line(self, bar: int, seed: SeedBuffer) -> Ask | None:
        if (bar + 1) % 2:
            return None
        self.asked.append(bar + 1)
        return Ask(bar + 1, () if len(self.asked) == 1 else None, self.task)


@pytest.fixture
def every_other_bar():
    register_mode(EveryOtherBar)
    yield EveryOtherBar
    MODES.remove(EveryOtherBar.name)


@pytest.fixture
def slow_clock():
    CLOCKS.add("slow", lambda config: InternalClock(config.bpm / 2))
    yield "slow"
    CLOCKS.remove("slow")


def test_an_unknown_mode_or_clock_is_refused_with_the_registered_names():
    with pytest.raises(ConfigError) as caught:
        DaemonConfig(mode="jam")
    assert str(caught.value) == f"mode must be one of {', '.join(MODES.names())}, got 'jam'"
    with pytest.raises(ConfigError) as caught:
        DaemonConfig.from_dict({"clock": "ptp"})
    assert str(caught.value) == f"clock must be one of {', '.join(CLOCKS.names())}, got 'ptp'"
    with pytest.raises(ConfigError, match="mode must be one of"):
        DaemonConfig.from_dict({"mode": ["continue"]})  # a TOML list, not a name


def test_the_command_line_offers_what_the_registries_hold():
    assert help_choices("--mode") == MODES.names() == ["call-response", "continue", "ensemble", "harmonise",
                                                       "transfer", "variation"]
    assert help_choices("--clock") == CLOCKS.names() == ["internal", "link", "midi"]
    result = CliRunner().invoke(run, ["--mode", "jam"])
    assert result.exit_code == 2 and "'jam' is not one of" in result.output


def test_a_registered_mode_needs_no_other_edit(every_other_bar, monkeypatch):
    config = DaemonConfig(mode=every_other_bar.name, model="builtin:fake", rng_seed=1)
    assert isinstance(make_mode(config), every_other_bar)
    assert type(default_factory(config)().model) is FakeGenerator  # the lead, as its class asks
    assert every_other_bar.name in help_choices("--mode")
    given = []

    def run_daemon(config: DaemonConfig) -> int:
        given.append(config)
        raise ConfigError("stopped before any port opens")

    monkeypatch.setattr(service, "run_daemon", run_daemon)
    result = CliRunner().invoke(run, ["--mode", every_other_bar.name, "--model", "builtin:fake"])
    assert result.exit_code == 2 and "stopped before any port opens" in result.output
    assert [c.mode for c in given] == [every_other_bar.name]

    rig = make_rig(mode=every_other_bar.name)  # the conductor plays what the mode asks
    rig.start()
    rig.advance(8 * rig.ns_per_bar)
    mode = rig.conductor.mode
    assert isinstance(mode, every_other_bar) and mode.asked[:4] == [2, 4, 6, 8]
    assert rig.lead.bars == len(mode.asked) and rig.conductor.bars_missed == 0
    ons = [s for s in rig.scheduler.sent_log if s.kind == 1]
    bars = {int(s.beat // rig.config.meter.beats_per_bar) for s in ons}
    assert bars and all(bar % 2 == 0 for bar in bars)  # nothing played on the bars it never asked for
    assert {s.channel for s in ons} == {config.out_channel}


def test_a_registered_clock_needs_no_other_edit(slow_clock):
    config = DaemonConfig(clock=slow_clock, bpm=100.0)
    clock = make_clock(config)
    assert isinstance(clock, InternalClock) and clock.state.bpm == pytest.approx(50.0)
    assert slow_clock in help_choices("--clock")


def test_a_mode_class_says_what_it_needs():
    assert MODES.get("harmonise").generator == "harmoniser" and not MODES.get("harmonise").lead
    assert MODES.get("ensemble").generator == "band" and MODES.get("ensemble").routed
    with pytest.raises(ConfigError, match="lead's channel 2"):
        DaemonConfig(mode="ensemble", channel=2)
    assert DaemonConfig(mode="harmonise", channel=2).channel == 2  # harmonise plays no line of its own
