"""The engine with a vocabulary of meters and controls: the bar's header comes from the meter and the knob."""

import numpy as np
import pytest

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.errors import VocabularyError
from affetto.music.notes import Note, TimeSignature
from affetto.runtime.engine import Engine
from affetto.runtime.sampling import SamplingConfig
from affetto.tokens.vocab import DENS, KEY, METER, POLY, VocabConfig

pytestmark = pytest.mark.torch

SEED = [Note(p, beat, 1.0) for beat in range(8) for p in (60, 64, 67)]  # C major chords, two 4/4 bars


@pytest.fixture(scope="module")
def controlled_model(tmp_path_factory):
    from tiny_things import export, make_checkpoint

    folder = tmp_path_factory.mktemp("ckpt2")
    checkpoint = make_checkpoint(folder, vocab_config=VocabConfig.with_controls(), seed=3)
    return export(checkpoint, tmp_path_factory.mktemp("onnx2") / "tiny2.onnx")


def headers(engine, tokens):
    """The header tokens of a generated bar, by type."""
    return {int(engine.vocab.types[t]): t for t in tokens[1 : 1 + len(engine.vocab.header)]}


@pytest.mark.parametrize("meter", [TimeSignature(4, 4), TimeSignature(3, 4), TimeSignature(6, 8)])
def test_bars_are_written_in_the_asked_meter(controlled_model, meter):
    engine = Engine(controlled_model, meter=meter)
    bar_steps = engine.bar_steps
    for seed in range(6):
        engine.prime(SEED if seed % 2 else [])
        rng = np.random.default_rng(seed)
        for _ in range(3):
            tokens = engine.generate_bar_tokens(Capsule.of(Quadrant(seed % 4)), SamplingConfig(guidance=1.5), rng)
            engine.vocab.check(tokens, bar_steps)
            assert headers(engine, tokens)[METER] == engine.vocab.meter(meter)
            assert all(0 <= n.onset < meter.beats_per_bar for n in engine.vocab.decode(tokens, meter))


def test_valence_sets_the_mode_on_the_seed_tonic(controlled_model):
    engine = Engine(controlled_model, follow_mode=False)
    vocab = engine.vocab
    for quadrant, key in ((Quadrant.Q1, 0), (Quadrant.Q3, 12), (Quadrant.Q4, 0), (Quadrant.Q2, 12)):
        engine.prime(SEED)  # the seed's bars carry KEY_C
        rng = np.random.default_rng(int(quadrant))
        for _ in range(3):
            tokens = engine.generate_bar_tokens(Capsule.of(quadrant), SamplingConfig(), rng)
            assert headers(engine, tokens)[KEY] == vocab.key(key), vocab.name(headers(engine, tokens)[KEY])


def test_without_a_seed_the_model_picks_a_key_of_the_asked_mode(controlled_model):
    engine = Engine(controlled_model)
    rng = np.random.default_rng(0)
    picked = []
    for _ in range(12):
        engine.prime([])
        tokens = engine.generate_bar_tokens(Capsule.of(Quadrant.Q3), SamplingConfig(), rng)
        picked.append(headers(engine, tokens)[KEY] - engine.vocab.key0)
        tokens = engine.generate_bar_tokens(Capsule.of(Quadrant.Q3), SamplingConfig(), rng)
        assert headers(engine, tokens)[KEY] - engine.vocab.key0 == picked[-1]  # then the key is kept
    assert all(12 <= key < 24 for key in picked)
    assert len(set(picked)) > 1  # the tonic is the model's choice


def test_a_density_asked_for_is_written(controlled_model):
    engine = Engine(controlled_model)
    engine.prime(SEED)
    rng = np.random.default_rng(1)
    for density in (1, 3, 6):
        tokens = engine.generate_bar_tokens(Capsule.of(Quadrant.Q1), SamplingConfig(density=density), rng)
        assert headers(engine, tokens)[DENS] == engine.vocab.density(density)


def test_a_meter_the_model_cannot_write_is_refused(controlled_model):
    with pytest.raises(VocabularyError, match="7/8 is not in this vocabulary"):
        Engine(controlled_model, meter=TimeSignature(7, 8))


def test_the_plans_texture_and_density_are_written(controlled_model):
    engine = Engine(controlled_model)
    engine.prime([])  # no seed: the emotion's own texture
    rng = np.random.default_rng(2)
    for quadrant in Quadrant:
        plan = engine.plan(Capsule.of(quadrant))
        tokens = engine.generate_bar_tokens(Capsule.of(quadrant), SamplingConfig(), rng)
        assert headers(engine, tokens)[POLY] == engine.vocab.polyphony(plan.polyphony)
        assert headers(engine, tokens)[DENS] == engine.vocab.density(plan.density)
    engine.prime(SEED)  # triads on every beat: the seed's texture whatever the emotion
    for quadrant in Quadrant:
        tokens = engine.generate_bar_tokens(Capsule.of(quadrant), SamplingConfig(), rng)
        assert headers(engine, tokens)[POLY] == engine.vocab.polyphony(engine.baseline.polyphony)


def test_the_first_and_last_bar_of_a_phrase_open_on_the_tonic_triad(controlled_model):
    engine = Engine(controlled_model)
    vocab = engine.vocab
    for seed in range(4):
        engine.prime(SEED if seed % 2 else [])
        rng = np.random.default_rng(seed)
        for bar in range(8):
            tokens = engine.generate_bar_tokens(Capsule.of(Quadrant(seed % 4)), SamplingConfig(), rng)
            key = headers(engine, tokens)[KEY] - vocab.key0
            notes = vocab.decode(tokens, TimeSignature(4, 4))
            if bar % 4 not in (0, 3) or not notes or key == 24:
                continue
            first = min(n.onset for n in notes)
            triad = {key % 12, (key % 12 + (3 if key >= 12 else 4)) % 12, (key % 12 + 7) % 12}
            assert {n.pitch % 12 for n in notes if n.onset == first} <= triad, (seed, bar, vocab.name(key + vocab.key0))


def test_a_minor_key_writes_the_leading_tone_never_the_subtonic(controlled_model):
    """Sad and tense bars are held to a minor key; its seventh degree is written raised (harmonic minor):
    no pitch a whole tone under the tonic. Happy bars (major) may write theirs (the mask is minor's)."""
    engine = Engine(controlled_model)
    vocab = engine.vocab
    seen = {"minor": set(), "major": set()}
    for seed in range(6):
        engine.prime(SEED if seed % 2 else [])
        rng = np.random.default_rng(seed)
        quadrant = (Quadrant.Q3, Quadrant.Q2, Quadrant.Q1)[seed % 3]
        for _bar in range(6):
            tokens = engine.generate_bar_tokens(Capsule.of(quadrant), SamplingConfig(), rng)
            key = headers(engine, tokens)[KEY] - vocab.key0
            if key == 24:  # the unclear key
                continue
            degrees = {(n.pitch - key) % 12 for n in vocab.decode(tokens, TimeSignature(4, 4))}
            seen["minor" if key >= 12 else "major"] |= degrees
            if quadrant is not Quadrant.Q1:
                assert key >= 12, vocab.name(key + vocab.key0)
    assert seen["minor"] and 10 not in seen["minor"]  # the subtonic never sounds in a minor key
    assert 10 in seen["major"] or 11 in seen["major"]  # a major key's sevenths are the model's to write
