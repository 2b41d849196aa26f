"""Harmonise and ensemble modes: loop detection and re-learning, voices routed to the harmony channels."""

from __future__ import annotations

import queue

import pytest
from daemon_fakes import MS, make_rig

from affetto.analysis.emotion import Capsule, Quadrant, knob_value
from affetto.daemon.config import DaemonConfig
from affetto.daemon.fakes import FakeGenerator, FakeVoices
from affetto.daemon.generator import BarRequest, HarmoniseGenerator, PhraseGenerator, run_request
from affetto.daemon.generators import default_factory
from affetto.daemon.modes import Ask, Cancel
from affetto.daemon.modes.harmonise import HarmoniseMode, loop_at
from affetto.daemon.seed import SeedBuffer
from affetto.daemon.workers import make_worker
from affetto.ensemble.accompany import Band, LoopHarmoniser
from affetto.errors import ConfigError
from affetto.music.notes import Note, TimeSignature

BAR = 4.0
HAPPY, SAD = Capsule.of(Quadrant.Q1), Capsule.of(Quadrant.Q3)
# four different bars: (onset in beats, pitch, duration)
A = [(0.0, 72, 1.0), (1.0, 74, 1.0), (2.0, 76, 2.0)]
B = [(0.0, 77, 2.0), (2.0, 76, 1.0), (3.0, 74, 1.0)]
C = [(0.0, 72, 0.5), (0.5, 71, 0.5), (1.0, 69, 3.0)]
D = [(0.0, 67, 4.0)]
E = [(0.0, 79, 1.0), (1.0, 81, 1.0), (2.0, 79, 2.0)]
F = [(0.0, 65, 2.0), (2.0, 64, 2.0)]
G = [(0.0, 62, 1.0), (1.0, 64, 1.0), (2.0, 65, 1.0), (3.0, 67, 1.0)]
H = [(0.0, 60, 3.0), (3.0, 62, 1.0)]
REST: list = []


def seed_of(bars: list[list[tuple[float, int, float]]], meter: TimeSignature = TimeSignature()) -> SeedBuffer:
    seed = SeedBuffer(meter)
    length = meter.beats_per_bar
    for b, notes in enumerate(bars):
        for onset, pitch, dur in notes:
            seed.note_on(0, pitch, 90, b * length + onset)
            seed.note_off(0, pitch, b * length + onset + dur)
    return seed


def follow(bars: list, mode: HarmoniseMode | None = None) -> tuple[HarmoniseMode, dict[int, object]]:
    """Run a mode over ``bars`` played in order; {bar line: what it gave back there}."""
    mode = mode or HarmoniseMode()
    seed = seed_of(bars)
    actions = {}
    for line in range(len(bars) + 1):
        action = mode.at_bar_line(line, seed)
        if action is not None:
            actions[line] = action
    return mode, actions


# -- recognising bars and loops ---------------------------------------------------------------


def test_a_bar_repeats_within_a_step_and_a_half_of_timing_but_not_other_notes():
    def repeats(first, second):
        return HarmoniseMode().repeats(seed_of([first, second]), 1, 0, 3 * BAR)

    shifted = lambda bar, by: [(o + by, p, d) for o, p, d in bar]  # noqa: E731
    assert repeats(A, A) and repeats(A, shifted(A, 0.25)) and repeats(A, shifted(A, 0.375))  # a step, 1.5 steps
    assert not repeats(A, shifted(A, 0.5)) and not repeats(A, B)  # two steps late; other music
    assert repeats(REST, REST) and not repeats(A, REST) and not repeats(REST, A)


@pytest.mark.parametrize(
    ("bars", "expected"),
    [
        ([A, A], 1),
        ([A, B, A], 2),
        ([A, B, C, D, A], 4),
        ([A, B, C, D, E, B, C, D, A], 8),
        ([A, B, C, D], None),  # no repeat heard yet
    ],
)
def test_loop_at_finds_the_shortest_length_the_bars_repeat(bars, expected):
    seed = seed_of(bars)
    mode = HarmoniseMode()
    assert loop_at(0, len(bars) - 1, lambda a, b: mode.repeats(seed, a, b, (len(bars) + 1) * BAR)) == expected


@pytest.mark.parametrize("loop", [[A], [A, B], [A, B, C, D], [A, B, C, D, E, F, G, H]])
def test_a_loop_is_learned_on_its_first_pass_and_voiced_from_its_second(loop):
    length = len(loop)
    mode, actions = follow(loop * 3)
    asks = [a for a in actions.values() if isinstance(a, Ask)]
    assert not any(isinstance(a, Cancel) for a in actions.values())
    first = asks[0]
    # the first bar of the second pass ends at bar line length + 1: from there every next bar is asked
    assert min(actions) == length + 1 and first.bar == length + 2
    assert [a.bar for a in asks] == list(range(length + 2, 3 * length + 2))
    assert all(a.task == "harmonise" and a.loop_bars == length and a.position == a.bar for a in asks)
    assert first.join_current and not any(a.join_current for a in asks[1:])  # the bar just begun joins too
    played = sorted((n.onset, n.pitch) for n in first.seed)
    assert played == sorted((b * BAR + o, p) for b, bar in enumerate(loop) for o, p, _ in bar)
    assert mode.loop == length and mode.start == 0


def test_a_loop_starts_at_the_players_first_bar():
    mode, actions = follow([REST, REST, A, B, A, B, A])
    asks = [a for a in actions.values() if isinstance(a, Ask)]
    assert mode.start == 2 and mode.loop == 2
    assert asks[0].bar == 6 and asks[0].position == 4  # bars from the loop's first bar line


def test_a_first_guess_that_fails_is_corrected_by_the_next_bars():
    # A A B C looks like a 1-bar loop after two bars; the third bar says otherwise
    mode, actions = follow([A, A, B, C, A, A, B, C, A])
    assert actions[2] == Ask(3, actions[2].seed, "harmonise", 1, 3, True)  # the 1-bar guess
    assert isinstance(actions[3], Cancel) and actions[3].bar == 3 and actions[3].then is None
    assert mode.loop == 4 and mode.start == 0
    later = [a for line, a in actions.items() if line >= 5]
    assert [a.bar for a in later] == [6, 7, 8, 9, 10] and all(a.loop_bars == 4 for a in later)


def test_a_changed_phrase_is_relearned_at_the_next_bar_line():
    mode, actions = follow([A, B, A, B, C, D, C, D, C])
    assert isinstance(actions[5], Cancel) and actions[5].bar == 5  # bar 4 (C) did not repeat bar 2 (A)
    assert mode.relearned == 1
    assert 6 not in actions  # C D ... not yet heard twice
    assert actions[7].bar == 8 and actions[7].loop_bars == 2 and actions[7].position == 4  # new loop from bar 4
    assert {n.pitch for n in actions[7].seed} == {p for bar in (C, D) for _, p, _ in bar}


def test_when_the_player_stops_the_voices_stop_inside_the_bar():
    mode, actions = follow([A, B, A, B])  # voices asked for bar 4 at bar line 3; bar 4 is silent
    assert actions[3].bar == 4
    seed = seed_of([A, B, A, B])
    assert mode.at_bar_line(4, seed) == Ask(5, mode.phrase, "harmonise", 2, 5)
    assert mode.check(4 * BAR + 0.3, seed) is None  # the loop's first note is not overdue yet
    # 1.5 sixteenths after it was due, and nothing came: a bar of three notes may miss one
    assert mode.check(4 * BAR + 0.4, seed) is None and mode.loop == 2
    assert mode.check(4 * BAR + 1.3, seed) is None  # the second is not overdue yet
    stop = mode.check(4 * BAR + 1.4, seed)  # two notes in a row missing: the player stopped
    assert stop == Cancel(4) and mode.loop is None and mode.stopped == 1
    assert mode.check(4 * BAR + 2.0, seed) is None  # said once


def test_a_player_who_goes_on_is_not_taken_for_stopped():
    played = [A, B, A, B, A]
    mode, _ = follow(played[:4])
    seed = seed_of(played)
    mode.at_bar_line(4, seed)
    assert mode.check(4 * BAR + 0.5, seed) is None and mode.loop == 2


def test_a_changed_phrase_is_heard_inside_the_bar():
    played = [A, B, A, B, D]
    mode, _ = follow(played[:4])
    seed = seed_of(played)
    assert mode.at_bar_line(4, seed).bar == 5
    assert mode.check(4 * BAR + 0.4, seed) == Cancel(4)  # D's first note is not A's
    assert mode.relearned == 1 and mode.stopped == 0 and mode.loop is None


# tolerances: how a musician hears a loop being repeated
LATE_END = [(0.0, 72, 1.0), (1.0, 74, 1.0), (2.0, 76, 1.0), (3.75, 77, 0.25)]  # the last note on the last 16th
FOUR = [(0.0, 60, 1.0), (1.0, 64, 1.0), (2.0, 67, 1.0), (3.0, 72, 1.0)]
TWO = [(0.0, 65, 2.0), (2.0, 69, 2.0)]


def heard_through(mode: HarmoniseMode, bars: list, first_line: int, step: float = 0.125):
    """Feed ``mode`` the bar lines and checks from ``first_line`` to the end of ``bars``; the first
    Cancel and the beat it came at, or (None, None)."""
    seed = seed_of(bars)
    for line in range(first_line, len(bars) + 1):
        action = mode.at_bar_line(line, seed)
        if isinstance(action, Cancel):
            return action, line * BAR
        if line == len(bars):
            break  # nothing played after the last bar
        for k in range(int(BAR / step)):
            beat = line * BAR + k * step
            cancel = mode.check(beat, seed)
            if cancel is not None:
                return cancel, beat
    return None, None


def test_a_note_a_step_late_across_the_bar_line_still_matches():
    late = [*LATE_END[:3], (4.0, 77, 0.25)]  # the last note a sixteenth late: on the next bar's line
    mode, _ = follow([LATE_END, LATE_END])
    assert mode.loop == 1
    cancel, _ = heard_through(mode, [LATE_END, LATE_END, late, LATE_END, late, LATE_END], 2)
    assert cancel is None and mode.loop == 1 and mode.relearned == mode.stopped == 0


def test_a_note_a_step_and_a_half_early_still_matches_and_three_steps_off_gives_the_loop_up():
    early = [(0.0, 60, 1.0), (1.0, 64, 1.0), (1.625, 67, 1.0), (3.0, 72, 1.0)]  # 1.5 steps early
    mode, _ = follow([FOUR, FOUR])
    assert heard_through(mode, [FOUR, FOUR, early, FOUR], 2) == (None, None) and mode.loop == 1
    off = [(0.0, 60, 1.0), (1.75, 64, 1.0), (2.0, 67, 1.0), (3.0, 72, 1.0)]  # the second note 3 steps late
    mode, _ = follow([FOUR, FOUR])
    cancel, beat = heard_through(mode, [FOUR, FOUR, off, FOUR], 2)
    # missing where the loop had it, and stray where it came: given up once both are settled
    assert cancel == Cancel(2) and beat == pytest.approx(2 * BAR + 1.75 + 0.375)
    assert mode.loop is None and mode.relearned == 1


def test_one_missing_note_of_four_keeps_the_loop():
    for gap in range(4):
        missing = FOUR[:gap] + FOUR[gap + 1:]
        mode, _ = follow([FOUR, FOUR])
        assert heard_through(mode, [FOUR, FOUR, missing, FOUR, missing, FOUR], 2) == (None, None), gap
        assert mode.loop == 1 and mode.relearned == mode.stopped == 0
    mode, _ = follow([FOUR, FOUR])  # two of four missing gives it up
    cancel, _ = heard_through(mode, [FOUR, FOUR, FOUR[:1] + FOUR[2:3]], 2)
    assert cancel == Cancel(2) and mode.loop is None


def test_a_missing_note_of_two_gives_the_loop_up():
    mode, _ = follow([TWO, TWO])
    cancel, beat = heard_through(mode, [TWO, TWO, TWO[1:]], 2)
    assert cancel == Cancel(2) and beat == pytest.approx(2 * BAR + 0.375)  # 1.5 steps after it was due
    assert mode.loop is None and mode.stopped == 1


def test_a_loop_is_learned_with_a_note_a_step_late_across_the_bar_line():
    late = [*LATE_END[:3], (4.0, 77, 0.25)]
    mode, actions = follow([LATE_END, late, LATE_END[:3]])  # the second pass's last note lands in bar 3
    assert mode.loop == 1 and mode.start == 0 and isinstance(actions[2], Ask)


def test_each_pass_is_heard_against_the_first_not_the_one_before():
    # every pass a sixteenth later than the one before: each bar is a step from the bar before it,
    # but the third pass is two steps from the first
    drift = [[(o + 0.25 * k, p, d) for o, p, d in A] for k in range(4)]
    mode, _ = follow(drift[:2])
    assert mode.loop == 1
    cancel, _ = heard_through(mode, drift, 2)
    assert cancel == Cancel(2) and mode.loop is None


def test_a_stray_note_is_spared_in_a_busy_bar_but_not_two():
    one = [*FOUR, (1.5, 62, 0.25)]
    two = [*FOUR, (1.5, 62, 0.25), (2.5, 65, 0.25)]  # (a stray note and a missing one would be two faults too)
    mode, _ = follow([FOUR, FOUR])
    assert heard_through(mode, [FOUR, FOUR, one, FOUR], 2) == (None, None)
    cancel, _ = heard_through(mode, [FOUR, FOUR, FOUR, two], 3)
    assert cancel == Cancel(3) and mode.relearned == 1


def test_a_note_waiting_in_the_inbox_is_not_taken_for_missing():
    rig = make_rig(mode="harmonise")
    rig.start()
    rig.advance(rig.ns_per_bar // 2)
    play_loop(rig, [TWO], passes=3, first_bar=1)  # bars 1..3: the loop is followed
    assert rig.conductor.mode.loop == 1
    line = rig.conductor.clock.state.time_at(4 * BAR)
    rig.advance(line - rig.time() - MS)
    # the bar's first note arrives on time, behind a CC, and the conductor takes them from the inbox late
    rig.inbox.put((line - 2 * MS, 0xB0, 1, 64))
    rig.inbox.put((line, 0x90, 65, 90))
    rig.time.step(int(rig.ns_per_bar / BAR * 0.75))  # three sixteenths after the note was due
    rig.conductor.turn(rig.inbox.get_nowait())  # the CC: the note is still waiting
    assert rig.conductor.mode.loop == 1 and rig.conductor.mode.stopped == 0
    rig.conductor.turn(rig.inbox.get_nowait())
    assert rig.conductor.mode.loop == 1 and rig.conductor.mode.stopped == rig.conductor.mode.relearned == 0


@pytest.mark.parametrize("silent", [False, True])
def test_a_note_held_up_with_the_clock_ticks_is_not_taken_for_missing(silent):
    # a busy machine: the input port's thread runs late and holds the bar's first note and the ticks
    # around it past the note's margin; with MIDI clock, the ticks say how far the input has come.
    # A player silent in that bar (the ticks flowing) is still heard to stop.
    rig = make_rig(mode="harmonise", clock="midi")
    tick_ns = int(60e9 / 120 / 24)
    t0 = rig.time() + 10 * MS
    sends: dict[int, list] = {}
    for bar in range(4 if silent else 6):
        for onset, pitch, dur in TWO:
            sends.setdefault(round((bar * BAR + onset) * 24), []).append((0x90, pitch, 90))
            sends.setdefault(round((bar * BAR + onset + dur) * 24) - 1, []).append((0x80, pitch, 0))
    rig.inbox.put((t0 - MS, 0xFA, 0, 0))
    stall = range(round(4 * BAR * 24) - 2, round((4 * BAR + 0.75) * 24))
    held: list = []
    for k in range(round(5 * BAR * 24)):
        rig.time.step(t0 + k * tick_ns - rig.time())
        rig.worker.deliver_all()
        held += [(rig.time(), 0xF8, 0, 0)] + [(rig.time(), *m) for m in sends.get(k, [])]
        if silent or k not in stall:
            for item in held:
                rig.inbox.put(item)
            held = []
        rig.pump()
    mode = rig.conductor.mode
    if silent:
        assert mode.loop is None and mode.stopped == 1 and rig.port.sounding() == set()
    else:
        assert mode.loop == 1 and mode.stopped == mode.relearned == 0


def test_a_transport_change_forgets_the_loop():
    mode, _ = follow([A, A, A])
    assert mode.loop == 1
    mode.reset()
    assert mode.loop is None and mode.at_bar_line(1, seed_of([A, A])) is None  # one bar heard since


# -- the harmoniser behind the requests --------------------------------------------------------


def loop_notes(bars: list) -> tuple[Note, ...]:
    return tuple(Note(p, b * BAR + o, d, 90) for b, bar in enumerate(bars) for o, p, d in bar)


def test_the_harmoniser_voices_a_loop_once_per_emotion_and_repeats_it():
    voices = FakeVoices()
    harmoniser = LoopHarmoniser(voices)
    loop = loop_notes([A, B])
    first = [harmoniser.harmonise_bar(loop, 2, pos, HAPPY) for pos in range(8)]
    assert voices.calls == 1  # one 4-bar phrase (the 2-bar loop twice), looked up afterwards
    assert first[0] == first[2] == first[4] and first[1] == first[3] and first[0] != first[1]
    assert {n.channel for bar in first for n in bar} == {1, 2, 3}
    assert [n.pitch for n in first[0] if n.channel == 1] == [68, 70, 72]  # a major third under A
    sad = harmoniser.harmonise_bar(loop, 2, 0, SAD)
    assert voices.calls == 2 and [n.pitch for n in sad if n.channel == 1] == [69, 71, 73]
    with pytest.raises(ConfigError, match="1, 2, 4 or 8"):
        harmoniser.harmonise_bar(loop, 3, 0, HAPPY)


def test_an_eight_bar_loop_is_voiced_a_phrase_at_a_time():
    voices = FakeVoices()
    harmoniser = LoopHarmoniser(voices)
    loop = tuple(Note(60 + b, b * BAR, BAR, 90) for b in range(8))
    basses = []
    for pos in range(10):
        basses += [n.pitch for n in harmoniser.harmonise_bar(loop, 8, pos, HAPPY) if n.channel == 3]
        if pos == 3:
            assert voices.calls == 1  # the second phrase is voiced when its first bar is asked for
    assert voices.calls == 2
    assert basses == [36, 37, 38, 39, 40, 41, 42, 43, 36, 37]  # each bar under its own loop bar


def test_harmonise_requests_are_checked_and_served():
    loop = loop_notes([A])
    with pytest.raises(ConfigError, match="loop as its seed"):
        BarRequest(bar=3, capsule=HAPPY, task="harmonise", loop_bars=1)
    with pytest.raises(ConfigError, match="loop_bars"):
        BarRequest(bar=3, capsule=HAPPY, task="harmonise", seed=loop, loop_bars=5)
    req = BarRequest(bar=3, capsule=HAPPY, task="harmonise", seed=loop, loop_bars=1, position=3)
    result = run_request(HarmoniseGenerator(LoopHarmoniser(FakeVoices())), req)
    assert result.error is None and result.bar == 3 and {n.channel for n in result.notes} == {1, 2, 3}


def test_a_generator_serves_only_its_own_tasks():
    """The harmoniser and the lead are served the same way; each refuses the other's requests (a missed
    bar, not a dead worker)."""
    loop = loop_notes([A])
    harmonise = BarRequest(bar=3, capsule=HAPPY, task="harmonise", seed=loop, loop_bars=1, position=3, epoch=7)
    lead = PhraseGenerator(FakeGenerator())
    refused = run_request(lead, harmonise)
    assert refused.notes == [] and refused.epoch == 7
    assert refused.error is not None and "serves continue, answer, not 'harmonise'" in refused.error
    assert lead.model.bars == 0  # the model was never asked
    harmoniser = HarmoniseGenerator(LoopHarmoniser(FakeVoices()))
    refused = run_request(harmoniser, BarRequest(bar=3, capsule=HAPPY, seed=loop))
    assert refused.error is not None and "not 'continue'" in refused.error
    assert harmoniser.harmoniser.voicer.calls == 0
    answered = run_request(lead, BarRequest(bar=3, capsule=HAPPY, task="answer", seed=loop, rng_seed=5))
    assert answered.error is None and answered.notes and lead.model.primed == [list(loop)]


@pytest.mark.parametrize("host", ["thread", "process"])
def test_the_harmoniser_and_the_band_are_served_by_the_same_workers_as_the_lead(host):
    """The service's factories for harmonise and ensemble modes, run by the workers the lead runs in."""
    fake = {"model": "builtin:fake", "ensemble_model": "builtin:fake", "rng_seed": 3}
    loop = loop_notes([A, B])
    asks = {
        "harmonise": BarRequest(bar=5, capsule=SAD, task="harmonise", seed=loop, loop_bars=2, position=1),
        "ensemble": BarRequest(bar=5, capsule=HAPPY, seed=loop, rng_seed=3),
    }
    for mode, request in asks.items():
        results: queue.Queue = queue.Queue()
        with make_worker(host, default_factory(DaemonConfig(mode=mode, **fake)), results.put) as worker:
            worker.submit(request)
            result = results.get(timeout=60)
        assert result.error is None and result.bar == 5, result.error
        parts = {n.channel for n in result.notes}
        assert parts == ({1, 2, 3} if mode == "harmonise" else {0, 1, 2, 3})
        if mode == "harmonise":  # the voices under the loop's second bar, B: a minor third below, as asked
            assert [n.pitch for n in result.notes if n.channel == 1] == [p - 3 for _, p, _ in B]


def test_a_band_plays_the_lead_with_voices_under_each_bar():
    band = Band(FakeGenerator(), FakeVoices())
    band.prime([Note(60, 0.0, 1.0, 90)])
    notes = band.generate_bar(HAPPY)
    lead = [n for n in notes if n.channel == 0]
    alto = [n for n in notes if n.channel == 1]
    assert lead and [n.onset for n in alto] == [n.onset for n in lead]
    assert [n.pitch for n in alto] == [n.pitch - 4 for n in lead]


def test_a_band_redoes_the_sounding_bar_lead_and_voices_from_the_turn():
    lead = FakeGenerator()
    band = Band(lead, FakeVoices())
    band.prime([Note(60, 0.0, 1.0, 90)])
    first = band.generate_bar(HAPPY)
    band.generate_bar(HAPPY)  # the bar after it, generated ahead
    again = band.revise(2.0, Capsule.of(Quadrant.Q2), drop_bars=1)  # tense: busy, and minor
    assert lead.revisions == 1
    assert again and all(n.onset >= 2.0 for n in again)  # only the rest of the bar, from the turn
    rest = [n for n in again if n.channel == 0]
    alto = [n for n in again if n.channel == 1]
    assert rest and [n.onset for n in alto] == [n.onset for n in rest]  # voices under the new lead
    assert [n.pitch for n in alto] == [n.pitch - 3 for n in rest]  # ... in the new emotion (a minor third)
    window = band._window[-1]
    assert [n for n in window if n.onset < 2.0] == [n for n in first if n.channel == 0 and n.onset < 2.0]
    assert not hasattr(Band(object.__new__(type("NoRevise", (), {"meter": lead.meter})), FakeVoices()), "revise")


# -- the configuration ---------------------------------------------------------------------------


def test_harmony_channels_are_checked():
    assert DaemonConfig(mode="harmonise").part_channels == (0, 1, 2, 3)
    assert DaemonConfig.from_dict({"mode": "harmonise", "harmony_channels": [5, 6, 7]}).harmony_channels == (5, 6, 7)
    with pytest.raises(ConfigError, match="three different"):
        DaemonConfig(mode="harmonise", harmony_channels=(2, 2, 3))
    with pytest.raises(ConfigError, match="lead's channel 2"):
        DaemonConfig(mode="ensemble", channel=2)
    with pytest.raises(ConfigError, match="three channels"):
        DaemonConfig(harmony_channels=(2, 3))
    with pytest.raises(ConfigError, match="bars of 3 or 4"):
        DaemonConfig(mode="harmonise", meter=TimeSignature(5, 4))


# -- the conductor, on fakes -------------------------------------------------------------------


def play_loop(rig, loop: list, passes: int, *, first_bar: int = 1, channel: int = 0) -> None:
    """The player loops ``loop`` from ``first_bar``'s line for ``passes`` passes, through the inbox."""
    ns_beat = rig.ns_per_bar / BAR
    t0 = rig.time() - rig.clock.state.beat_at(rig.time()) * ns_beat  # when beat 0 was
    events = []
    for k in range(passes):
        for j, bar in enumerate(loop):
            base = (first_bar + k * len(loop) + j) * BAR
            for onset, pitch, dur in bar:
                events.append((int(t0 + (base + onset) * ns_beat), (0x90 | channel, pitch, 90)))
                events.append((int(t0 + (base + onset + dur) * ns_beat) - MS, (0x80 | channel, pitch, 0)))
    for at, msg in sorted(events):
        if at > rig.time():
            rig.advance(at - rig.time())
        rig.inbox.put((rig.time(), *msg))
        rig.pump()


def voice_ons(rig) -> list:
    return [s for s in rig.scheduler.sent_log if s.kind == 1]


def test_voices_play_under_the_repeats_on_the_harmony_channels_and_the_player_is_never_echoed():
    rig = make_rig(mode="harmonise", emotion=knob_value(Quadrant.Q1), emotion_smoothing=0.0)
    rig.start()
    rig.advance(rig.ns_per_bar // 2)
    play_loop(rig, [A, B], passes=4, first_bar=1)  # bars 1..8
    rig.advance(rig.ns_per_bar // 2)
    ons = voice_ons(rig)
    assert {s.channel for s in ons} == {1, 2, 3}  # channels 2, 3, 4 as musicians count
    bars = sorted({int(s.beat // BAR) for s in ons})
    # bar 3 (the second pass's first bar) repeats bar 1: at bar line 4 the voices join bar 4 at its
    # first note not yet due, and are asked for every bar from 5 on; bar 9's start at its line, before
    # the silence is heard
    assert bars == [4, 5, 6, 7, 8, 9]
    loop_onsets = {0: [0.0, 1.0, 2.0], 1: [0.0, 2.0, 3.0]}
    for bar in bars[:-1]:  # each voice note starts with a note of the player's loop
        alto = sorted(s.beat - bar * BAR for s in ons if int(s.beat // BAR) == bar and s.channel == 1)
        assert alto == (loop_onsets[1][1:] if bar == 4 else loop_onsets[(bar - 1) % 2])
    assert rig.conductor.bars_missed == 0 and rig.conductor.bars_generated == 7  # bars 4..9, and 10 asked at line 9
    # bar 9: its voices went out at the line and on its second beat, and were cut when the player's
    # second note did not come either (a bar of three notes may miss one)
    assert sorted({s.beat - 9 * BAR for s in ons if int(s.beat // BAR) == 9}) == [0.0, 1.0]
    assert rig.port.sounding() == set() and rig.conductor.mode.stopped == 1


def test_voices_follow_the_knob_at_bar_lines():
    rig = make_rig(mode="harmonise", emotion=knob_value(Quadrant.Q1), emotion_smoothing=0.0)
    rig.start()
    rig.advance(rig.ns_per_bar // 2)
    play_loop(rig, [A], passes=3, first_bar=1)  # bars 1..3, voices from bar 4
    rig.inbox.put((rig.time(), 0xB0, 20, knob_value(Quadrant.Q3)))
    play_loop(rig, [A], passes=3, first_bar=4)
    altos = {}
    for s in voice_ons(rig):
        if s.channel == 1 and s.beat % BAR == 0:
            altos[int(s.beat // BAR)] = s.pitch
    assert altos[4] == 72 - 4 and altos[6] == 72 - 3  # major third, then (after the knob) minor


def test_a_stopped_player_stops_the_voices_and_nothing_is_left_sounding():
    rig = make_rig(mode="harmonise")
    rig.start()
    rig.advance(rig.ns_per_bar // 2)
    play_loop(rig, [D], passes=4, first_bar=1)  # whole notes in bars 1..4; voices asked for bar 5 too
    rig.advance(rig.ns_per_bar)  # the player is silent in bar 5
    sounding_at_cut = {(s.channel) for s in voice_ons(rig) if s.beat >= 5 * BAR}
    assert rig.port.sounding() == set()  # the voices of bar 5 were cut inside it
    assert rig.conductor.mode.stopped == 1 and sounding_at_cut <= {1, 2, 3}
    rig.advance(2 * rig.ns_per_bar)
    assert not [s for s in voice_ons(rig) if s.beat >= 6 * BAR]


def test_transport_stop_releases_every_voice():
    rig = make_rig(mode="harmonise")
    rig.start()
    rig.advance(rig.ns_per_bar // 2)
    play_loop(rig, [D], passes=4, first_bar=1)
    assert rig.port.sounding()  # the voices hold under the player's whole note
    for event in rig.clock.stop(rig.time()):
        rig.conductor.process(event)
    assert rig.port.sounding() == set()
    cc123 = {m[0] & 0x0F for _, m in rig.port.messages if m[0] & 0xF0 == 0xB0 and m[1] == 123}
    assert cc123 == {1, 2, 3}


def test_ensemble_mode_plays_the_lead_on_its_channel_and_voices_on_the_harmony_channels():
    rig = make_rig(mode="ensemble", harmony_channels=[5, 6, 7])
    rig.start()
    rig.advance(4 * rig.ns_per_bar)
    ons = voice_ons(rig)
    assert {s.channel for s in ons} == {0, 4, 5, 6}
    for bar in (1, 2, 3):
        lead = sorted(s.beat for s in ons if s.channel == 0 and int(s.beat // BAR) == bar)
        alto = sorted(s.beat for s in ons if s.channel == 4 and int(s.beat // BAR) == bar)
        assert lead and alto == lead


def test_the_smoothing_steps_once_per_bar_line_however_many_bars_are_asked():
    rig = make_rig(mode="harmonise", emotion=knob_value(Quadrant.Q3), emotion_smoothing=0.5)
    rig.start()
    rig.advance(rig.ns_per_bar // 2)
    asked = []
    submit = rig.conductor.submit
    rig.conductor.submit = lambda req: (asked.append(req), submit(req))
    rig.inbox.put((rig.time(), 0xB0, 20, knob_value(Quadrant.Q1)))  # the knob turns before the loop is known
    play_loop(rig, [A, B], passes=2, first_bar=1)  # heard at one bar line: the bar begun is joined, the next asked
    joined, following = asked[:2]
    assert following.bar == joined.bar + 1
    assert joined.capsule == following.capsule  # one smoothing step for both
    happy = [r.capsule.weights[0] for r in asked]
    assert happy == sorted(happy) and 0.5 < happy[0] < 1.0  # gliding, a step per bar line, also without asks
