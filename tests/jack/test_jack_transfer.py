"""Transfer and variation modes through a real JACK server: the DAW loops a phrase, affetto plays it back.

The DAW's client sends clock and a 2-bar C major loop on channel 1 for six
passes (bars 0..11) with the knob at sad, turns the knob to happy a beat
before bar 8, and stops in bar 13. affetto (the rule method, or the shipped
CVAE, pinned in a config file) learns the loop on its first pass and from
bar 4 on plays it back on its output channel (channel 1, as musicians
count), bar by bar: in C minor while the knob says sad, in C major within
two bars of the turn. Nothing sounds after Stop. Variation mode plays the
same loop, each pass drawn afresh (the rule).
"""

from __future__ import annotations

import re

import pytest
from conftest import Daw, clock_script, running_affetto, sounding
from test_jack_daemon import affetto_ports, note_ons

from affetto.analysis.emotion import Quadrant, knob_value

pytestmark = pytest.mark.jack

BPM = 240.0
LOOP = (  # (beat in the loop bar, pitch, beats): C E G | A F B C, in C major
    [(0.0, 60, 1.0), (1.0, 64, 1.0), (2.0, 67, 2.0)],
    [(0.0, 69, 1.0), (1.0, 65, 1.0), (2.0, 71, 1.0), (3.0, 72, 1.0)],
)
PASSES = 6
TURN_BAR = 8  # the knob goes from sad to happy a beat before this bar line
MAJOR_ONLY = {64, 69}  # E and A: in C minor they are Eb and Ab


def perform(server: str, name: str, mode: str, method: str, tmp_path) -> dict:
    config = tmp_path / f"{name}.toml"
    config.write_text(f'[daemon]\nemotion = {knob_value(Quadrant.Q3)}\nemotion_smoothing = 0.0\n'
                      f'transfer_method = "{method}"\nrng_seed = 4\n', encoding="utf-8")
    with running_affetto(name, "--clock", "midi", "--mode", mode, "--config", str(config),
                         server=server) as (proc, ready, lines):
        assert ready.wait(60), "the daemon did not get ready: " + "".join(lines)
        daw = Daw(f"daw-{name}")
        try:
            daw.connect(*affetto_ports(daw, name))
            script, per_tick = clock_script(BPM, 14)
            beat_frames = 24 * per_tick
            for k in range(PASSES):
                for j, bar in enumerate(LOOP):
                    for beat, pitch, length in bar:
                        at = 1 + int(((k * 2 + j) * 4 + beat) * beat_frames)
                        script += [(at, bytes([0x90, pitch, 96])),
                                   (at + int(length * beat_frames) - 64, bytes([0x80, pitch, 0]))]
            script.append((1 + int((TURN_BAR * 4 - 1) * beat_frames), bytes([0xB0, 20, knob_value(Quadrant.Q1)])))
            stop_at = int(13.5 * 4 * beat_frames)
            script.append((stop_at, bytes([0xFC])))
            script.sort(key=lambda e: e[0])
            start, code = daw.perform(script, proc)
            received, xruns = list(daw.received), daw.xruns
        finally:
            daw.close()
    return {"received": received, "start": start, "bar": 4 * beat_frames, "line0": start + 1,
            "stop": start + stop_at, "code": code, "log": "".join(lines), "xruns": xruns}


@pytest.fixture(scope="module", params=[("transfer", "rule"), ("variation", "rule"), ("transfer", "cvae")],
                ids=["transfer", "variation", "transfer-cvae"])
def played(request, jack_server, tmp_path_factory):
    mode, method = request.param
    run = perform(jack_server, f"afftr{mode[0]}{method[0]}", mode, method, tmp_path_factory.mktemp(mode))
    return mode, {**run, "method": method}


def test_the_loop_comes_back_on_the_output_channel_in_the_knobs_emotion(played):
    mode, run = played
    ons = note_ons(run["received"])
    assert ons, run["log"][-3000:]
    assert {m[0] & 0x0F for _, m in ons} == {0}, "one line, on the output channel"
    assert f"transfer method: {run['method']}" in run["log"]
    joins = [int(m.group(1)) for m in re.finditer(r"a loop of 2 bar\(s\) from bar 1; [\w ]+ join in bar (\d+)",
                                                  run["log"])]
    assert joins == [4], (joins, run["log"][-3000:])
    line0, bar = run["line0"], run["bar"]
    by_bar: dict[int, set[int]] = {}
    for f, m in ons:
        by_bar.setdefault(int((f - line0) // bar), set()).add(m[1])
    played_bars = sorted(by_bar)
    assert set(range(4, 12)) <= set(played_bars), (played_bars, run["xruns"])
    sad = [b for b in range(4, TURN_BAR)]
    for b in sad:  # C minor while the knob says sad: no E, no A
        assert not by_bar[b] & MAJOR_ONLY, (mode, b, by_bar[b])
    happy_from = min(b for b in range(TURN_BAR - 1, 12) if by_bar.get(b, set()) & MAJOR_ONLY)
    assert happy_from <= TURN_BAR + 1, (happy_from, by_bar)  # heard within two bars of the turn
    assert all(b <= 13 for b in played_bars)


def test_nothing_sounds_after_stop(played):
    _mode, run = played
    assert not sounding(run["received"])
    assert run["code"] == 0
    assert not [f for f, _ in note_ons(run["received"]) if f > run["stop"] + run["bar"] / 8]
