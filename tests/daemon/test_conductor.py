"""The conductor on fakes: bar alignment, knob, late policy, modes, and every stop path."""

from __future__ import annotations

import math
import queue

import pytest
from daemon_fakes import MS, make_rig

from affetto.analysis.emotion import Quadrant, knob_capsule, knob_value
from affetto.daemon.clocks import Transport, TransportEvent
from affetto.daemon.midi import PPQN

BAR = 4.0  # 4/4


def first_beats_per_bar(rig) -> dict[int, float]:
    """The earliest note-on beat of every bar that sounded."""
    out: dict[int, float] = {}
    for s in rig.scheduler.sent_log:
        if s.kind == 1:
            bar = int(s.beat // BAR)
            out[bar] = min(out.get(bar, 1e9), s.beat)
    return out


def note_on_pitches(rig, bar: int) -> list[int]:
    return [s.pitch for s in rig.scheduler.sent_log if s.kind == 1 and int(s.beat // BAR) == bar]


def test_bars_start_on_bar_lines_with_one_bar_lookahead():
    rig = make_rig()
    rig.start()
    rig.advance(5 * rig.ns_per_bar)
    assert rig.conductor.bars_generated == 5  # bars 1..5 (bar 6 was just asked for)
    firsts = first_beats_per_bar(rig)
    assert sorted(firsts) == [1, 2, 3, 4, 5]  # bar 0 is silent (no lookahead before Start)
    assert all(firsts[b] == b * BAR for b in firsts)
    for s in rig.scheduler.sent_log:  # sent within one fake step of the deadline
        assert 0 <= s.sent_ns - s.deadline_ns <= 5 * MS
    assert rig.conductor.bars_missed == 0


def test_first_request_primes_and_later_ones_do_not_without_new_seed():
    rig = make_rig()
    rig.start()
    rig.advance(int(2.5 * rig.ns_per_bar), auto_deliver=False)
    seeds = [r.seed for r in rig.worker.requests]
    assert seeds[0] == () and all(s is None for s in seeds[1:])


def test_requests_carry_the_sampling_settings_of_the_config():
    rig = make_rig(candidates=2, top_p=0.9)
    rig.start()
    rig.advance(int(1.5 * rig.ns_per_bar), auto_deliver=False)
    assert rig.worker.requests
    assert all(r.sampling.candidates == 2 and r.sampling.top_p == 0.9 for r in rig.worker.requests)
    assert all(r.task == "continue" for r in rig.worker.requests)
    default = make_rig()
    default.start()
    default.advance(int(1.5 * default.ns_per_bar), auto_deliver=False)
    assert all(r.sampling.candidates is None for r in default.worker.requests)  # None: the model's own setting


def test_knob_changes_the_next_bars():
    rig = make_rig(emotion=knob_value(Quadrant.Q1), emotion_smoothing=0.0)
    rig.start()
    rig.advance(3 * rig.ns_per_bar)
    rig.inbox.put((rig.time(), 0xB0, 20, knob_value(Quadrant.Q3)))
    rig.advance(3 * rig.ns_per_bar)
    quadrants = [c.quadrant for c in rig.generator.capsules]
    assert quadrants[:3] == [Quadrant.Q1] * 3 and quadrants[-2:] == [Quadrant.Q3] * 2
    happy, sad = note_on_pitches(rig, 2), note_on_pitches(rig, 5)
    assert happy and sad and happy != sad
    assert max(sad) < max(happy)  # the fake goes down an octave when arousal is low


@pytest.mark.parametrize("policy", ["repeat", "rest"])
def test_late_bar_policy(policy):
    rig = make_rig(late_policy=policy)
    rig.start()
    rig.advance(rig.ns_per_bar // 2, auto_deliver=False)  # bar 1 was asked for at Start
    rig.worker.deliver(0)  # bar 1 on time
    rig.advance(rig.ns_per_bar // 2 + 10 * MS, auto_deliver=False)  # bar 2 asked for at bar line 1
    rig.advance(rig.ns_per_bar - 15 * MS, auto_deliver=False)  # ... and not back 20 ms before its line
    assert rig.conductor.bars_missed == 1
    late = rig.worker.requests[1]
    assert late.bar == 2
    rig.worker.deliver(1)  # arrives too late: dropped
    rig.advance(rig.ns_per_bar, auto_deliver=False)
    bar1, bar2 = note_on_pitches(rig, 1), note_on_pitches(rig, 2)
    if policy == "repeat":
        assert bar2 == bar1
    else:
        assert bar2 == []


def test_generator_error_is_a_missed_bar_not_a_crash():
    rig = make_rig()
    rig.generator.fail_after = 2
    rig.start()
    rig.advance(5 * rig.ns_per_bar)
    assert rig.conductor.errors >= 1 and rig.conductor.bars_missed >= 1
    assert note_on_pitches(rig, 3) == note_on_pitches(rig, 2)  # repeated


class Daw:
    """Plays the DAW's side on the rig: clock ticks, transport, notes."""

    def __init__(self, rig, bpm=120.0):
        self.rig = rig
        self.tick_ns = int(60e9 / bpm / PPQN)

    def send(self, *msg):
        self.rig.inbox.put((self.rig.time(), *msg) + (0,) * (3 - len(msg)))
        self.rig.pump()

    def ticks(self, count):
        for _ in range(count):
            self.rig.time.step(self.tick_ns)
            self.rig.worker.deliver_all()
            self.send(0xF8)


def test_stop_releases_sounding_notes():
    rig = make_rig(clock="midi")
    daw = Daw(rig)
    daw.ticks(48)  # clock before Start
    daw.send(0xFA)
    daw.ticks(PPQN * 4 * 2 + 6)  # into bar 2 (bar 1 is playing)
    assert rig.output.sounding()
    daw.send(0xFC)
    assert rig.output.sounding() == [] and rig.port.sounding() == set()
    assert [0xB0, 123, 0] in [m for _, m in rig.port.messages]
    sent = len(rig.port.messages)
    daw.ticks(PPQN * 8)  # clock keeps running while stopped: nothing plays
    assert len(rig.port.note_ons()) == len([m for m in rig.port.messages[:sent] if m[1][0] == 0x90])


def test_song_position_jump_releases_and_restarts_on_the_new_bar():
    rig = make_rig(clock="midi")
    daw = Daw(rig)
    daw.send(0xFA)
    daw.ticks(PPQN * 4 * 2 + 2)
    assert rig.output.sounding()
    daw.send(0xFC)
    daw.send(0xF2, 64 & 0x7F, 64 >> 7)  # bar 5 (64 sixteenths)
    daw.send(0xFB)
    daw.ticks(PPQN * 4 * 2 + 1)
    firsts = first_beats_per_bar(rig)
    assert 5 in firsts and firsts[5] == 5 * BAR  # first generated bar after the jump, on its line
    assert 4 not in firsts


def test_bad_transport_input_never_crashes():
    rig = make_rig(clock="midi", in_channel=1)
    daw = Daw(rig)
    daw.send(0xFC)  # Stop without Start
    daw.ticks(30)  # clock without Start
    daw.send(0xF2, 0x7F, 0x7F)  # SPP far beyond any song
    daw.send(0xFB)
    daw.ticks(PPQN * 4 * 2)
    daw.send(0x92, 60, 100)  # a note on another channel: ignored
    daw.send(0xB0, 20, 200)  # CC out of range (not valid MIDI): ignored
    assert rig.conductor.controls.target() == knob_capsule(rig.config.emotion)
    assert rig.conductor.seed.latest_onset is None
    daw.send(0xFC)
    assert rig.port.sounding() == set()


def test_exit_paths_release_everything():
    for how in ("stop", "exception"):
        rig = make_rig()
        rig.start()
        rig.advance(int(1.3 * rig.ns_per_bar))
        assert rig.output.sounding()
        if how == "stop":
            rig.conductor.request_stop("SIGTERM")
            assert rig.conductor.run() == 0
        else:

            def boom(*args):
                raise KeyboardInterrupt  # not an Exception: nothing survives it, notes are still released

            rig.conductor._midi = boom
            rig.inbox.put((rig.time(), 0x90, 60, 1))
            with pytest.raises(KeyboardInterrupt):
                rig.conductor.run()
        assert rig.port.sounding() == set(), how


def turn_all(rig) -> None:
    """Like ``rig.pump`` but through the loop's guarded :meth:`Conductor.turn`."""
    while True:
        try:
            item = rig.inbox.get_nowait()
        except queue.Empty:
            break
        rig.conductor.turn(item)
    rig.conductor.turn(None)
    rig.scheduler.run_due(rig.time())


def advance_guarded(rig, ns: int, step_ns: int = 5 * MS) -> None:
    end = rig.time() + ns
    while rig.time() < end:
        rig.time.step(min(step_ns, end - rig.time()))
        rig.worker.deliver_all()
        turn_all(rig)


def test_a_chord_held_into_start_with_an_early_tick_does_not_crash():
    # the DAW's Start, the first tick, and a chord whose note-ons are stamped 2 ms before that tick
    rig = make_rig(clock="midi")
    daw = Daw(rig)
    daw.send(0xFA)
    daw.ticks(1)
    for pitch in (60, 64, 67):
        rig.inbox.put((rig.time() - 2 * MS, 0x90, pitch, 90))
    rig.pump()
    daw.ticks(PPQN * 4 + 2)  # over the first bar line, chord still held: the seed is taken from it
    seed = rig.worker.requests[0].seed if rig.worker.requests else None
    assert rig.conductor.bars_played >= 1
    assert rig.conductor.seed.bar_has_notes(0)
    assert seed is None or all(n.onset >= 0 for n in seed)
    daw.send(0xFC)
    assert rig.port.sounding() == set()


def test_a_failure_in_one_item_or_bar_line_is_survived(caplog, monkeypatch):
    caplog.set_level("INFO", logger="affetto.daemon.conductor")
    rig = make_rig()
    rig.start()
    advance_guarded(rig, int(1.3 * rig.ns_per_bar))
    assert rig.output.sounding()
    # one bad item, three times: a transport event at no position
    for _ in range(3):
        rig.conductor.turn(TransportEvent(Transport.START, math.nan, rig.time()))
    assert rig.conductor.faults == 3
    assert rig.port.sounding() == set() and rig.output.sounding() == []  # released
    # one bad bar line: the controls fail once
    real = rig.conductor.controls.at_bar_line
    calls = {"n": 0}

    def flaky():
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("knob went away")
        return real()

    monkeypatch.setattr(rig.conductor.controls, "at_bar_line", flaky)
    generated = rig.conductor.bars_generated
    advance_guarded(rig, 4 * rig.ns_per_bar)
    assert rig.conductor.faults == 4 and calls["n"] > 1
    assert rig.conductor.bars_generated >= generated + 2  # the loop went on and bars came again
    firsts = first_beats_per_bar(rig)
    assert all(firsts[b] == b * BAR for b in firsts)  # still on bar lines
    faults = [r for r in caplog.records if "survived a failure" in r.getMessage()]
    assert len(faults) == 2  # once per kind: three bad results were one line
    assert faults[0].exc_info is not None
    rig.conductor.request_stop("test")
    assert rig.conductor.run() == 0
    assert rig.port.sounding() == set()


def test_port_that_disappears_does_not_stop_the_conductor():
    rig = make_rig()
    rig.start()
    rig.advance(int(1.5 * rig.ns_per_bar))
    rig.port.fail = True
    rig.advance(2 * rig.ns_per_bar)
    rig.conductor.release("test")
    assert rig.output.failed


def test_continue_mode_reprimes_from_new_seed():
    rig = make_rig(seed_bars=2)
    rig.start()
    rig.advance(int(0.2 * rig.ns_per_bar))
    beat_ns = rig.ns_per_bar // 4
    for pitch in (50, 53, 57):
        rig.inbox.put((rig.time(), 0x90, pitch, 90))
        rig.advance(beat_ns // 2)
        rig.inbox.put((rig.time(), 0x80, pitch, 0))
        rig.advance(beat_ns // 2)
    rig.advance(2 * rig.ns_per_bar)
    primed = [p for p in rig.generator.primed if p]
    assert primed, "a request carried the new seed"
    assert sorted(n.pitch for n in primed[0]) == [50, 53, 57]
    assert min(n.onset for n in primed[0]) >= 0


def test_call_response_answers_a_phrase_after_a_bar_of_silence():
    rig = make_rig(mode="call-response", seed_bars=4)
    rig.start()
    bar_ns = rig.ns_per_bar
    rig.advance(bar_ns + 10 * MS)  # bar 0 silent: nothing asked
    assert rig.generator.bars == 0
    for _ in range(2):  # the player plays bars 1 and 2
        rig.inbox.put((rig.time(), 0x90, 62, 90))
        rig.advance(bar_ns // 2)
        rig.inbox.put((rig.time(), 0x80, 62, 0))
        rig.advance(bar_ns // 2)
    rig.advance(4 * bar_ns)  # bar 3 silent, answer in bars 4 and 5, then listening again
    answered = sorted(first_beats_per_bar(rig))
    assert answered == [4, 5]
    assert rig.generator.primed[-1] and {n.pitch for n in rig.generator.primed[-1]} == {62}


def test_call_response_cancels_the_answer_when_the_player_goes_on():
    rig = make_rig(mode="call-response", seed_bars=4)
    rig.start()
    bar_ns = rig.ns_per_bar
    rig.advance(bar_ns + 10 * MS)
    rig.inbox.put((rig.time(), 0x90, 62, 90))
    rig.advance(bar_ns // 2)
    rig.inbox.put((rig.time(), 0x80, 62, 0))
    rig.advance(bar_ns // 2 + 200 * MS)  # an answer for bar 3 is being prepared
    rig.inbox.put((rig.time(), 0x90, 64, 90))  # ... but the player goes on in bar 2
    rig.advance(bar_ns // 4)
    rig.inbox.put((rig.time(), 0x80, 64, 0))
    rig.advance(2 * bar_ns)
    assert 3 not in first_beats_per_bar(rig)
    assert 4 in first_beats_per_bar(rig)  # answered after the silent bar 3


def test_status_line_every_few_bars_says_dash_until_something_is_measured(caplog):
    caplog.set_level("INFO", logger="affetto.daemon.conductor")
    rig = make_rig(status_every_bars=1)
    rig.start()
    rig.advance(int(3.5 * rig.ns_per_bar))
    lines = [r.getMessage() for r in caplog.records if " BPM | " in r.getMessage()]
    assert len(lines) >= 3
    assert "gen - |" in lines[0] and "lateness p99 -" in lines[0]  # bar 1: nothing generated or sent yet
    assert "nan" not in " ".join(lines)
    last = lines[-1]
    assert " ms | bars " in last and "generated, 0 missed" in last and last.endswith(" ms | 0 notes dropped late")



def test_ports_that_go_and_come_back_release_and_start_the_bars_over():
    rig = make_rig()
    watch = {"generation": 0, "lost": False}
    rig.conductor.port_watch = lambda: (watch["generation"], watch["lost"])
    rig.start()
    rig.advance(int(1.3 * rig.ns_per_bar))
    assert rig.output.sounding()
    # the server goes away: sends fail, nothing is played, the conductor does not stop
    rig.port.fail = True
    watch.update(generation=1, lost=True)
    rig.advance(2 * rig.ns_per_bar)
    assert rig.output.failed and not rig.conductor._stopping
    # it comes back: what was owned is released through the new connection, bars come again
    rig.port.fail = False
    watch.update(generation=2, lost=False)
    sent = len(rig.port.messages)
    rig.advance(int(0.1 * rig.ns_per_bar))
    assert not rig.output.failed
    assert [0xB0, 123, 0] in [m for _, m in rig.port.messages[sent:]]
    played = rig.conductor.bars_played
    rig.advance(2 * rig.ns_per_bar)
    assert rig.conductor.bars_played >= played + 1
    assert any(t > rig.time() - 2 * rig.ns_per_bar for t, _ in rig.port.note_ons())  # notes flow again
    rig.conductor.request_stop("test")
    rig.conductor.run()
    assert rig.port.sounding() == set()
