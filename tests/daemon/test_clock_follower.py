"""The MIDI clock follower and the internal clock, on synthetic tick trains."""

from __future__ import annotations

import numpy as np
import pytest

from affetto.daemon.clocks import InternalClock, MidiClockFollower, Transport
from affetto.daemon.midi import CLOCK as CLOCK_TICK
from affetto.daemon.midi import CONTINUE, PPQN, SONG_POSITION, START, STOP
from affetto.errors import ConfigError

MS = 1_000_000
T0 = 10_000_000_000
PERIOD_NS = int(256 / 48000 * 1e9)  # one JACK period at 48 kHz / 256


def ticks(
    bpm: float, count: int, *, t0: int = T0, jitter_ns: int = 0, seed: int = 0
) -> list[tuple[int, int]]:
    """(true time, arrival time) of ``count`` ticks; arrival delayed by up to ``jitter_ns`` (like JACK)."""
    rng = np.random.default_rng(seed)
    step = 60e9 / bpm / PPQN
    out = []
    for k in range(count):
        true = t0 + int(k * step)
        out.append((true, true + int(rng.uniform(0, jitter_ns))))
    return out


def feed(clock: MidiClockFollower, train, status=CLOCK_TICK):
    events = []
    for _, arrival in train:
        events += clock.handle(status, 0, arrival)
    return events


def phase_error_ms(clock: MidiClockFollower, true_ns: int, true_beat: float) -> float:
    """How far (ms) the clock puts ``true_beat`` from where it really falls."""
    return abs(clock.state.time_at(true_beat) - true_ns) / MS


def test_start_then_first_tick_is_beat_zero():
    clock = MidiClockFollower()
    assert clock.handle(START, 0, T0 - 5 * MS) == []
    assert not clock.state.running
    events = clock.handle(CLOCK_TICK, 0, T0)
    assert [e.kind for e in events] == [Transport.START]
    assert events[0].beat == 0.0
    assert clock.state.running
    assert clock.state.beat_at(T0) == pytest.approx(0.0)


def test_steady_tempo_with_jack_jitter_converges():
    clock = MidiClockFollower()
    clock.handle(START, 0, T0 - MS)
    train = ticks(120, 24 * 8, jitter_ns=PERIOD_NS, seed=1)
    feed(clock, train)
    assert clock.state.bpm == pytest.approx(120, rel=0.01)
    true_ns, _ = train[-1]
    # beat phase of the last tick, and one beat ahead (extrapolated)
    assert phase_error_ms(clock, true_ns, (len(train) - 1) / PPQN) < PERIOD_NS / MS + 1
    assert phase_error_ms(clock, true_ns + 500 * MS, (len(train) - 1) / PPQN + 1) < PERIOD_NS / MS + 2
    assert clock.missing_ticks == 0 and clock.duplicate_ticks == 0


def test_relocks_after_tempo_change():
    clock = MidiClockFollower()
    clock.handle(START, 0, T0 - MS)
    before = ticks(120, 24 * 8, jitter_ns=PERIOD_NS, seed=2)
    feed(clock, before)
    change_at = before[-1][0] + int(60e9 / 120 / PPQN)
    after = ticks(90, 24 * 4, t0=change_at, jitter_ns=PERIOD_NS, seed=3)
    feed(clock, after[:36])  # a beat and a half at the new tempo
    assert clock.restarts >= 1
    assert clock.state.bpm == pytest.approx(90, rel=0.03)
    feed(clock, after[36:])
    assert clock.state.bpm == pytest.approx(90, rel=0.01)
    song_beat = (len(before) + len(after) - 1) / PPQN
    assert phase_error_ms(clock, after[-1][0], song_beat) < PERIOD_NS / MS + 1


def test_missing_tick_keeps_song_position():
    clock = MidiClockFollower()
    clock.handle(START, 0, T0 - MS)
    train = ticks(120, 24 * 4)
    del train[60]  # one lost 0xF8
    feed(clock, train)
    assert clock.missing_ticks == 1
    assert clock.song_tick == 24 * 4  # the next tick would be the 97th
    true_last, _ = train[-1]
    assert phase_error_ms(clock, true_last, (24 * 4 - 1) / PPQN) < 0.5


def test_duplicate_tick_is_dropped():
    clock = MidiClockFollower()
    clock.handle(START, 0, T0 - MS)
    train = ticks(120, 48)
    train.insert(30, (train[29][0], train[29][1] + 100_000))
    feed(clock, train)
    assert clock.duplicate_ticks == 1
    assert clock.song_tick == 48


def test_stop_continue_resumes_where_it_stopped():
    clock = MidiClockFollower()
    clock.handle(START, 0, T0 - MS)
    train = ticks(120, 48)
    feed(clock, train)
    stop_t = train[-1][1] + 5 * MS
    events = clock.handle(STOP, 0, stop_t)
    assert [e.kind for e in events] == [Transport.STOP]
    assert not clock.state.running
    assert clock.state.beat_at(stop_t + 10**9) == pytest.approx(2.0)  # frozen at the stop position
    # the DAW keeps sending clock while stopped: tempo is tracked, position is not
    more = ticks(120, 24, t0=train[-1][0] + int(60e9 / 120 / PPQN))
    feed(clock, more)
    assert clock.song_tick == 48
    clock.handle(CONTINUE, 0, more[-1][1] + MS)
    resume = ticks(120, 2, t0=more[-1][0] + int(60e9 / 120 / PPQN))
    events = feed(clock, resume)
    assert [e.kind for e in events] == [Transport.CONTINUE]
    assert events[0].beat == pytest.approx(2.0)


def test_song_position_then_continue():
    clock = MidiClockFollower()
    train = ticks(100, 24)
    feed(clock, train)  # clock without Start: tempo, but no transport
    assert not clock.state.running
    assert clock.state.bpm == pytest.approx(100, rel=0.01)
    events = clock.handle(SONG_POSITION, 32, train[-1][1] + MS)  # 32 sixteenths = bar 3
    assert [e.kind for e in events] == [Transport.LOCATE]
    assert events[0].beat == 8.0
    clock.handle(CONTINUE, 0, train[-1][1] + 2 * MS)
    events = feed(clock, ticks(100, 3, t0=train[-1][0] + int(60e9 / 100 / PPQN)))
    assert events[0].kind is Transport.CONTINUE and events[0].beat == 8.0
    assert clock.state.running


def test_song_position_beyond_the_song_and_out_of_range():
    clock = MidiClockFollower()
    events = clock.handle(SONG_POSITION, 0x3FFF, T0)
    assert events[0].beat == 0x3FFF * 6 / PPQN
    assert clock.handle(SONG_POSITION, 0x4000, T0) == []  # not a 14-bit value: ignored


def test_song_position_while_running_stops_and_locates():
    clock = MidiClockFollower()
    clock.handle(START, 0, T0 - MS)
    feed(clock, ticks(120, 30))
    kinds = [e.kind for e in clock.handle(SONG_POSITION, 16, T0 + 10**9)]
    assert kinds == [Transport.STOP, Transport.LOCATE]


def test_stop_without_start_is_harmless():
    clock = MidiClockFollower()
    events = clock.handle(STOP, 0, T0)
    assert [e.kind for e in events] == [Transport.STOP]
    assert not clock.state.running


def test_silent_clock_stops_transport():
    clock = MidiClockFollower(timeout_ns=300 * MS)
    clock.handle(START, 0, T0 - MS)
    train = ticks(120, 24)
    feed(clock, train)
    assert clock.check(train[-1][1] + 100 * MS) == []
    events = clock.check(train[-1][1] + 400 * MS)
    assert [e.kind for e in events] == [Transport.STOP]


def test_ticks_back_after_a_silence_go_on_where_the_time_says():
    clock = MidiClockFollower(timeout_ns=600 * MS)
    clock.handle(START, 0, T0 - MS)
    train = ticks(120, 24 * 8)
    feed(clock, train[:48])
    events = clock.check(train[47][1] + 700 * MS)  # a stalled server: no ticks for 0.7 s
    assert [e.kind for e in events] == [Transport.STOP] and not clock.state.running
    back = feed(clock, train[100:])  # ticks 48..99 never came: 1.1 s of silence, within twice the timeout
    assert [(e.kind, e.beat) for e in back] == [(Transport.CONTINUE, 100 / PPQN)]
    assert clock.state.running and clock.song_tick == 24 * 8 and clock.missing_ticks == 52
    assert phase_error_ms(clock, train[-1][0], (24 * 8 - 1) / PPQN) < 0.5
    # after a Stop, or a silence longer than twice the timeout, ticks do not start the song again
    for first, stop in ((60, True), (120, False)):
        clock = MidiClockFollower(timeout_ns=600 * MS)
        clock.handle(START, 0, T0 - MS)
        feed(clock, train[:48])
        clock.check(train[47][1] + 700 * MS)
        if stop:
            clock.handle(STOP, 0, train[47][1] + 800 * MS)
        assert feed(clock, train[first:]) == [] and not clock.state.running, (first, stop)


def test_epoch_changes_on_transport():
    clock = MidiClockFollower()
    e0 = clock.state.epoch
    clock.handle(START, 0, T0)
    feed(clock, ticks(120, 4))
    e1 = clock.state.epoch
    clock.handle(STOP, 0, T0 + 10**9)
    assert e0 < e1 < clock.state.epoch


def test_internal_clock_maps_beats_and_stops():
    clock = InternalClock(150)
    assert not clock.state.running
    clock.start(T0)
    assert clock.state.beat_at(T0 + 400 * MS) == pytest.approx(1.0)
    assert clock.state.time_at(4.0) == T0 + 1600 * MS
    clock.stop(T0 + 800 * MS)
    assert clock.state.beat_at(T0 + 10**10) == pytest.approx(2.0)
    with pytest.raises(ConfigError, match="bpm must be"):
        InternalClock(0)


def test_sudden_tempo_drop_is_not_counted_as_missing_ticks():
    clock = MidiClockFollower()
    clock.handle(START, 0, T0 - MS)
    before = ticks(120, 48)
    feed(clock, before)
    after = ticks(60, 48, t0=before[-1][0] + int(60e9 / 60 / PPQN))  # half the tempo at once
    feed(clock, after)
    assert clock.missing_ticks == 0
    assert clock.song_tick == 96
    assert clock.state.bpm == pytest.approx(60, rel=0.01)


def test_a_jump_lands_exactly_like_a_start():
    """Stop, SPP (bar 9), Continue: the first tick after Continue is the song position, as after Start.

    The DAW restarts its tick train at the jump, at a phase 40 % of a tick after the last tick it
    sent before (a locate takes a few ms); the first tick must not be taken for a duplicate.
    """
    bpm = 200.0
    step = 60e9 / bpm / PPQN
    spp = 128  # sixteenths: bar 9 in 4/4, beat 32
    jump = MidiClockFollower()
    jump.handle(START, 0, T0 - MS)
    before = [T0 + round(k * step) for k in range(PPQN * 8)]  # two bars played
    for t in before:
        jump.handle(CLOCK_TICK, 0, t)
    jump.handle(STOP, 0, before[-1] + MS)
    t1 = before[-1] + round(0.4 * step)
    jump.handle(SONG_POSITION, spp, t1 - 3 * MS)
    jump.handle(CONTINUE, 0, t1 - 2 * MS)
    # the reference: a follower that hears the same tick train after a plain Start
    start = MidiClockFollower()
    for k in range(PPQN, 0, -1):  # clock before Start, in phase with the train
        start.handle(CLOCK_TICK, 0, t1 - round(k * step))
    start.handle(START, 0, t1 - 2 * MS)
    for j in range(PPQN * 4):
        t = t1 + round(j * step)
        jump_events = jump.handle(CLOCK_TICK, 0, t)
        start_events = start.handle(CLOCK_TICK, 0, t)
        if j == 0:
            assert [(e.kind, e.beat) for e in jump_events] == [(Transport.CONTINUE, 32.0)]
            assert [(e.kind, e.beat) for e in start_events] == [(Transport.START, 0.0)]
        for ahead in (0.0, 1.0, 4.0):  # this tick, and deadlines a beat and a bar ahead
            beat = j / PPQN + ahead
            assert jump.state.time_at(spp / 4 + beat) == pytest.approx(start.state.time_at(beat), abs=10_000)
            assert start.state.time_at(beat) == pytest.approx(t1 + beat * PPQN * step, abs=10_000)
    assert jump.duplicate_ticks == 0 and jump.missing_ticks == 0
    assert jump.song_tick == spp * 6 + PPQN * 4


def _resume(pause_s: float, stall: tuple[int, int] | None, seed: int = 0) -> tuple[MidiClockFollower, int, float]:
    """Four bars at 200 BPM (ticks up to 1 ms off), Stop, a pointer to bar 9, Continue ``pause_s`` after
    it and the first tick a frame later; then four bars, where the DAW's callback misses
    ``stall = (first period, periods)`` counted from the first tick's period (what was due in them
    comes at the first frame of the period after, all at once). Returns the follower, the first
    tick's time and the tick period (ns)."""
    rng = np.random.default_rng(seed)
    frame = 1e9 / 48000
    step = 600 * frame  # 12.5 ms
    clock = MidiClockFollower()
    clock.handle(START, 0, T0 - MS)
    last = 0
    for k in range(PPQN * 16):
        last = T0 + round(k * step + (rng.uniform(-MS, MS) if k else 0))
        clock.handle(CLOCK_TICK, 0, last)
    clock.handle(STOP, 0, last + 6 * MS)
    clock.handle(SONG_POSITION, 128, last + 306 * MS)
    t1 = last + 306 * MS + round(pause_s * 1e9)
    clock.handle(CONTINUE, 0, t1 - round(frame))
    period0 = int(t1 // PERIOD_NS) * PERIOD_NS
    for k in range(PPQN * 16):
        t = t1 + k * step + (rng.uniform(-MS, MS) if k else 0)
        if stall is not None:
            lo, hi = period0 + stall[0] * PERIOD_NS, period0 + (stall[0] + stall[1]) * PERIOD_NS
            t = hi if lo <= t < hi else t
        clock.handle(CLOCK_TICK, 0, round(t))
    return clock, t1, step


@pytest.mark.parametrize(
    "pause_s, stall",
    [(2.0, (13, 8)), (2.0, (10, 10)), (0.05, (0, 2)), (0.05, (0, 12)), (0.05, (20, 6)), (2.0, None)],
    ids=["2 s, ticks 5-8 bunched", "2 s, ticks 4-7 bunched", "50 ms, the first tick late with the second",
         "50 ms, the first five ticks together", "50 ms, ticks 8-10 bunched", "2 s, no stutter"],
)
def test_a_stutter_after_a_jump_keeps_every_tick_counted(pause_s, stall):
    """A DAW resuming after a jump is busy: ticks due while its callback was late come together.
    They are ticks, not duplicates (nor signs of lost ones): the song position keeps counting them
    and stays on the DAW's grid. (Guessing from single gaps dropped them as duplicates: every note
    after the jump came a tick or more late, for the rest of the song.)"""
    clock, t1, step = _resume(pause_s, stall)
    assert clock.song_tick == 128 * 6 + PPQN * 16
    for beat in (0.0, 1.0, 4.0):  # the last tick, and a beat and a bar ahead, on the grid of the first tick
        true = t1 + (PPQN * 16 - 1 + beat * PPQN) * step
        assert clock.state.time_at(32 + 16 - 1 / PPQN + beat) == pytest.approx(true, abs=1.5 * MS)


def test_lost_ticks_close_together_and_a_stutter_keep_the_song_position():
    """Two 0xF8 lost two ticks apart, then a stutter: the count comes back to the DAW's."""
    step = int(60e9 / 120 / PPQN)
    train = ticks(120, PPQN * 8)
    del train[101]
    del train[99]
    stutter = [(true, max(arrival, train[150][1] + 40 * MS) if 150 <= k < 154 else arrival)
               for k, (true, arrival) in enumerate(train)]
    clock = MidiClockFollower()
    clock.handle(START, 0, T0 - MS)
    feed(clock, stutter)
    assert clock.song_tick == PPQN * 8
    assert clock.missing_ticks == 2 and clock.duplicate_ticks == 0
    assert clock.state.time_at((PPQN * 8 - 1) / PPQN + 1) == pytest.approx(train[-1][0] + PPQN * step, abs=MS)


@pytest.mark.parametrize("stall_ms", [100, 477, 800])
@pytest.mark.parametrize("periods", [1, 4])
def test_a_daw_stalled_for_many_ticks_sends_them_in_a_burst_and_nothing_is_lost(stall_ms, periods):
    """The DAW's process callback held up (477 ms: a full garbage collection in a Python DAW client,
    measured in the test suite) at 240 BPM, bar 4: every tick due meanwhile arrives in the next JACK
    period, or spread over the next four, then the train goes on. None was lost: the count stays the
    DAW's and the grid stays where the same ticks on time put it."""
    step = 60e9 / 240 / PPQN
    train = ticks(240, PPQN * 4 * 8, jitter_ns=PERIOD_NS, seed=3)
    held_from, held_to = T0 + int(3.87 * 4 * PPQN * step), T0 + int(3.87 * 4 * PPQN * step) + stall_ms * MS
    held = [k for k, (true, _) in enumerate(train) if held_from <= true < held_to]
    assert len(held) >= stall_ms * MS // step
    late, latest = [], 0
    for k, (true, arrival) in enumerate(train):
        if k in held:
            arrival = held_to + PERIOD_NS * (1 + (k - held[0]) * periods // len(held))
        latest = max(latest, arrival)  # what came after the burst came after it
        late.append((true, latest))
    clocks = []
    for arrivals in (train, late):  # the same ticks without the stall, and with it
        clock = MidiClockFollower()
        clock.handle(START, 0, T0 - MS)
        feed(clock, arrivals)
        clocks.append(clock)
    steady, stalled = clocks
    assert stalled.song_tick == steady.song_tick == len(train)
    assert stalled.missing_ticks == 0 and stalled.duplicate_ticks == 0
    ahead = (len(train) - 1) / PPQN + 1  # a beat after the last tick
    assert abs(stalled.state.time_at(ahead) - steady.state.time_at(ahead)) < 0.5 * MS


# -- ticks lost or bunched right after Start ----------------------------------------------------


def start_then(clock: MidiClockFollower, train, *, before: int = 0, bpm: float = 240) -> None:
    """``before`` ticks at ``bpm`` while stopped (the tempo known), Start a hair before ``train``'s first
    tick, then ``train``."""
    step = 60e9 / bpm / PPQN
    feed(clock, [(0, int(train[0][1] - (before - k) * step - 3 * MS)) for k in range(before)])
    clock.handle(START, 0, train[0][1] - MS // 10)
    feed(clock, train)


@pytest.mark.parametrize("before", [0, 48])  # no tempo known at Start, or two beats of ticks before it
@pytest.mark.parametrize("lost", [(1,), (1, 2), (2,)])
def test_ticks_lost_right_after_start_are_counted(before, lost):
    clock = MidiClockFollower()
    train = ticks(240, 24 * 4)
    kept = [t for k, t in enumerate(train) if k not in lost]
    start_then(clock, kept, before=before)
    assert clock.missing_ticks == len(lost)
    assert clock.song_tick == 24 * 4  # the next tick is the 97th, as if none was lost
    true_last, _ = train[-1]
    assert phase_error_ms(clock, true_last, (24 * 4 - 1) / PPQN) < 0.5
    assert clock.state.bpm == pytest.approx(240, rel=0.01)


def test_ticks_bunched_right_after_start_are_no_tempo():
    clock = MidiClockFollower()
    train = ticks(240, 24 * 4)
    late = [(true, arrival) for true, arrival in train]
    late[0] = (late[0][0], late[1][1] - 100_000)  # the first tick held up by a stall, sent with the second
    clock.handle(START, 0, train[0][1] - MS)
    fastest = 0.0
    for _true, arrival in late:
        clock.handle(CLOCK_TICK, 0, arrival)
        fastest = max(fastest, clock.state.bpm)
    assert fastest <= 1000  # a line through two ticks 0.1 ms apart (36000 BPM) is never taken
    assert clock.song_tick == 24 * 4
    assert clock.state.bpm == pytest.approx(240, rel=0.01)
    assert phase_error_ms(clock, train[-1][0], (24 * 4 - 1) / PPQN) < 0.5
