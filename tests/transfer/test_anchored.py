"""Anchored decoding: every source note kept, re-pitched by the decoder within a radius (torch-free)."""

from __future__ import annotations

import numpy as np
import pytest

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.music.notes import Note, TimeSignature
from affetto.transfer.model import PITCH_MIN, PITCHES, CvaeTransfer, anchored_steps, steps_of


def roll(bars: int = 1, steps: int = 16, floor: float = 0.01) -> np.ndarray:
    return np.full((bars, steps, 2, PITCHES), floor, np.float32)


def cell(probs: np.ndarray, step: int, pitch: int, p: float) -> None:
    steps = probs.shape[1]
    probs[step // steps, step % steps, 0, pitch - PITCH_MIN] = p


def test_each_note_goes_to_the_likeliest_neighbour_and_keeps_its_onset_and_length():
    source = np.array([[0, 4, 64, 80], [4, 2, 67, 80], [8, 8, 71, 80]])
    probs = roll()
    cell(probs, 0, 63, 0.9)  # E -> E flat
    cell(probs, 0, 64, 0.3)
    cell(probs, 4, 67, 0.6)  # G stays: its own pitch is the likeliest
    cell(probs, 4, 68, 0.2)
    cell(probs, 8, 70, 0.7)  # B -> B flat ...
    cell(probs, 8, 73, 0.99)  # ... whatever lies beyond the radius
    out = anchored_steps(source, probs, radius=1, bias=0.0)
    assert out[:, 2].tolist() == [63, 67, 70]
    assert out[:, :2].tolist() == source[:, :2].tolist()
    assert anchored_steps(source, probs, radius=2, bias=0.0)[2, 2] == 73


def test_the_bias_keeps_the_players_note_where_the_decoder_is_nearly_undecided():
    source = np.array([[0, 4, 64, 80]])
    probs = roll()
    cell(probs, 0, 63, 0.55)
    cell(probs, 0, 64, 0.5)
    assert anchored_steps(source, probs, radius=1, bias=0.0)[0, 2] == 63
    assert anchored_steps(source, probs, radius=1, bias=1.0)[0, 2] == 64


def test_what_the_emotion_changes_moves_a_note_past_the_bias_and_a_slip_in_both_conditions_does_not():
    source = np.array([[0, 4, 64, 80], [4, 4, 67, 80]])
    asked, base = roll(), roll()  # the asked condition's decode, and the same z under the source's own
    cell(asked, 0, 63, 0.7)  # E: the asked mode wants E flat, the source's own condition wanted E
    cell(asked, 0, 64, 0.3)
    cell(base, 0, 63, 0.05)
    cell(base, 0, 64, 0.9)
    for roll_ in (asked, base):  # G: the decoder writes A flat whatever it is asked (a slip)
        cell(roll_, 4, 68, 0.8)
        cell(roll_, 4, 67, 0.4)
    assert anchored_steps(source, asked, radius=1, bias=0.0)[:, 2].tolist() == [63, 68]  # both move
    assert anchored_steps(source, asked, radius=1, bias=5.0)[:, 2].tolist() == [64, 67]  # neither
    assert anchored_steps(source, asked, radius=1, bias=5.0, baseline=base,
                          contrast=1.5)[:, 2].tolist() == [63, 67]  # the emotion's move only


def test_notes_struck_together_never_land_on_one_pitch_and_the_top_chooses_first():
    source = np.array([[0, 4, 64, 80], [0, 4, 65, 80], [2, 1, 60, 80]])
    probs = roll()
    cell(probs, 0, 64, 0.95)  # both E and F would take E: F (the top) gets it, E goes to its next best
    cell(probs, 0, 63, 0.4)
    out = anchored_steps(source, probs, radius=1, bias=0.0)
    assert out[1, 2] == 64 and out[0, 2] == 63
    assert len({(o, p) for o, _, p in out.tolist()}) == len(out)


def test_the_shift_and_the_register_are_the_sources():
    """The roll is lowered by ``shift`` and folded into 88 keys; the output moves the source's own pitch."""
    source = np.array([[0, 2, 62 + 5, 80], [1, 2, 118, 80]])  # the second folds down an octave in the roll
    probs = roll()
    cell(probs, 0, 61, 0.9)  # in the roll (lowered by 5): 62 -> 61, so 67 -> 66
    cell(probs, 1, 118 - 5 - 12 + 1, 0.9)  # folded cell one up: the source's 118 goes to 119
    out = anchored_steps(source, probs, shift=5, radius=1, bias=0.0)
    assert out[:, 2].tolist() == [66, 119]


def test_the_shipped_model_keeps_a_two_hand_phrase_and_moves_its_major_third_down_for_sad():
    from affetto.runtime.assets import asset_path

    if not asset_path("affetto-transfer.onnx").exists():
        pytest.skip("no transfer model shipped in this checkout")
    model = CvaeTransfer()
    assert model.settings.anchor == 1  # what the shipped manifest asks for
    source = []
    for bar in range(4):  # C major: held chords in the left hand, a line through E and A above
        t = 4.0 * bar
        source += [Note(p, t, 4.0, 60, channel=1) for p in (48, 55, 64)]
        source += [Note(p, t + i, 1.0, 80) for i, p in enumerate((72, 76, 79, 81 if bar % 2 else 76))]
    out = model.transfer(source, TimeSignature(4, 4), Capsule.of(Quadrant.Q3))
    src, made = steps_of(sorted(source, key=lambda n: (n.onset, -n.pitch))), steps_of(
        sorted(out, key=lambda n: (n.onset, -n.pitch)))
    assert len(made) == len(src)
    assert (made[:, :2] == src[:, :2]).all()  # every onset and length kept
    assert np.abs(made[:, 2] - src[:, 2]).max() <= 1
    thirds = src[:, 2] % 12 == 4
    assert (made[thirds, 2] == src[thirds, 2] - 1).mean() >= 0.5  # E heard as E flat
    tonics = src[:, 2] % 12 == 0
    assert (made[tonics, 2] == src[tonics, 2]).all()  # C stays C
