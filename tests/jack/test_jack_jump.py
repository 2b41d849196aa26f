"""A position jump through real JACK ports: Stop, Song Position Pointer, Continue, as a DAW sends them.

The DAW plays 200 BPM with its ticks up to 1 ms off the grid (a DAW's MIDI clock is not exact),
from Start for four bars. Then, twice: Stop; 0.3 s later a Song Position Pointer to bar 9 (then
bar 5); Continue 50 ms later (then 2 s later: a user clicks in the timeline, then presses Play);
and the tick train again, its first tick one frame after Continue, in the same JACK period, as a
DAW sends them when it resumes. After the pause of seconds the DAW stutters: its process callback
misses the periods of about two ticks (busy resuming), so the ticks due then go out together in
the period after, as a busy DAW's or JACK's late periods send them.

After a jump the first tick is the song position, exactly as the first tick after Start is beat 0
(DESIGN.md, Time): every note the daemon plays after a jump must sit on the 16th grid anchored at
that tick, as the notes after Start sit on the grid anchored at the first tick after Start. Before
the clock follower counted every tick, it took the stuttered ticks for duplicates and played the
rest of the song one tick (12.5 ms) late.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import PERIOD, RATE, Daw, running_affetto, sounding
from test_jack_daemon import affetto_ports, note_ons

pytestmark = pytest.mark.jack

BPM = 200.0
TICK = round(RATE * 60 / BPM / 24)  # 600 frames, 12.5 ms
SIXTEENTH = 6 * TICK
BAR = 96 * TICK
JITTER = RATE // 1000  # a tick is up to 1 ms off its place
# as in test_jack_daemon: the loop DAW -> affetto -> DAW makes JACK deliver affetto's output a
# period late; the 5 ms cover the clock follower's phase error on a jittered train
TOLERANCE = PERIOD + int(0.005 * RATE)
# On a busy machine a note is now and then handed to JACK after its period began, and goes out a
# period late (the daemon counts and logs it); a tick off (600 frames, plus the loop's period) is
# beyond this still, and it would move every note, which the median sees.
LATE_TOLERANCE = TOLERANCE + PERIOD
BARS = 4  # played after Start and after each jump
# (bar jumped to, 0-based; seconds from the pointer to Continue; the DAW's stutter after resuming:
# (first period missed, counted from Continue's, periods missed) or None)
JUMPS = ((8, 0.05, None), (4, 2.0, (13, 8)))


def _ticks(first: int, count: int, rng: np.random.Generator) -> list[int]:
    """Frames of ``count`` ticks from frame ``first`` (exact: it is the one a test anchors on), jittered after."""
    jitter = [0, *rng.integers(-JITTER, JITTER + 1, count - 1)]
    return [first + k * TICK + int(j) for k, j in enumerate(jitter)]


def _stutter(frames: list[int], first_period: int, periods: int) -> list[int]:
    """The DAW's callback misses ``periods`` periods from ``first_period`` on: what was due in them
    goes out at the first frame of the period after (the script's start is a period's first frame)."""
    lo, hi = first_period * PERIOD, (first_period + periods) * PERIOD
    return [hi if lo <= f < hi else f for f in frames]


def jump_script(seed: int = 5) -> tuple[list[tuple[int, bytes]], list[dict]]:
    """The DAW's script, and per segment (after Start, after each jump): the frame of its first tick
    (relative to the script's start) and the frame where it stops."""
    rng = np.random.default_rng(seed)
    script = [(0, bytes([0xFA]))]
    segments = []
    first = 1
    for jump in (None, *JUMPS):
        stutter = None
        if jump is not None:
            bar, pause_s, stutter = jump
            stop = script[-1][0] + TICK // 2  # Stop half a tick after the last tick
            pointer = stop + int(0.3 * RATE)
            resume = pointer + int(pause_s * RATE)
            resume += (PERIOD // 2 - resume) % PERIOD  # Continue mid-period: its tick in the same period
            spp = 4 * 4 * bar  # sixteenths
            script += [(stop, bytes([0xFC])), (pointer, bytes([0xF2, spp & 0x7F, spp >> 7])),
                       (resume, bytes([0xFB]))]
            first = resume + 1
        frames = _ticks(first, BARS * 96, rng)
        if stutter is not None:
            frames = _stutter(frames, first // PERIOD + stutter[0], stutter[1])
        script += [(f, bytes([0xF8])) for f in frames]
        segments.append({"first_tick": first, "end": frames[-1] + TICK // 2})
    script.append((segments[-1]["end"], bytes([0xFC])))
    return script, segments


@pytest.fixture(scope="module")
def jumped(jack_server):
    name = "affjump"
    script, segments = jump_script()
    with running_affetto(name, "--clock", "midi", server=jack_server) as (proc, ready, lines):
        assert ready.wait(60), "the daemon did not get ready: " + "".join(lines)
        daw = Daw(f"daw-{name}")
        try:
            daw.connect(*affetto_ports(daw, name))
            start, code = daw.perform(script, proc, aligned=True)
            received, periods, xruns = list(daw.received), list(daw.periods), daw.xruns
        finally:
            daw.close()
    return {"received": received, "periods": dict(periods), "start": start, "segments": segments,
            "code": code, "log": "".join(lines), "xruns": xruns}


def grid_errors(run: dict, segment: dict) -> list[int]:
    """Frames from each note-on the DAW received in ``segment`` to the nearest 16th of the grid
    anchored at the segment's first tick."""
    first = run["start"] + segment["first_tick"]
    end = run["start"] + segment["end"]
    out = []
    for f, _m in note_ons(run["received"]):
        if first + BAR - TOLERANCE <= f < end:  # from the segment's first bar line on (nothing is asked before)
            out.append((f - first + SIXTEENTH // 2) % SIXTEENTH - SIXTEENTH // 2)
    return out


def test_the_script_puts_continue_and_its_first_tick_in_one_period(jumped):
    """The premise of the jump tests: JACK carried Continue and the tick after it in the same period."""
    periods, start = jumped["periods"], jumped["start"]
    for segment in jumped["segments"][1:]:
        tick = start + segment["first_tick"]
        assert periods[tick - 1] == periods[tick], (tick, periods[tick - 1], periods[tick])


@pytest.mark.parametrize("segment", [0, 1, 2], ids=["after Start", "after a jump, 50 ms", "after a jump, 2 s"])
def test_notes_after_a_jump_sit_on_the_grid_of_its_first_tick_like_after_start(jumped, segment):
    run = jumped
    errors = grid_errors(run, run["segments"][segment])
    # three bars are asked for after the first tick's bar; the fake model starts every bar with a note
    assert len(errors) >= 3, (errors, run["log"][-3000:])
    off = [e for e in errors if abs(e) > LATE_TOLERANCE]
    median = sorted(errors)[len(errors) // 2]
    assert abs(median) <= TOLERANCE and not off, (
        f"notes off the 16th grid by (frames; a tick is {TICK}): median {median}, {off} of {errors}; "
        f"tolerance {TOLERANCE}, one note {LATE_TOLERANCE}; JACK xruns {run['xruns']}\n{run['log'][-3000:]}"
    )


def test_a_jump_leaves_no_note_sounding_and_exits_cleanly(jumped):
    assert not sounding(jumped["received"])
    assert jumped["code"] == 0
