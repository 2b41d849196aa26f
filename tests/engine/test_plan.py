"""The emotion plan: each lever decided from the capsule, the settings asked and the seed's baseline."""

import numpy as np
import pytest

from affetto.analysis.attributes import (
    DENSITY_EDGES,
    POLYPHONY_EDGES,
    UNCLEAR_KEY,
    heard_key,
    heard_key_class,
    key_class,
)
from affetto.analysis.emotion import Capsule, Quadrant, knob_capsule
from affetto.analysis.metrics import step_polyphony
from affetto.errors import ConfigError
from affetto.music.notes import Note
from affetto.runtime.plan import (
    DENSITY_SWING,
    EMOTION_TEXTURE,
    LINE_DENSITY,
    VELOCITY_SWING,
    Baseline,
    Levers,
    model_sampling,
    plan_bar,
)
from affetto.runtime.sampling import DEFAULT_SAMPLING, NO_OVERRIDES, SamplingConfig, SamplingOverrides

HAPPY, TENSE, SAD, CALM = (Capsule.of(q) for q in Quadrant)


def baseline_of(rows, bar_steps=16):
    return Baseline.measure(np.array(rows), bar_steps, 4, DENSITY_EDGES, POLYPHONY_EDGES)


def test_the_baseline_is_what_the_seed_sounds_like():
    # two bars of triads on every beat (1 onset per beat: density level 2; 3 notes per onset: level 4), velocity 70
    rows = [(step, 4, pitch, 70) for step in range(0, 32, 4) for pitch in (60, 64, 67)]
    base = baseline_of(rows)
    assert (base.density, base.polyphony, base.velocity) == (2, 4, 70.0)
    # a single line in sixteenths, loud: density level 6, polyphony level 1
    line = baseline_of([(step, 1, 60 + step % 5, 110) for step in range(16)])
    assert (line.density, line.polyphony, line.velocity) == (6, 1, 110.0)
    assert baseline_of(np.zeros((0, 4), np.int64)) == Baseline()


def test_two_hands_taking_turns_count_as_two_hands():
    """A melody held a bar over broken chords in eighths strikes about one note per onset (level 1) but
    sounds two (level 3): the seed counts as one level under what sounds, so it continues in two hands."""
    melody = [(bar * 16, 16, 72 + bar, 80) for bar in range(2)]
    broken = [(step, 2, (48, 55, 60, 55)[step // 2 % 4], 60) for step in range(2, 32, 2)]
    two_hands = baseline_of(melody + broken)
    assert two_hands.polyphony == 2
    line = baseline_of([(step, 2, 60 + step % 7, 80) for step in range(0, 32, 2)])  # a line in eighths
    assert line.polyphony == 1
    legato = baseline_of([(step, 3, 60 + step % 7, 80) for step in range(0, 32, 2)])  # overlapping a little
    assert legato.polyphony == 1
    assert step_polyphony(np.array([0, 2, 8]), np.array([4, 4, 2]), np.array([60, 64, 67])) == pytest.approx(10 / 8)


def test_a_single_line_is_never_planned_sparser_than_one_onset_per_beat():
    """Sad under a sparse melody would ask one note a bar, which says no mode; a line keeps level 2, chords
    may go sparser, and a density the user asks for is taken as it is."""
    line = Baseline(density=2, polyphony=1, velocity=60.0)
    assert plan_bar(SAD, NO_OVERRIDES, line).density == LINE_DENSITY == 2
    assert plan_bar(HAPPY, NO_OVERRIDES, line).density == 3
    chords = Baseline(density=2, polyphony=4, velocity=60.0)
    assert plan_bar(SAD, NO_OVERRIDES, chords).density == 1
    assert plan_bar(SAD, SamplingOverrides(density=1), line).density == 1


def test_the_seed_key_is_heard_from_its_bass():
    """The shipped nocturne seed (F major, its melody holding A and C over broken chords): duration alone
    names A minor, the bass names F major; chords on G with a held D over them stay G major."""
    from affetto.models.outside_seeds import SEED_FOLDER
    from affetto.music.midifile import read_midi

    phrase = read_midi(SEED_FOLDER / "nocturne.mid")
    notes = np.array([(round(n.onset * 4), max(1, round(n.duration * 4)), n.pitch, n.velocity)
                      for n in phrase.notes if n.onset < 16])
    assert key_class(notes[:, 2], notes[:, 1] / 4) == 9 + 12  # A minor, by duration alone
    assert heard_key(notes, 4)[:2] == (5, "major") and heard_key_class(notes, 4) == 5
    chords = np.array([(step, 4, p, 70) for step in range(0, 32, 4) for p in (55, 59, 62)] + [(0, 32, 74, 70)])
    assert heard_key(chords, 4)[:2] == (7, "major")
    assert heard_key_class(np.zeros((0, 4), np.int64), 4) == UNCLEAR_KEY


def test_arousal_moves_density_and_velocity_away_from_the_seed():
    base = Baseline(density=4, polyphony=2, velocity=80.0)
    happy, sad = plan_bar(HAPPY, NO_OVERRIDES, base), plan_bar(SAD, NO_OVERRIDES, base)
    assert happy.density == 4 + DENSITY_SWING and sad.density == 4 - DENSITY_SWING
    assert happy.velocity == pytest.approx(80 * (1 + VELOCITY_SWING))
    assert sad.velocity == pytest.approx(80 * (1 - VELOCITY_SWING))
    assert happy.polyphony == sad.polyphony == 2  # the seed's texture, whatever the emotion
    busy = plan_bar(SAD, NO_OVERRIDES, Baseline(density=6, polyphony=1, velocity=100.0))
    assert busy.density > sad.density  # a busier seed gives busier sad bars: the seed is still followed
    half = plan_bar(knob_capsule(64), NO_OVERRIDES, base)  # between calm and happy: arousal near 0
    assert sad.density <= half.density <= happy.density


def test_without_a_seed_the_emotion_sets_texture_and_loudness():
    plans = {q: plan_bar(Capsule.of(q), NO_OVERRIDES, Baseline()) for q in Quadrant}
    for q, plan in plans.items():
        density, poly, velocity = EMOTION_TEXTURE[q]
        assert (plan.density, plan.polyphony, plan.velocity) == (density, poly, velocity)
        assert plan.polyphony >= 3  # never a bare single line
    assert plans[Quadrant.Q2].density > plans[Quadrant.Q1].density > plans[Quadrant.Q3].density


def test_valence_asks_the_mode_and_neutral_valence_leaves_it():
    assert plan_bar(HAPPY, NO_OVERRIDES, Baseline()).minor is False
    assert plan_bar(TENSE, NO_OVERRIDES, Baseline()).minor is True
    assert plan_bar(Capsule((0.5, 0.5, 0, 0)), NO_OVERRIDES, Baseline()).minor is None


def test_what_the_user_turns_overrides_the_plan():
    plan = plan_bar(SAD, SamplingOverrides(density=6, texture=1), Baseline(density=2, polyphony=3, velocity=60.0))
    assert (plan.density, plan.polyphony) == (6, 1)


def test_guidance_adds_the_unconditioned_row_only_where_it_can():
    guided = SamplingConfig(guidance=1.5)
    assert plan_bar(HAPPY, guided, Baseline()).guided
    assert not plan_bar(HAPPY, guided, Baseline(), guidance_ready=False).guided
    assert not plan_bar(HAPPY, SamplingConfig(guidance=1.0), Baseline()).guided


def test_an_unconditioned_capsule_plans_nothing():
    plan = plan_bar(Capsule.unconditioned(), SamplingConfig(guidance=2.0, candidates=3), Baseline(4, 2, 80.0))
    assert (plan.minor, plan.density, plan.polyphony, plan.velocity, plan.judged) == (None, None, None, None, False)
    assert not plan.guided


def test_levers_turn_off_one_by_one():
    base = Baseline(4, 2, 80.0)
    off = plan_bar(HAPPY, SamplingConfig(candidates=3), base, levers=Levers(arousal=False, texture=False, judge=False))
    assert (off.density, off.velocity, off.polyphony, off.judged) == (None, None, None, False)
    assert off.minor is False
    assert plan_bar(HAPPY, SamplingConfig(candidates=3), base, levers=Levers(mode=False)).minor is None
    assert plan_bar(HAPPY, SamplingConfig(candidates=3), base).judged
    assert not plan_bar(HAPPY, SamplingConfig(candidates=1), base).judged


def test_a_model_without_control_tokens_gets_no_header_levels():
    plan = plan_bar(SAD, NO_OVERRIDES, Baseline(4, 2, 80.0), controls=False)
    assert (plan.density, plan.polyphony) == (None, None)
    assert plan.minor is True and plan.velocity is not None  # mode following and loudness still apply


def test_perform_scales_velocities_around_the_planned_mean():
    plan = plan_bar(SAD, NO_OVERRIDES, Baseline(4, 2, 80.0))
    notes = [Note(60, 0.0, 1.0, 100), Note(64, 1.0, 1.0, 60), Note(67, 2.0, 1.0, 127)]
    played = plan.perform(notes)
    assert np.mean([n.velocity for n in played]) == pytest.approx(plan.velocity, abs=1.0)
    assert list(np.argsort([n.velocity for n in played])) == [1, 0, 2]  # the bar's own shape kept
    assert [(n.pitch, n.onset, n.duration) for n in played] == [(n.pitch, n.onset, n.duration) for n in notes]
    assert all(1 <= n.velocity <= 127 for n in plan_bar(TENSE, NO_OVERRIDES, Baseline(4, 2, 126.0)).perform(notes))
    assert plan.perform([]) == []


def test_the_models_own_sampling_per_quadrant():
    spec = {"default": {"temperature": 0.9}, "Q3": {"temperature": 0.7, "top_p": 0.9}}
    assert model_sampling(spec, HAPPY).temperature == 0.9
    assert (model_sampling(spec, SAD).temperature, model_sampling(spec, SAD).top_p) == (0.7, 0.9)
    assert model_sampling(None, SAD) == DEFAULT_SAMPLING


def test_a_plan_needs_a_capsule():
    with pytest.raises(ConfigError, match="capsule"):
        plan_bar((1, 0, 0, 0), NO_OVERRIDES, Baseline())  # type: ignore[arg-type]


def test_a_phrase_opens_and_closes_on_the_tonic_when_a_mode_is_asked():
    anchored = [plan_bar(SAD, NO_OVERRIDES, Baseline(), phrase_bar=b).anchor for b in range(4)]
    assert anchored == [True, False, False, True]
    assert not plan_bar(Capsule((0.5, 0.5, 0, 0)), NO_OVERRIDES, Baseline()).anchor  # no mode asked
    assert not plan_bar(SAD, NO_OVERRIDES, Baseline(), levers=Levers(tonic=False)).anchor
    assert not plan_bar(SAD, NO_OVERRIDES, Baseline(), controls=False).anchor  # no KEY to anchor to


def test_a_minor_key_asks_for_the_leading_tone():
    assert plan_bar(SAD, NO_OVERRIDES, Baseline()).leading  # minor asked: no subtonic
    assert not plan_bar(HAPPY, NO_OVERRIDES, Baseline()).leading  # major: the flat seventh is a colour, kept
    assert not plan_bar(Capsule((0.5, 0.5, 0, 0)), NO_OVERRIDES, Baseline()).leading  # no mode asked
    assert not plan_bar(SAD, NO_OVERRIDES, Baseline(), levers=Levers(leading=False)).leading
    assert not plan_bar(SAD, NO_OVERRIDES, Baseline(), controls=False).leading  # no KEY header to read
