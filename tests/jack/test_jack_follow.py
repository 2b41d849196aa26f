"""Following the player through real JACK ports: call-response answers in the mood it was called in.

The DAW's client plays clock at 200 BPM with the knob at happy, and a player
who plays a soft, sparse phrase in A minor (bars 1-4: a chord every half
bar at velocity 40), is silent while affetto answers (bars 6-9), then a busy, loud
phrase in C major (bars 10-13: eighths at velocity 105), answered in bars
15-18. affetto runs ``--mode call-response --emotion-source follow`` with the
shipped lead and mood models. The answers are judged by what neither model
nor the emotion plan uses: music21's Aarden-Essen and Temperley-Kostka-Payne
key estimators, onsets per beat and velocity. The first answer must be minor
by both estimators, sparse (fewer onsets per beat than the busy answer, by a
third at least) and softer than it; the second major by at least one of them
(they disagree on about a fifth of short phrases, reading a key as its
relative; the minor answer is held to both). A second
performance, with the knob as the source, answers the same minor phrase in
major (the knob says happy; major by at least one estimator): so it is the recognised mood that is heard, not
the seed alone. Counts and keys, not timing.

What is judged is what the daemon heard. On a loaded machine (two other jobs on both cores; JACK's dummy
driver runs without realtime here) the JACK graph overruns and loses and repeats MIDI messages: in 20 loaded
runs the daemon reported lost or repeated clock ticks in every one, and in 13 of them bars of the player
reached it with notes missing or in the wrong bar (a bar of eight eighths heard as seven, a chord of three
lost, a downbeat heard in the bar before); 4 more loaded runs counted 100-253 xruns each, and the DAW's client
wrote 6-18 of its 2,038 messages a period or more late. The one loaded failure of the 10 judged before this
check was such a performance: bar 2 reached the daemon without its A minor chord, bar 11 without its last
eighth (recognised tense, valence -0.57), and the soft answer was major by Aarden-Essen. Idle, 11 performances
counted 0-6 xruns, and one of them a repeated tick. So a performance in which JACK overran ``OVERRUN`` times
or more and the daemon's clock lost or repeated ticks is not judged: the test skips, saying so.

One performance is one draw of the daemon (``rng_seed``). With the sampler of 2026-12-08 (the same
distribution, other draws for a seed) every seed of 11-18 passed idle: the soft answer minor by both
estimators in all 8 (seed 12 on its second performance: its first skipped for an overrun), the busy answer
major by both in 5 of the 7 printed and by Temperley-Kostka-Payne alone in 2 (seeds 11 and 15). Before it,
over the same seeds, the soft answer was minor by both in 7 of 8 draws with the CPU's default of 2026-12-07,
night, and 6 of 8 with the file before it. The test keeps seed 13.
"""

from __future__ import annotations

import pytest
from conftest import Daw, clock_script, running_affetto, sounding
from test_jack_daemon import affetto_ports, note_ons

from affetto.analysis.emotion import Quadrant, knob_value
from affetto.music.notes import Note
from affetto.runtime import default_model_path
from affetto.words.mood import default_mood_path

pytestmark = pytest.mark.jack

BPM = 200.0
BARS = 20
AM, DM, E7 = (57, 60, 64), (62, 65, 69), (56, 59, 62, 64)
SAD_BARS = [(AM, DM), (E7, AM), (DM, E7), (AM, AM)]  # A minor: a soft chord every half bar
BUSY_BARS = [(60, 64, 67, 72, 76, 72, 67, 64), (65, 69, 72, 77, 72, 69, 65, 69),
             (67, 71, 74, 79, 74, 71, 67, 71), (72, 67, 64, 60, 64, 67, 72, 76)]  # C F G C, eighths
SAD_FROM, BUSY_FROM = 1, 10  # the player's first bar of each phrase
SAD_ANSWER, BUSY_ANSWER = range(6, 10), range(15, 19)
OVERRUN = 20  # JACK's xruns in a performance past which its messages are not to be trusted (idle: 0-6; loaded: 100+)


def player_script(beat: float) -> list[tuple[int, bytes]]:
    script = []
    for k, bar in enumerate(SAD_BARS):
        for half, chord in enumerate(bar):
            on = 1 + int(((SAD_FROM + k) * 4.0 + 2.0 * half) * beat)
            for pitch in chord:
                script += [(on, bytes([0x90, pitch, 40])), (on + int(2 * beat) - 64, bytes([0x80, pitch, 0]))]
    for k, bar in enumerate(BUSY_BARS):
        for i, pitch in enumerate(bar):
            on = 1 + int(((BUSY_FROM + k) * 4.0 + 0.5 * i) * beat)
            script += [(on, bytes([0x90, pitch, 105])), (on + int(0.5 * beat) - 64, bytes([0x80, pitch, 0]))]
    return script


def perform(jack_server, tmp_path, name: str, source: str) -> tuple[dict[int, list[tuple[float, int, int]]], str]:
    """Bar -> [(beat in bar, pitch, velocity)] of what affetto played, and the tail of its log."""
    config = tmp_path / f"{name}.toml"
    config.write_text(f'[daemon]\nemotion = {knob_value(Quadrant.Q1)}\nrng_seed = 13\nseed_bars = 4\n'
                      f'mode = "call-response"\nemotion_source = "{source}"\n', encoding="utf-8")
    with running_affetto(name, "--clock", "midi", "--config", str(config), "--model", str(default_model_path()),
                         server=jack_server) as (proc, ready, lines):
        assert ready.wait(60), "the daemon did not get ready: " + "".join(lines)
        daw = Daw(f"daw-{name}")
        try:
            daw.connect(*affetto_ports(daw, name))
            script, per_tick = clock_script(BPM, BARS)
            beat = 24 * per_tick
            script += player_script(beat)
            script.append((int(BARS * 4 * beat), bytes([0xFC])))
            start, code = daw.perform(script, proc)
            received = list(daw.received)
            xruns = daw.xruns
        finally:
            daw.close()
    log = "".join(line for line in lines if "player sounds" in line or "WARNING" in line or "ERROR" in line)
    log += "".join(lines[-5:])
    assert code == 0 and not sounding(received), log
    if xruns >= OVERRUN and any("tick(s) lost" in line or "duplicate MIDI clock tick" in line for line in lines):
        pytest.skip(f"JACK's graph overran ({xruns} xruns) and lost or repeated MIDI messages on the way to the "
                    "daemon: the performance it heard is not the one played\n" + log)
    per_bar: dict[int, list[tuple[float, int, int]]] = {}
    for frame, msg in note_ons(received):
        beats = (frame - start - 1) / beat
        bar = int(beats // 4)
        per_bar.setdefault(bar, []).append((beats - 4 * bar, msg[1], msg[2]))
    return per_bar, log


def judged(per_bar, bars: range) -> dict:
    """music21's two keys' modes, onsets per beat and mean velocity of the answer in ``bars``."""
    from affetto.models.evaluation.listening import independent_keys

    notes = [Note(p, 4.0 * (b - bars[0]) + t, 0.5, v) for b in bars for t, p, v in per_bar.get(b, [])]
    keys = independent_keys(notes)
    onsets = len({(b, round(t * 4)) for b in bars for t, _, _ in per_bar.get(b, [])}) / (4 * len(bars))
    return {"modes": {k: (v[1] if v else None) for k, v in keys.items()}, "onsets_per_beat": onsets,
            "velocity": sum(n.velocity for n in notes) / max(len(notes), 1), "notes": len(notes)}


needs_models = pytest.mark.skipif(not default_model_path().exists() or not default_mood_path().exists(),
                                  reason="no shipped lead or mood model")


@needs_models
def test_call_response_answers_a_soft_minor_phrase_in_minor_and_a_busy_major_one_busy_and_major(jack_server, tmp_path):
    pytest.importorskip("music21")
    per_bar, log = perform(jack_server, tmp_path, "afffollow", "follow")
    sad, busy = judged(per_bar, SAD_ANSWER), judged(per_bar, BUSY_ANSWER)
    print(f"answer to the soft minor phrase: {sad}\nanswer to the busy major phrase: {busy}")
    assert sad["notes"] > 0 and busy["notes"] > 0, log
    assert set(sad["modes"].values()) == {"minor"}, (sad, log)
    # the two estimators disagree on about a fifth of short phrases (a key or its relative: README, "Following
    # the player's mood"): the busy answer, asked in major, must be major by at least one of them
    assert "major" in set(busy["modes"].values()), (busy, log)
    assert sad["onsets_per_beat"] <= busy["onsets_per_beat"] / 1.5, (sad, busy)
    assert sad["velocity"] < busy["velocity"], (sad, busy)


@needs_models
def test_with_the_knob_as_the_source_the_same_minor_phrase_is_answered_in_the_knobs_major(jack_server, tmp_path):
    pytest.importorskip("music21")
    per_bar, log = perform(jack_server, tmp_path, "affknobsrc", "knob")
    sad = judged(per_bar, SAD_ANSWER)
    print(f"answer to the soft minor phrase, knob at happy: {sad}")
    assert sad["notes"] > 0, log
    assert "major" in set(sad["modes"].values()), (sad, log)  # where following, both estimators say minor
