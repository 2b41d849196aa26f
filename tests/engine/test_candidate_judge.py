"""The candidate judge: with a key in the bar's header, the asked key must be heard, not its relative."""

import numpy as np

from affetto.analysis.judge import JudgeConfig
from affetto.music.notes import Note, TimeSignature
from affetto.runtime.policies import CandidateJudge
from affetto.tokens.vocab import VocabConfig, Vocabulary

METER = TimeSignature(4, 4)
A_MINOR, C_MAJOR = 12 + 9, 0


def bar(pitches: list[int], vocab: Vocabulary, key: int) -> list[int]:
    """One 4/4 bar of quarter notes with ``key`` in its header."""
    notes = [Note(p, float(i), 1.0, 64) for i, p in enumerate(pitches)]
    return vocab.encode(notes, METER, bos=False, key=key)


def judges() -> tuple[Vocabulary, CandidateJudge, CandidateJudge]:
    vocab = Vocabulary(VocabConfig.with_controls())
    aware = CandidateJudge(vocab, METER, JudgeConfig(), 110.0)
    plain = CandidateJudge(vocab, METER, JudgeConfig(), 110.0, key_aware=False)
    return vocab, aware, plain


def test_a_sad_bar_on_a_minor_is_judged_by_a_minor_not_by_its_relative_major():
    vocab, aware, plain = judges()
    tonic_minor = bar([57, 60, 64, 57], vocab, A_MINOR)  # A C E A: A minor heard
    relative = bar([60, 64, 67, 60], vocab, A_MINOR)  # C E G C: the same scale, C major heard
    elsewhere = bar([62, 65, 69, 62], vocab, A_MINOR)  # D F A D: minor, but D minor, not the asked A minor
    sad = (-0.8, -0.5)
    assert aware.score(tonic_minor, *sad) > aware.score(relative, *sad)
    assert aware.score(tonic_minor, *sad) > aware.score(elsewhere, *sad)
    # the plain judge hears any minor key as sad: D minor scores as A minor does
    assert np.isclose(plain.score(elsewhere, *sad), plain.score(tonic_minor, *sad), atol=0.05)


def test_a_happy_bar_asked_in_c_major_prefers_c_major_and_unclear_headers_fall_back():
    vocab, aware, plain = judges()
    happy = (0.8, 0.5)
    home = bar([60, 64, 67, 72], vocab, C_MAJOR)
    dominant = bar([62, 67, 71, 74], vocab, C_MAJOR)  # G B D: major, but G major
    assert aware.score(home, *happy) > aware.score(dominant, *happy)
    unclear = bar([60, 64, 67, 72], vocab, 24)  # no clear key in the header: judged as the plain judge does
    assert aware.asked_key(unclear) is None
    assert aware.score(unclear, *happy) == plain.score(unclear, *happy)
    assert aware.asked_key(home) == C_MAJOR
    assert aware.asked_key(bar([57], vocab, A_MINOR)) == A_MINOR
    assert aware.score([], *happy) == -np.inf
