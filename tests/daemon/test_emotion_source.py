"""Where the emotion comes from: the knob, or the player's mood (follow, contrast, blend), on a fake recogniser."""

from __future__ import annotations

import pytest
from daemon_fakes import MS

from affetto.analysis.emotion import Quadrant, knob_capsule, knob_value
from affetto.daemon.config import DaemonConfig
from affetto.daemon.controls import Settings
from affetto.daemon.emotion_source import EmotionSource
from affetto.daemon.seed import SeedBuffer
from affetto.errors import ConfigError
from affetto.music.notes import Note, TimeSignature
from affetto.runtime.sampling import NO_OVERRIDES
from affetto.words.mood import Mood

BAR = 4.0
MAJOR = (60, 64, 67, 72)  # C E G C: a major third above the lowest note


class FakeRecogniser:
    """Valence from the thirds above the lowest note (more major: +0.8, more minor: -0.8, else 0.2, unclear);
    arousal from notes per bar (8 or more: +0.8, else -0.8). Records what it heard."""

    def __init__(self) -> None:
        self.heard: list[list[Note]] = []

    def __call__(self, notes, meter) -> Mood:
        self.heard.append(list(notes))
        low = min(n.pitch for n in notes)
        minor = sum((n.pitch - low) % 12 == 3 for n in notes)
        major = sum((n.pitch - low) % 12 == 4 for n in notes)
        valence = 0.8 if major > minor else -0.8 if minor > major else 0.2
        bars = int(max(n.onset for n in notes) // BAR) + 1
        arousal = 0.8 if len(notes) >= 8 * bars else -0.8
        q = Quadrant.from_va(valence, arousal)
        return Mood(q.name, 0.9, valence, arousal, notes=len(notes), bars=1)


def play(seed: SeedBuffer, bar: int, pitches: tuple[int, ...], count: int, velocity: int = 60) -> None:
    """``count`` notes in bar ``bar``, cycling through ``pitches``, evenly spaced."""
    step = BAR / count
    for i in range(count):
        beat = bar * BAR + i * step
        pitch = pitches[i % len(pitches)]
        seed.note_on(0, pitch, velocity, beat)
        seed.note_off(0, pitch, beat + step * 0.9)


def settings(knob: Quadrant) -> Settings:
    return Settings(knob_capsule(knob_value(knob)), NO_OVERRIDES)


def sad_minor(seed, bar):  # 4 notes over A: A C E A (minor third above the lowest)
    play(seed, bar, (57, 60, 64, 69), 4)


def busy_major(seed, bar):  # 12 notes over C: C E G C
    play(seed, bar, MAJOR, 12)


def test_the_knob_source_passes_the_knobs_settings_and_recognises_nothing():
    fake = FakeRecogniser()
    source = EmotionSource("knob", TimeSignature(), recognise=fake)
    seed = SeedBuffer(TimeSignature())
    sad_minor(seed, 0)
    given = settings(Quadrant.Q1)
    assert source.at_bar_line(1, seed, given) is given
    assert fake.heard == [] and source.hears_knob


def test_follow_takes_the_players_mood_from_the_bar_that_ended_and_smooths_a_change():
    fake = FakeRecogniser()
    source = EmotionSource("follow", TimeSignature(), smoothing=0.3, recognise=fake)
    seed = SeedBuffer(TimeSignature())
    happy = settings(Quadrant.Q1)
    assert source.at_bar_line(0, seed, happy).capsule == happy.capsule  # nothing played: the knob rules
    sad_minor(seed, 0)
    out = source.at_bar_line(1, seed, happy)
    assert out.capsule.quadrant is Quadrant.Q3 and out.capsule.weights[2] == pytest.approx(1.0)
    assert [n.pitch for n in fake.heard[-1]] == [57, 60, 64, 69]  # only bar 0, onsets from its line
    busy_major(seed, 1)
    out = source.at_bar_line(2, seed, happy)
    # one smoothing step: 0.3 * (-0.8) + 0.7 * 0.8 = 0.32 on both axes, past the plan's mode threshold
    assert out.capsule.quadrant is Quadrant.Q1
    assert out.capsule.valence == pytest.approx(0.64) and out.capsule.arousal == pytest.approx(0.64)
    assert len(fake.heard[-1]) == 12  # bar 1 alone: the change is heard at the first bar line after it
    held = source.at_bar_line(3, seed, happy)  # bar 2 was silent: the point stays
    assert held.capsule == out.capsule and len(fake.heard) == 2
    assert not source.hears_knob and source.last_ms >= 0 and source.recognised == 2


def test_a_bar_that_does_not_turn_the_mood_over_is_heard_with_the_phrase_it_continues():
    fake = FakeRecogniser()
    source = EmotionSource("follow", TimeSignature(), smoothing=0.0, recognise=fake)
    seed = SeedBuffer(TimeSignature())
    sad_minor(seed, 0)
    source.at_bar_line(1, seed, settings(Quadrant.Q1))
    play(seed, 1, (57, 64), 4)  # A and E only: no third, no mode of its own
    out = source.at_bar_line(2, seed, settings(Quadrant.Q1))
    assert [len(h) for h in fake.heard] == [4, 4, 8]  # bar 0; bar 1 alone, then with bar 0 (its phrase)
    assert out.capsule.quadrant is Quadrant.Q3  # minor, from bar 0's C over A
    for bar in range(2, 6):
        sad_minor(seed, bar)
        source.at_bar_line(bar + 1, seed, settings(Quadrant.Q1))
    assert len(fake.heard[-1]) == 16 and source.since == 0  # the phrase goes on; at most 4 bars are heard


def test_a_bar_that_turns_the_mood_over_starts_a_new_phrase_and_a_silent_bar_ends_one():
    fake = FakeRecogniser()
    source = EmotionSource("follow", TimeSignature(), smoothing=0.0, recognise=fake)
    seed = SeedBuffer(TimeSignature())
    sad_minor(seed, 0)
    sad_minor(seed, 1)
    source.at_bar_line(1, seed, settings(Quadrant.Q1))
    source.at_bar_line(2, seed, settings(Quadrant.Q1))
    busy_major(seed, 2)
    out = source.at_bar_line(3, seed, settings(Quadrant.Q1))
    assert len(fake.heard[-1]) == 12 and source.since == 2  # heard alone: the old bars would only blur it
    assert len(seed.phrase(0, 3)) == 12  # the old phrase is forgotten: a mode primes from the new one alone
    assert out.capsule.quadrant is Quadrant.Q1
    source.at_bar_line(4, seed, settings(Quadrant.Q1))  # bar 3 is silent
    assert source.since is None and out.capsule == source.apply(settings(Quadrant.Q3)).capsule  # held


def test_contrast_turns_the_valence_over_and_keeps_the_arousal():
    source = EmotionSource("contrast", TimeSignature(), smoothing=0.0, recognise=FakeRecogniser())
    seed = SeedBuffer(TimeSignature())
    sad_minor(seed, 0)
    assert source.at_bar_line(1, seed, settings(Quadrant.Q1)).capsule.quadrant is Quadrant.Q4  # sad -> calm
    play(seed, 1, (57, 60, 64, 69), 12)  # busy minor: tense
    assert source.at_bar_line(2, seed, settings(Quadrant.Q1)).capsule.quadrant is Quadrant.Q1  # tense -> happy
    busy_major(seed, 2)
    busy_major(seed, 3)  # a change of mode alone is taken at its second bar
    source.at_bar_line(3, seed, settings(Quadrant.Q1))
    assert source.at_bar_line(4, seed, settings(Quadrant.Q1)).capsule.quadrant is Quadrant.Q2  # happy -> tense


def test_blend_offsets_the_players_mood_by_the_knob():
    source = EmotionSource("blend", TimeSignature(), smoothing=0.0, recognise=FakeRecogniser())
    seed = SeedBuffer(TimeSignature())
    sad_minor(seed, 0)
    brightened = source.at_bar_line(1, seed, settings(Quadrant.Q1)).capsule
    # (-0.8, -0.8) + 0.5 * (1, 1): a little below neutral on both axes, no longer pure sad
    assert brightened.valence == pytest.approx(-0.6) and brightened.arousal == pytest.approx(-0.6)
    darkened = source.apply(settings(Quadrant.Q3)).capsule  # the knob turned to sad: no new recognition
    assert darkened.quadrant is Quadrant.Q3 and darkened.weights[2] == pytest.approx(1.0)
    assert source.hears_knob


def test_a_transport_start_forgets_the_player():
    source = EmotionSource("follow", TimeSignature(), recognise=FakeRecogniser())
    seed = SeedBuffer(TimeSignature())
    sad_minor(seed, 0)
    source.at_bar_line(1, seed, settings(Quadrant.Q1))
    source.reset()
    assert source.apply(settings(Quadrant.Q1)).capsule.quadrant is Quadrant.Q1


def test_a_change_of_mode_alone_needs_two_bars_and_one_major_bar_in_a_minor_phrase_starts_nothing():
    fake = FakeRecogniser()
    source = EmotionSource("follow", TimeSignature(), smoothing=0.0, recognise=fake)
    seed = SeedBuffer(TimeSignature())
    a_major = (57, 61, 64, 69)
    for bar, pitches in enumerate([(57, 60, 64, 69), (57, 60, 64, 69), a_major, (57, 60, 64, 69)]):
        play(seed, bar, pitches, 4)  # soft throughout: A minor, A minor, A major (a dominant's colour), A minor
        source.at_bar_line(bar + 1, seed, settings(Quadrant.Q1))
        assert source.since == 0, bar  # the major bar is heard with its phrase; nothing starts
    assert len(seed.phrase(0, 4)) == 16 and len(fake.heard[-1]) == 16
    play(seed, 4, a_major, 4)
    play(seed, 5, a_major, 4)
    source.at_bar_line(5, seed, settings(Quadrant.Q1))
    assert source.since == 0 and source.turning == (4, 0.8)  # one clear bar: heard with the phrase, awaiting the next
    out = source.at_bar_line(6, seed, settings(Quadrant.Q1))
    assert source.since == 4 and len(seed.phrase(0, 6)) == 8  # two: a new phrase from the first of them
    assert len(fake.heard[-1]) == 8 and out.capsule.quadrant is Quadrant.Q4  # soft major: calm


def test_harmonise_keeps_its_loop_whatever_the_moods_of_its_bars():
    config = DaemonConfig(mode="harmonise", emotion_source="follow", model="builtin:fake",
                          ensemble_model="builtin:fake")
    assert not EmotionSource.from_config(config).forget
    assert EmotionSource.from_config(DaemonConfig(emotion_source="knob")).forget  # continue: primes may forget
    source = EmotionSource("follow", TimeSignature(), smoothing=0.0, recognise=FakeRecogniser(), forget=False)
    seed = SeedBuffer(TimeSignature())
    sad_minor(seed, 0)
    source.at_bar_line(1, seed, settings(Quadrant.Q1))
    busy_major(seed, 1)
    source.at_bar_line(2, seed, settings(Quadrant.Q1))
    assert source.since == 1 and len(seed.phrase(0, 2)) == 16  # a new phrase, but nothing forgotten


def test_the_config_and_the_source_check_the_name():
    assert DaemonConfig().emotion_source == "knob"
    assert DaemonConfig(emotion_source="contrast").emotion_source == "contrast"
    with pytest.raises(ConfigError, match="emotion_source must be one of knob, follow, contrast, blend"):
        DaemonConfig(emotion_source="mirror")
    with pytest.raises(ConfigError, match="emotion_source"):
        EmotionSource("mirror", TimeSignature())


def test_the_config_file_and_the_command_line_set_it(tmp_path):
    from affetto.daemon import cli

    path = tmp_path / "studio.toml"
    path.write_text('[daemon]\nemotion_source = "blend"\n', encoding="utf-8")
    assert DaemonConfig.load(path).emotion_source == "blend"
    ctx = cli.run.make_context("run", ["--config", str(path), "--emotion-source", "follow"])  # parsed, not run
    assert ctx.params["emotion_source"] == "follow"
    options = {k: v for k, v in ctx.params.items() if k not in ("config_path", "verbose")}
    assert DaemonConfig.load(path).replace(**options).emotion_source == "follow"  # the option over the file


# ---- through the conductor, on fakes -----------------------------------------------------------------
@pytest.fixture
def fake_recogniser(monkeypatch):
    fake = FakeRecogniser()
    monkeypatch.setattr("affetto.words.mood.shipped_recogniser", lambda: fake)
    return fake


def test_call_response_answers_in_the_players_mood_when_following(rig_factory, fake_recogniser):
    asked = []
    rig = rig_factory(mode="call-response", emotion=knob_value(Quadrant.Q1), emotion_source="follow",
                      seed_bars=1, emotion_smoothing=0.3)
    submit = rig.conductor.submit
    rig.conductor.submit = lambda req: (asked.append(req), submit(req))
    rig.start()
    beat = rig.ns_per_bar // 4
    origin = rig.conductor.clock.state.time_at(0)

    def at(bar: float) -> None:
        rig.advance(origin + int(bar * rig.ns_per_bar) - rig.time())

    def note(pitch: int, velocity: int) -> None:
        rig.inbox.put((rig.time(), 0x90, pitch, velocity))
        rig.advance(beat // 4)
        rig.inbox.put((rig.time(), 0x80, pitch, 0))

    at(1.05)
    for p in (57, 60, 64, 69):  # bar 1: soft, sparse, minor
        note(p, 40)
        rig.advance(beat - beat // 4)
    at(3.5)  # the answer to the sad phrase plays: the status page shows the mood followed, not the knob
    assert rig.conductor.board.current.capsule.quadrant is Quadrant.Q3
    assert rig.conductor.controls.capsule.quadrant is Quadrant.Q1
    at(5.02)
    for p in (60, 64, 67, 72) * 3:  # bar 5: busy major
        note(p, 100)
        rig.advance(rig.ns_per_bar // 12 - beat // 4)
    at(7.5)
    answers = {r.bar: r.capsule for r in asked if r.task == "answer"}
    assert answers[3].quadrant is Quadrant.Q3, answers  # asked at bar 2's line: bar 1 heard, minor and sparse
    assert answers[7].quadrant is Quadrant.Q1, answers  # the busy major bar: one smoothing step, major
    assert len(fake_recogniser.heard) == 2  # bars 1 and 5 (the silent bars are not recognised)


def test_the_knob_turn_asks_nothing_again_when_following(rig_factory, fake_recogniser):
    rig = rig_factory(emotion=knob_value(Quadrant.Q1), emotion_source="follow", emotion_smoothing=0.0)
    rig.start()
    rig.advance(2 * rig.ns_per_bar)
    before = rig.conductor.asked.turned_at
    rig.inbox.put((rig.time(), 0xB0, 20, knob_value(Quadrant.Q3)))
    rig.advance(rig.ns_per_bar // 2)
    assert rig.conductor.asked.turned_at == before  # nothing asked again: the knob is not what it hears


@pytest.mark.parametrize("clock", ["internal", "midi"])
def test_the_bar_line_hears_the_notes_still_waiting_in_the_inbox(rig_factory, fake_recogniser, clock):
    # a busy machine: bar 1's last notes (and, with MIDI clock, the ticks around them) arrived before its
    # line, but the conductor takes them from the inbox after it. The line waits for them: the bar is
    # heard whole, as an idle machine hears it.
    rig = rig_factory(mode="call-response", emotion_source="follow", seed_bars=1, emotion_smoothing=0.0, clock=clock)
    tick = int(60e9 / rig.config.bpm / 24)
    origin = rig.time() + 10 * MS  # beat 0
    events = []  # (arrival, message)
    if clock == "midi":
        events += [(origin - MS, (0xFA, 0, 0))] + [(origin + k * tick, (0xF8, 0, 0)) for k in range(24 * 12)]
    else:
        rig.start()
        origin = rig.conductor.clock.state.time_at(0)
    pitches = (60, 64, 67, 72, 76, 72, 67, 64)  # bar 1: eighths, C major
    for i, pitch in enumerate(pitches):
        on = origin + (4 * 24 + 12 * i) * tick
        events += [(on, (0x90, pitch, 100)), (on + 6 * tick, (0x80, pitch, 0))]
    events.sort()
    line = origin + 8 * 24 * tick
    held_from = origin + (4 * 24 + 12 * 6) * tick - MS  # from the seventh note on, the input waits
    held = [(t, m) for t, m in events if held_from <= t < line + 40 * MS]
    for t, message in events:
        if t >= held_from:
            break
        rig.time.step(t - rig.time())
        rig.inbox.put((t, *message))
        rig.pump()
    rig.time.step(line + 40 * MS - rig.time())  # the conductor wakes past the line, the input still waiting
    for t, message in held:
        rig.inbox.put((t, *message))
    while not rig.inbox.empty():
        rig.conductor.turn(rig.inbox.get_nowait())
    assert fake_recogniser.heard, "bar 1 was not heard at its line"
    assert [n.pitch for n in fake_recogniser.heard[0]] == list(pitches)
