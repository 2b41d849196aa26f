"""The knob is heard through real JACK ports: a turn from happy to sad and back moves onsets or loudness.

The DAW's client plays clock at 200 BPM and a 2-bar seed of broken chords in
eighths; the knob (CC 20) stays at happy until bar 8, goes to sad, and back
to happy at bar 14. affetto continues the seed with the shipped model, at the
default smoothing. The sad bars (10-13: two bar lines after the turn, the
lookahead and the smoothing) must carry at most 0.7x the onsets or 0.75x the
velocity of the happy bars before the turn (4-7), and the happy bars after the
turn back (16-19) the reverse. Counts, not timing: this holds under load.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import Daw, clock_script, running_affetto, sounding
from test_jack_daemon import affetto_ports, note_ons

from affetto.analysis.emotion import Quadrant, knob_value
from affetto.runtime import default_model_path

pytestmark = pytest.mark.jack

BPM = 200.0
BARS = 20
CHORDS = [(60, 64, 67, 72), (57, 60, 64, 69), (53, 57, 60, 65), (55, 59, 62, 67)]
TURNS = {8: knob_value(Quadrant.Q3), 14: knob_value(Quadrant.Q1)}  # bar -> knob value


@pytest.mark.skipif(not default_model_path().exists(), reason="no shipped model")
def test_a_knob_turn_is_heard_in_onsets_or_velocity(jack_server, tmp_path):
    name = "affknob"
    config = tmp_path / "studio.toml"
    config.write_text(f"[daemon]\nemotion = {knob_value(Quadrant.Q1)}\nrng_seed = 5\n", encoding="utf-8")
    with running_affetto(name, "--clock", "midi", "--config", str(config), "--model", str(default_model_path()),
                         server=jack_server) as (proc, ready, lines):
        assert ready.wait(60), "the daemon did not get ready: " + "".join(lines)
        daw = Daw(f"daw-{name}")
        try:
            daw.connect(*affetto_ports(daw, name))
            script, per_tick = clock_script(BPM, BARS)
            beat = 24 * per_tick
            for half, chord in enumerate(CHORDS):  # bars 0 and 1: a broken chord every half bar
                for i, pitch in enumerate(chord):
                    at = 1 + int((half * 2 + i * 0.5) * beat)
                    script += [(at, bytes([0x90, pitch, 80])), (at + int(0.5 * beat) - 64, bytes([0x80, pitch, 0]))]
            for bar, value in TURNS.items():
                script.append((1 + int(bar * 4 * beat) - int(beat), bytes([0xB0, 20, value])))  # a beat before
            script.append((int(BARS * 4 * beat), bytes([0xFC])))
            start, code = daw.perform(script, proc)
            received = list(daw.received)
        finally:
            daw.close()
    assert code == 0 and not sounding(received)
    bar_frames = 4 * beat
    per_bar: dict[int, list[int]] = {}
    for frame, msg in note_ons(received):
        per_bar.setdefault(int((frame - start - 1) // bar_frames), []).append(msg[2])

    def figures(bars: range) -> tuple[float, float]:
        onsets = [len(per_bar.get(b, [])) for b in bars]
        velocities = [v for b in bars for v in per_bar.get(b, [])]
        return float(np.mean(onsets)), float(np.mean(velocities)) if velocities else 0.0

    happy, sad, again = figures(range(4, 8)), figures(range(10, 14)), figures(range(16, 20))
    log = "".join(lines)[-2000:]
    print(f"notes per bar, mean velocity: happy {happy}, sad {sad}, happy again {again}")
    assert happy[0] > 0 and again[0] > 0, log
    assert sad[0] <= 0.7 * happy[0] or sad[1] <= 0.75 * happy[1], (happy, sad, log)
    assert sad[0] <= 0.7 * again[0] or sad[1] <= 0.75 * again[1], (sad, again, log)
