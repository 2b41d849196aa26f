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


def _stream(vocab: Vocabulary) -> list[int]:
    """Bars in three meters, each with its METER token: 3/4, then 6/8, then 4/4, at keys of both modes."""
    rng = np.random.default_rng(3)
    out: list[int] = []
    for meter, key in ((TimeSignature(3, 4), A_MINOR), (TimeSignature(6, 8), C_MAJOR), (METER, A_MINOR)):
        beats = meter.beats_per_bar
        notes = [Note(int(rng.integers(48, 80)), float(t), float(rng.choice([0.5, 1.0, 1.5])),
                      int(rng.integers(40, 120))) for t in np.arange(0, 2 * beats, 0.5) if rng.random() < 0.7]
        out += vocab.encode(notes, meter, bos=False, key=key)
    return out


def test_decoding_in_parts_cut_before_bars_gives_the_notes_of_decoding_whole():
    vocab = judges()[0]
    tokens = _stream(vocab)
    bars = [i for i, t in enumerate(tokens) if t == vocab.bar]
    assert len(bars) == 6 and len({vocab.types[t] for t in tokens}) > 5
    whole = vocab.decode(tokens, METER)
    for cut in bars:
        before, at = vocab.decode_from(tokens[:cut], METER)
        after, _ = vocab.decode_from(tokens[cut:], METER, at=at)
        assert sorted(before + after, key=lambda n: (n.onset, n.pitch, n.channel)) == whole  # the same floats


def test_the_scorer_of_a_prefix_gives_the_scores_of_the_whole_streams():
    vocab, aware, plain = judges()
    tokens = _stream(vocab)
    bars = [i for i, t in enumerate(tokens) if t == vocab.bar]
    prefix = tokens[: bars[-1] + 3]  # the bars before, the last bar's BAR and header tokens
    bodies = [tokens[bars[-1] + 3 :], tokens[bars[-2] + 3 : bars[-1]], tokens[bars[1] + 3 : bars[2]], []]
    for judge in (aware, plain):
        for valence, arousal in ((0.8, 0.5), (-0.8, -0.5)):
            score = judge.scorer(prefix, valence, arousal)
            for body in bodies:
                assert score(body) == judge.score(prefix + body, valence, arousal)
            assert judge.scorer([], valence, arousal)(tokens) == judge.score(tokens, valence, arousal)  # no bars before
