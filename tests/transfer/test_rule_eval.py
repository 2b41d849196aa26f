"""``affetto eval-transfer``'s measures on phrases built here, and the rule measured by music21's ears."""

from __future__ import annotations

import math

import pytest

from affetto.music.notes import Note, TimeSignature
from affetto.transfer.rule import RuleTransfer

ev = pytest.importorskip("affetto.models.evaluation.transfer")
FOUR = TimeSignature(4, 4)


def line(pitches, step=1.0):
    return [Note(p, i * step, step) for i, p in enumerate(pitches)]


def test_onset_f1_counts_matched_onsets_once_within_the_tolerance():
    src = line([60, 62, 64, 65])
    assert ev.onset_f1(src, src) == 1.0
    assert ev.onset_f1(src, [Note(n.pitch, n.onset + 0.1, 1.0) for n in src]) == 1.0  # within a 32nd
    assert ev.onset_f1(src, [Note(n.pitch, n.onset + 0.5, 0.5) for n in src]) == 0.0
    doubled = [*src, *(Note(n.pitch, n.onset + 0.5, 0.5) for n in src)]
    assert ev.onset_f1(src, doubled) == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    assert ev.onset_f1(src, src[:2]) == pytest.approx(2 * 1.0 * 0.5 / 1.5)


def test_contour_follows_the_top_line_not_the_key():
    up = line([60, 62, 64, 65, 67, 69, 71, 72])
    assert ev.contour_correlation(up, [Note(n.pitch - 3, n.onset, n.duration) for n in up], 8) == pytest.approx(1.0)
    down = line([132 - n.pitch for n in up])  # the mirror image
    assert ev.contour_correlation(up, down, 8) == pytest.approx(-1.0)
    assert math.isnan(ev.contour_correlation(up, line([60] * 8), 8))
    bass = [Note(36, 0, 8)]  # a low note under the line does not change its top line
    assert ev.contour_correlation(up, [*up, *bass], 8) == pytest.approx(1.0)


def test_windows_are_whole_phrases_with_notes_at_both_ends():
    notes = line(range(60, 84), step=0.5)  # 12 beats: 3 bars of 4/4
    found = ev.windows(notes, FOUR, 1, "x")
    assert [p.name for p in found] == ["x@0", "x@1", "x@2"]
    assert all(0 <= n.onset < 4 for p in found for n in p.notes)
    assert ev.windows(notes, FOUR, 4, "x") == []  # no note in a 4th bar


def test_the_rule_is_measured_side_by_side_with_music21s_ears():
    pytest.importorskip("music21")
    phrases = ev.outside_phrases(4)[:4]
    cfg = ev.TransferEvalConfig(corpus=False)
    result = ev.evaluate(phrases, {"rule": RuleTransfer()}, cfg)["rule"]
    assert result["onset_f1"]["n"] == 4 * len(phrases)
    assert 0.0 <= result["flips"]["aarden_essen"]["asked"]["share"] <= 1.0
    assert result["flips"]["aarden_essen"]["all_targets"]["n"] == 4 * len(phrases)
    assert result["arousal"]["louder"]["share"] == 1.0  # the rule scales velocity with arousal
    text = ev.markdown({"config": {"strength": 1.0, "phrase_bars": 4}, "material": {"seeds": {"phrases": 4}},
                        "results": {"seeds": {"rule": result}}})
    assert "| rule |" in text and "flips AE" in text
