"""Quadrants, capsules and the knob and XY mappings."""

import pytest

from affetto.analysis.emotion import Capsule, Quadrant, cc_unit, knob_capsule, knob_value, parse_emotion, va_capsule
from affetto.errors import EmotionError


def test_quadrant_names_and_coordinates():
    assert [q.mood for q in Quadrant] == ["happy", "tense", "sad", "calm"]
    assert [(q.valence, q.arousal) for q in Quadrant] == [(1, 1), (-1, 1), (-1, -1), (1, -1)]
    assert Quadrant.from_va(0.2, -0.4) is Quadrant.Q4
    assert Quadrant.parse("SAD") is Quadrant.Q3 and Quadrant.parse("q2") is Quadrant.Q2


def test_knob_walks_sad_calm_happy_tense_with_plateaus():
    order = [knob_capsule(knob_value(q)).quadrant for q in (Quadrant.Q3, Quadrant.Q4, Quadrant.Q1, Quadrant.Q2)]
    assert order == [Quadrant.Q3, Quadrant.Q4, Quadrant.Q1, Quadrant.Q2]
    for q in Quadrant:
        assert knob_capsule(knob_value(q)).weights[int(q)] == 1.0
    # Between calm (42) and happy (85) only those two share the weight, and it moves monotonically.
    previous = 0.0
    for value in range(43, 85):
        w = knob_capsule(value).weights
        assert w[int(Quadrant.Q2)] == 0 and w[int(Quadrant.Q3)] == 0
        assert abs(sum(w) - 1) < 1e-9
        assert w[int(Quadrant.Q1)] >= previous
        previous = w[int(Quadrant.Q1)]


def test_xy_pad_corners_are_pure_and_centre_is_even():
    assert va_capsule(1, 1) == Capsule.of(Quadrant.Q1)
    assert va_capsule(-1, -1) == Capsule.of(Quadrant.Q3)
    assert va_capsule(0, 0).weights == pytest.approx((0.25, 0.25, 0.25, 0.25))
    c = va_capsule(0.3, -0.8)
    assert c.valence > 0 and c.arousal < 0 and c.quadrant is Quadrant.Q4


def test_cc_unit_and_parse():
    assert cc_unit(0) == -1 and cc_unit(127) == 1
    assert parse_emotion("calm") == Capsule.of(Quadrant.Q4)
    assert parse_emotion("0.9,0.9").quadrant is Quadrant.Q1
    assert parse_emotion("none").is_unconditioned


@pytest.mark.parametrize(
    "text, message",
    [("joyfull", "unknown mood word 'joyfull'; did you mean joyful"), ("xyzzy", "unknown mood word 'xyzzy'; try"),
     ("1.5,0", "valence must be a number in \\[-1, 1\\]"),
     ("0,x", "is not V,A"), ("0,-2", "arousal must be")],
)
def test_bad_emotions_have_clear_errors(text, message):
    with pytest.raises(EmotionError, match=message):
        parse_emotion(text)


def test_bad_values():
    with pytest.raises(EmotionError, match="knob value must be an int in range 0..127"):
        knob_capsule(128)
    with pytest.raises(EmotionError, match="4 weights"):
        Capsule((1, 0))
    with pytest.raises(EmotionError, match=">= 0"):
        Capsule((1, -1, 0, 0))
    assert isinstance(EmotionError("x"), ValueError)


def test_a_mood_in_words():
    assert parse_emotion("joyful").quadrant is Quadrant.Q1
    assert parse_emotion("melancholic").quadrant is Quadrant.Q3
    assert parse_emotion("Serene").quadrant is Quadrant.Q4
    assert parse_emotion("anxious and fast").quadrant is Quadrant.Q2
    slow, plain = parse_emotion("melancholic, slow"), parse_emotion("melancholic")
    assert slow.quadrant is Quadrant.Q3 and slow.arousal < plain.arousal  # slower, not happier
    assert slow.valence == plain.valence
    assert parse_emotion("very sad").valence <= parse_emotion("slightly sad").valence
    assert parse_emotion("bright").valence > 0 and parse_emotion("bright").arousal == 0  # colour alone


def test_mood_words_say_what_they_know():
    from affetto.analysis.lexicon import LEXICON, mood_point

    for word, (valence, arousal) in LEXICON.items():
        v, a = mood_point(word)
        assert -1 <= v <= 1 and -1 <= a <= 1
        if valence is not None and arousal is not None and abs(valence) >= 0.3 and abs(arousal) >= 0.3:
            assert parse_emotion(word).quadrant is Quadrant.from_va(valence, arousal), word
    with pytest.raises(EmotionError, match="at least one word"):
        mood_point(" , ")
