"""Conductor modes on their own: asked at a bar line with a given seed buffer, what do they ask?"""

from __future__ import annotations

import pytest

from affetto.daemon.config import DaemonConfig
from affetto.daemon.generator import TASKS
from affetto.daemon.generators import GENERATORS
from affetto.daemon.modes import MODES, Ask, make_mode
from affetto.daemon.modes.lead import CONTINUE_EXTRA_BARS, CallResponseMode, ContinueMode
from affetto.daemon.seed import SeedBuffer
from affetto.music.notes import TimeSignature

BAR = 4.0  # beats in a 4/4 bar


def seed_with(*bars: int) -> SeedBuffer:
    """A seed buffer with one quarter note at the start of each bar in ``bars``."""
    seed = SeedBuffer(TimeSignature())
    for bar in bars:
        seed.note_on(0, 60 + bar, 100, bar * BAR)
        seed.note_off(0, 60 + bar, bar * BAR + 1.0)
    return seed


def pitches(ask: Ask | None) -> list[int]:
    assert ask is not None and ask.seed is not None
    return [n.pitch for n in ask.seed]


def test_every_registered_mode_is_a_strategy_with_a_known_task_and_generator():
    assert MODES.names() == ["call-response", "continue", "ensemble", "harmonise", "transfer", "variation"]
    for name in MODES.names():
        mode = make_mode(DaemonConfig(mode=name))
        assert mode.name == name and mode.task in TASKS and mode.generator in GENERATORS


def test_continue_primes_first_then_goes_on_without_a_seed():
    mode = ContinueMode(prime_bars=2)
    seed = seed_with(0, 1, 2)
    first = mode.at_bar_line(3, seed)
    assert first == Ask(4, first.seed, "continue")
    assert pitches(first) == [61, 62]  # the last two complete bars, onsets from bar 1's line
    assert [n.onset for n in first.seed] == [0.0, BAR]
    assert mode.at_bar_line(4, seed) == Ask(5, None, "continue")


def test_continue_primes_again_after_new_notes_and_after_a_reset():
    mode = ContinueMode(prime_bars=4)
    seed = seed_with(0)
    assert mode.at_bar_line(1, seed).seed is not None
    assert mode.at_bar_line(2, seed).seed is None
    seed.note_on(0, 70, 90, 2 * BAR + 0.5)
    assert pitches(mode.at_bar_line(3, seed)) == [60, 70]  # held note cut at the bar line
    assert mode.at_bar_line(4, seed).seed is None
    mode.reset()
    assert mode.at_bar_line(5, seed).seed is not None


def test_continue_from_an_empty_seed_primes_with_nothing():
    mode = ContinueMode(prime_bars=4)
    assert mode.at_bar_line(0, SeedBuffer(TimeSignature())) == Ask(1, (), "continue")


def test_call_response_waits_for_a_bar_of_silence_then_answers_the_phrase():
    mode = CallResponseMode(phrase_bars=4, bar_beats=BAR)
    assert mode.at_bar_line(0, seed_with()) is None  # nothing played yet
    seed = seed_with(1, 2)
    assert mode.at_bar_line(1, seed_with()) is None
    ask = mode.at_bar_line(3, seed)  # bar 2 had notes, bar 3 starts: answer bars 1..2
    assert ask is not None and ask.bar == 4 and ask.task == "answer"
    assert pitches(ask) == [61, 62]
    assert mode.at_bar_line(4, seed) == Ask(5, None, "answer")  # the answer's second bar
    assert mode.at_bar_line(5, seed) is None  # its last bar is playing
    assert mode.at_bar_line(6, seed_with()) is None  # listening again, nothing new


def test_call_response_phrase_is_at_most_phrase_bars_long():
    mode = CallResponseMode(phrase_bars=2, bar_beats=BAR)
    assert pitches(mode.at_bar_line(4, seed_with(0, 1, 2, 3))) == [62, 63]


def test_a_note_before_the_answer_starts_cancels_it_and_one_after_does_not():
    mode = CallResponseMode(phrase_bars=4, bar_beats=BAR)
    seed = seed_with(0)
    assert mode.at_bar_line(1, seed) is not None  # answer asked for bar 2
    assert mode.on_note(2 * BAR + 0.5) is None  # the answer is playing: the note is the next call
    mode.reset()
    assert mode.at_bar_line(1, seed) is not None
    assert mode.on_note(1 * BAR + 3.0) == 2  # still in the silent bar: cancelled from bar 2
    assert mode.answer is None
    assert mode.on_note(1 * BAR + 3.5) is None  # nothing left to cancel


def test_continue_ignores_notes():
    assert ContinueMode(prime_bars=2).on_note(1.0) is None


def test_make_mode_reads_its_sizes_from_the_config():
    mode = make_mode(DaemonConfig(mode="continue", seed_bars=3))
    assert isinstance(mode, ContinueMode) and mode.prime_bars == 3 + CONTINUE_EXTRA_BARS
    answer = make_mode(DaemonConfig(mode="call-response", seed_bars=3, meter=TimeSignature(3, 4)))
    assert isinstance(answer, CallResponseMode) and answer.phrase_bars == 3
    assert answer.bar_beats == pytest.approx(3.0)
