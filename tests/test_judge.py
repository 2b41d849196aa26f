"""The feature judge on hand-made phrases whose emotion is not in doubt."""

from affetto.analysis.emotion import Quadrant
from affetto.analysis.judge import JudgeConfig, estimate_key, judge
from affetto.music.notes import Note

C_MAJOR_SCALE = [60, 62, 64, 65, 67, 69, 71, 72]
A_MINOR_SCALE = [57, 59, 60, 62, 64, 65, 67, 69]  # natural minor, same pitch set as C major


def phrase(pitches, step, velocity, chord=()):
    """Two bars of 4/4: the scale up and down every ``step`` beats, tonic chord held on beat 1."""
    notes, t = [], 0.0
    seq = pitches + pitches[::-1]
    i = 0
    while t < 8 - 1e-9:
        notes.append(Note(seq[i % len(seq)], t, step, velocity))
        t += step
        i += 1
    for bar in (0, 4):
        notes += [Note(p, bar, 2.0, velocity) for p in chord]
    return notes


def test_major_and_minor_give_opposite_valence():
    major = judge(phrase(C_MAJOR_SCALE, 1.0, 80, chord=(48, 52, 55)), 8)
    minor = judge(phrase(A_MINOR_SCALE, 1.0, 80, chord=(45, 48, 52)), 8)
    assert major.key == "C major" and major.valence > 0.3
    assert minor.key == "A minor" and minor.valence < -0.3


def test_dense_loud_is_aroused_and_sparse_soft_is_not():
    dense = judge(phrase(C_MAJOR_SCALE, 0.25, 110), 8)
    sparse = judge(phrase(C_MAJOR_SCALE, 2.0, 45), 8)
    assert dense.density == 4.0 and sparse.density == 0.5
    assert dense.arousal > 0.5 > -0.5 > sparse.arousal


def test_quadrants_of_the_four_corners():
    cases = {
        Quadrant.Q1: phrase(C_MAJOR_SCALE, 0.25, 110, chord=(48, 52, 55)),
        Quadrant.Q2: phrase(A_MINOR_SCALE, 0.25, 110, chord=(45, 48, 52)),
        Quadrant.Q3: phrase(A_MINOR_SCALE, 2.0, 45, chord=(45, 48, 52)),
        Quadrant.Q4: phrase(C_MAJOR_SCALE, 2.0, 45, chord=(48, 52, 55)),
    }
    for quadrant, notes in cases.items():
        assert judge(notes, 8).quadrant is quadrant, quadrant


def test_tempo_raises_arousal_and_chords_count_once():
    notes = phrase(C_MAJOR_SCALE, 1.0, 80)
    assert judge(notes, 8, tempo=180).arousal > judge(notes, 8, tempo=70).arousal
    chords = [Note(p, float(b), 1.0) for b in range(8) for p in (60, 64, 67)]
    assert judge(chords, 8).density == 1.0


def test_empty_phrase_and_config():
    verdict = judge([], 4)
    assert verdict.valence == 0 and verdict.arousal == -1 and verdict.quadrant is Quadrant.Q4
    tonic, mode, r = estimate_key([62, 66, 69, 62], [1, 1, 1, 1])
    assert (tonic, mode) == (2, "major") and r > 0.5
    assert JudgeConfig().to_dict()["density_ref"] == 1.5
