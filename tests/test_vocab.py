"""The vocabulary: round trips on the grid, the grammar, and JSON persistence."""

import numpy as np
import pytest

from affetto.errors import VocabularyError
from affetto.music.notes import Note, TimeSignature
from affetto.tokens.vocab import BAR, DUR, POS, VocabConfig, Vocabulary


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary()


def grid_phrase(rng: np.random.Generator, bars: int, meter: TimeSignature, vocab: Vocabulary) -> list[Note]:
    """Random notes exactly on the grid, with representable durations and velocities."""
    steps = vocab.grid.steps_per_bar(meter)
    notes = {}
    for _ in range(rng.integers(1, 12 * bars)):
        onset = int(rng.integers(0, steps * bars))
        pitch = int(rng.integers(vocab.config.pitch_min, vocab.config.pitch_max + 1))
        dur = int(rng.choice(vocab.config.durations))
        vel = vocab.bin_velocity(int(rng.integers(0, vocab.config.velocity_bins)))
        notes[(onset, pitch)] = Note(pitch, onset / 4, dur / 4, vel)
    return sorted(notes.values(), key=lambda n: (n.onset, n.pitch))


@pytest.mark.parametrize("meter", [TimeSignature(4, 4), TimeSignature(3, 4), TimeSignature(6, 8), TimeSignature(7, 8)])
def test_round_trip_is_exact_on_the_grid(vocab, meter):
    rng = np.random.default_rng(7)
    for _ in range(50):
        notes = grid_phrase(rng, 4, meter, vocab)
        tokens = vocab.encode(notes, meter)
        assert vocab.decode(tokens, meter) == notes
        vocab.check(tokens, vocab.grid.steps_per_bar(meter))


def test_encoding_spells_bars_positions_and_notes(vocab):
    notes = [Note(60, 0, 1, 72), Note(64, 0, 1, 72), Note(67, 1.5, 0.5, 104), Note(72, 8.25, 2.0, 40)]
    names = [vocab.name(t) for t in vocab.encode(notes, TimeSignature(4, 4))]
    assert names == [
        "BOS", "BAR", "POS_0", "PITCH_60", "VEL_72", "DUR_4", "PITCH_64", "VEL_72", "DUR_4",
        "POS_6", "PITCH_67", "VEL_104", "DUR_2", "BAR", "BAR", "POS_1", "PITCH_72", "VEL_40", "DUR_8",
    ]


def test_off_grid_notes_snap_and_out_of_range_pitches_fold(vocab):
    meter = TimeSignature(4, 4)
    triplet = [Note(60, 1 / 3, 1 / 3), Note(10, 0, 0.01), Note(120, 2, 1)]
    decoded = vocab.decode(vocab.encode(triplet, meter), meter)
    assert [(n.pitch, n.onset, n.duration) for n in decoded] == [(22, 0.0, 0.25), (60, 0.25, 0.5), (108, 2.0, 1.0)]


def test_duplicates_keep_the_longest_note(vocab):
    meter = TimeSignature(4, 4)
    decoded = vocab.decode(vocab.encode([Note(60, 0, 1), Note(60, 0, 2)], meter), meter)
    assert [(n.pitch, n.duration) for n in decoded] == [(60, 2.0)]


def test_empty_phrase_and_trailing_empty_bars(vocab):
    assert vocab.encode([], TimeSignature(4, 4)) == [vocab.bos]
    tokens = vocab.encode_steps(np.array([[0, 4, 60, 80]]), 16, n_bars=3)
    assert [vocab.name(t) for t in tokens] == ["BAR", "POS_0", "PITCH_60", "VEL_88", "DUR_4", "BAR", "BAR"]
    with pytest.raises(VocabularyError, match="need 1 bars"):
        vocab.encode_steps(np.array([[0, 4, 60, 80]]), 16, n_bars=0)


def test_grammar_allows_only_well_formed_continuations(vocab):
    state = vocab.new_state(bar_steps=12)
    mask = vocab.allowed(state)
    assert set(vocab.types[mask]) == {BAR}
    vocab.advance(state, vocab.bar)
    mask = vocab.allowed(state)
    assert set(vocab.types[mask]) == {BAR, POS}
    assert mask[vocab.pos(11)] and not mask[vocab.pos(12)]
    for tok in (vocab.pos(5), vocab.pitch(64), vocab.vel(80), vocab.dur(4)):
        vocab.advance(state, tok)
    mask = vocab.allowed(state)
    assert not mask[vocab.pos(5)] and mask[vocab.pos(6)]  # positions rise strictly
    assert not mask[vocab.pitch(64)] and mask[vocab.pitch(65)]  # pitches rise within a position
    assert mask[vocab.bar] and not mask[vocab.dur0]


def test_random_walks_through_the_grammar_always_decode(vocab):
    rng = np.random.default_rng(3)
    meter = TimeSignature(3, 4)
    for _ in range(30):
        tokens = vocab.random_walk(200, rng, bar_steps=vocab.grid.steps_per_bar(meter))
        vocab.check(tokens, 12)
        for n in vocab.decode(tokens, meter):
            assert n.onset % meter.beats_per_bar < meter.beats_per_bar


def test_check_names_the_offending_token(vocab):
    bad = [vocab.bos, vocab.bar, vocab.pitch(60)]
    with pytest.raises(VocabularyError, match="PITCH_60 may not follow BAR at index 2"):
        vocab.check(bad, 16)
    with pytest.raises(VocabularyError, match="outside the vocabulary"):
        vocab.decode([vocab.size + 3], TimeSignature(4, 4))


def test_json_round_trip_and_mismatch(vocab, tmp_path):
    path = tmp_path / "vocab.json"
    vocab.save(path)
    assert Vocabulary.load(path) == vocab
    other = Vocabulary(VocabConfig(velocity_bins=16))
    assert other != vocab and other.size == vocab.size + 8
    data = vocab.to_dict() | {"size": vocab.size + 1}
    with pytest.raises(VocabularyError, match="does not match"):
        Vocabulary.from_dict(data)
    with pytest.raises(VocabularyError, match="not an affetto vocabulary"):
        Vocabulary.from_json("{}")


def test_bar_too_long_for_the_vocabulary(vocab):
    with pytest.raises(VocabularyError, match="does not fit"):
        vocab.encode([Note(60, 0, 1)], TimeSignature(9, 2))


def test_type_blocks_cover_the_id_space(vocab):
    assert vocab.types[vocab.bar] == BAR and vocab.types[vocab.dur0] == DUR
    assert len(vocab) == 3 + 32 + 88 + 8 + 23


# ---- version 2: the meter and control tokens of every bar ---------------------------------
@pytest.fixture(scope="module")
def vocab2() -> Vocabulary:
    return Vocabulary(VocabConfig.with_controls())


def test_version_1_ids_are_unchanged_by_the_new_blocks(vocab, vocab2):
    assert vocab2.dur0 + len(vocab2.config.durations) == vocab2.meter0
    for name in ("bos", "bar", "pos0", "pitch0", "vel0", "dur0"):
        assert getattr(vocab, name) == getattr(vocab2, name)
    assert vocab.size == vocab.dur0 + len(vocab.config.durations)  # no meter or control tokens
    assert Vocabulary.from_dict(vocab.to_dict()) == vocab
    assert Vocabulary.from_dict(vocab2.to_dict()) == vocab2


@pytest.mark.parametrize("meter", [TimeSignature(4, 4), TimeSignature(3, 4), TimeSignature(6, 8)])
def test_round_trip_with_meter_and_controls(vocab2, meter):
    rng = np.random.default_rng(11)
    for _ in range(40):
        notes = grid_phrase(rng, 4, meter, vocab2)
        tokens = vocab2.encode(notes, meter)
        vocab2.check(tokens, vocab2.grid.steps_per_bar(meter))
        assert vocab2.decode(tokens, meter) == notes
        names = [vocab2.name(t) for t in tokens]
        bars = [i for i, n in enumerate(names) if n == "BAR"]
        assert len(bars) == int(max(n.onset for n in notes) // meter.beats_per_bar) + 1
        for i in bars:  # every bar states its meter, then key, density and polyphony
            assert names[i + 1] == f"METER_{meter}"
            assert [n.split("_")[0] for n in names[i + 2 : i + 5]] == ["KEY", "DENS", "POLY"]


def test_controls_measure_the_bar(vocab2):
    meter = TimeSignature(4, 4)
    chords = [Note(p, beat, 1.0) for beat in range(4) for p in (60, 64, 67)]  # a C triad on every beat
    line = [Note(72 + (i % 3), 4 + i * 0.5, 0.5) for i in range(8)]  # eighths, one voice
    tokens = vocab2.encode(chords + line, meter, key=0)
    names = [vocab2.name(t) for t in tokens]
    first, second = names.index("BAR"), len(names) - names[::-1].index("BAR") - 1
    assert names[first + 2 : first + 5] == ["KEY_C", "DENS_2", "POLY_4"]  # 1 onset per beat, 3 notes each
    assert names[second + 2 : second + 5] == ["KEY_C", "DENS_4", "POLY_1"]  # 2 onsets per beat: (1.5, 2], one voice
    assert vocab2.name(vocab2.encode(chords, meter)[3]) == "KEY_C"  # estimated from the notes
    minor = [Note(p, beat, 1.0) for beat in range(4) for p in (57, 60, 64)]
    assert vocab2.name(vocab2.encode(minor, meter)[3]) == "KEY_Am"


def test_meter_tokens_set_each_bars_length(vocab2):
    """A stream may change meter: each bar decodes with its own length and the grammar keeps it inside."""
    bar = [vocab2.bar]
    three = [*bar, vocab2.meter(TimeSignature(3, 4)), vocab2.key(0), vocab2.density(1), vocab2.polyphony(1)]
    four = [*bar, vocab2.meter(TimeSignature(4, 4)), vocab2.key(0), vocab2.density(1), vocab2.polyphony(1)]
    note = [vocab2.pitch(60), vocab2.vel(80), vocab2.dur(4)]
    tokens = [vocab2.bos, *three, vocab2.pos(8), *note, *four, vocab2.pos(12), *note]
    vocab2.check(tokens, 16)
    assert [n.onset for n in vocab2.decode(tokens, TimeSignature(4, 4))] == [2.0, 3.0 + 3.0]
    with pytest.raises(VocabularyError, match="may not follow"):
        vocab2.check([vocab2.bos, *three, vocab2.pos(12), *note], 16)  # step 12 is past a 3/4 bar



def test_bad_meter_and_control_configs_are_refused():
    with pytest.raises(VocabularyError, match="not in this vocabulary"):
        Vocabulary(VocabConfig.with_controls()).meter(TimeSignature(7, 8))
    with pytest.raises(VocabularyError, match="longer than max_bar_steps"):
        VocabConfig(meters=("4/4", "12/4"))
    with pytest.raises(VocabularyError, match="distinct"):
        VocabConfig(meters=("4/4", "4/4"))
    with pytest.raises(VocabularyError, match="encode needs the meter"):
        Vocabulary(VocabConfig.with_controls()).encode_steps(np.array([[0, 4, 60, 80]]), 16)
