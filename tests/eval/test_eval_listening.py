"""Independent ears: music21's key finders, seed following, and a whole listening run on a tiny model."""

import math

import numpy as np
import pytest

from affetto.music.notes import Note, TimeSignature
from affetto.tokens.vocab import VocabConfig

pytest.importorskip("music21")

from affetto.analysis.judge import JudgeConfig
from affetto.models.evaluation.listening import (
    ListenConfig,
    Take,
    _following,
    _summary,
    independent_keys,
    listen,
    outside_seed_phrases,
    spearman,
)
from affetto.models.outside_seeds import outside_seeds


def scale_phrase(tonic: int, minor: bool, bars: int = 2) -> list[Note]:
    """Tonic triad arpeggios and the scale: a key no estimator can miss."""
    steps = [0, 2, 3, 5, 7, 8, 10] if minor else [0, 2, 4, 5, 7, 9, 11]
    triad = [0, 2, 4, 7, 4, 2, 0, 4]
    return [Note(tonic + steps[d % 7] + 12 * (d // 7), i * 0.5, 0.5) for i, d in enumerate(triad * bars)]


def test_music21_estimators_name_the_key():
    assert independent_keys(scale_phrase(62, minor=False)) == {"aarden_essen": (2, "major"),
                                                               "temperley_kostka_payne": (2, "major")}
    assert independent_keys(scale_phrase(57, minor=True)) == {"aarden_essen": (9, "minor"),
                                                              "temperley_kostka_payne": (9, "minor")}
    assert independent_keys([]) == {"aarden_essen": None, "temperley_kostka_payne": None}


def test_spearman_ranks():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert spearman([1, 1, 2, 3], [5, 5, 6, 7]) == pytest.approx(1.0)  # ties share a rank
    assert math.isnan(spearman([1, 2], [2, 1]))
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_summary_counts_valence_by_each_estimator():
    meter = TimeSignature(4, 4)
    takes = [Take(meter, 0, 1, scale_phrase(60, minor=False)),  # asked happy, major: agrees
             Take(meter, 2, 1, scale_phrase(60, minor=False)),  # asked sad, major: disagrees
             Take(meter, 2, 1, scale_phrase(57, minor=True))]  # asked sad, minor: agrees
    summary = _summary(takes, 2, 110.0, JudgeConfig())
    for name in ("aarden_essen", "temperley_kostka_payne", "krumhansl_judge"):
        assert summary["valence"][name]["value"] == pytest.approx(2 / 3)
    assert summary["phrases"] == 3
    assert summary["single_line"]["value"] == 1.0
    assert summary["fill"]["second_half_silent"] == 0.0


def test_following_on_hand_made_pairs():
    from affetto.models.evaluation.listening import SeedPhrase

    meter = TimeSignature(4, 4)
    seeds = []
    for i, step in enumerate((1.0, 0.5, 0.25)):  # sparse, medium, dense seeds
        seed = tuple(Note(60 + (k % 3) * 4, k * step, step) for k in range(int(8 / step)))
        real = tuple(Note(60 + (k % 3) * 4, k * step, step) for k in range(int(8 / step)))
        seeds.append(SeedPhrase(f"s{i}", meter, seed, real))
    # Continuations that follow density exactly (their own real bars), one that does not.
    takes = [Take(meter, 0, 1, list(s.real_next), s, True) for s in seeds]
    following = _following(takes, seeds, 2)
    assert following["generated"]["density_spearman"] == pytest.approx(1.0)
    assert following["generated"]["melody_kept"]["value"] == 1.0
    reversed_takes = [Take(meter, 0, 1, list(s.real_next), s2, True) for s, s2 in zip(seeds, seeds[::-1])]
    assert _following(reversed_takes, seeds, 2)["generated"]["density_spearman"] == pytest.approx(-1.0)


def test_outside_seeds_are_shipped_as_written():
    phrases = outside_seed_phrases(ListenConfig(transpositions=(0,)))
    written = {s.name: s for s in outside_seeds()}
    assert sorted(p.name.rstrip("+0") for p in phrases) == sorted(written)
    for p in phrases:
        seed = written[p.name.rstrip("+0")]
        assert p.meter == seed.meter
        assert p.seed and p.real_next
        assert len(p.seed) + len(p.real_next) == len(seed.notes)  # 4 + 4 bars of an 8-bar piece
    densities = sorted(len(s.notes) / 8 for s in written.values())
    assert densities[-1] > 10 * densities[0]  # sparse to dense on purpose


def test_a_listening_run_on_a_tiny_model(tmp_path):
    from tiny_things import export, make_checkpoint

    model = export(make_checkpoint(tmp_path, vocab_config=VocabConfig.with_controls(), seed=5), tmp_path / "m.onnx")
    report = listen(ListenConfig(model=str(model), unseeded_phrases=1, transpositions=(0,), bars=2,
                                 candidates=(1, 2), progress=False))
    for c in ("1", "2"):
        for meter in ("4/4", "3/4", "6/8"):
            cell = report["unseeded"][c][meter]
            assert cell["phrases"] == 4
            assert set(cell["valence"]) == {"aarden_essen", "temperley_kostka_payne", "krumhansl_judge"}
            assert 0.0 <= cell["fill"]["silence"] <= 1.0
        seeded = report["seeded"][c]
        assert seeded["phrases"] == 8 * 4
        assert len(seeded["following"]["real_next_bars"]["density_pairs"]) == 8
        assert np.isfinite(report["ms_per_bar"][c])


def test_a_listening_run_can_ask_one_guidance_scale():
    from affetto.analysis.emotion import Capsule, Quadrant
    from affetto.errors import ConfigError
    from affetto.models.evaluation.listening import DEFAULT, continue_phrase


    class Engine:  # records what each bar was asked
        meter = TimeSignature(4, 4)

        def __init__(self):
            self.asked = []

        def prime(self, notes, bars=None):
            pass

        def generate_bar(self, capsule, overrides, rng=None):
            self.asked.append(overrides)
            return []

    engine = Engine()
    rng = np.random.default_rng(0)
    continue_phrase(engine, [], 4, Capsule.of(Quadrant.Q3), 2, DEFAULT, rng, guidance=1.0)
    continue_phrase(engine, [], 4, Capsule.of(Quadrant.Q3), 1, 3, rng)
    assert [(o.guidance, o.candidates) for o in engine.asked] == [(1.0, None), (1.0, None), (None, 3)]
    with pytest.raises(ConfigError, match="guidance"):
        ListenConfig(guidance=0.5)
