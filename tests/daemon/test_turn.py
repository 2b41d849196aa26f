"""A knob turn is heard within a beat: the sounding bar is redone from its next reachable half beat."""

from __future__ import annotations

from daemon_fakes import make_rig

from affetto.analysis.emotion import Quadrant, knob_value

BAR = 4.0


class On:
    def __init__(self, beat: float, pitch: int, velocity: int) -> None:
        self.beat, self.pitch, self.velocity = beat, pitch, velocity


def ons(rig) -> list[On]:
    """Note-ons as the port received them, at their beats (the internal clock keeps one tempo)."""
    state = rig.clock.state
    return [On(round(state.beat_at(t), 3), m[1], m[2]) for t, m in rig.port.note_ons()]


def turn_rig(**overrides):
    rig = make_rig(emotion=knob_value(Quadrant.Q1), emotion_smoothing=0.3, **overrides)
    asked = []
    submit = rig.conductor.submit
    rig.conductor.submit = lambda req: (asked.append(req), submit(req))
    rig.start()
    rig.advance(int(2.3 * rig.ns_per_bar))  # into bar 2, beat 1.2: bar 3 asked at bar line 2 and back
    return rig, asked


def test_a_turn_redoes_the_sounding_bar_from_its_next_half_beat_and_asks_the_next_bar_again():
    rig, asked = turn_rig()
    before = len(asked)
    at_beat = rig.clock.state.beat_at(rig.time())
    rig.inbox.put((rig.time(), 0xB0, 20, knob_value(Quadrant.Q3)))
    rig.advance(rig.ns_per_bar // 2)
    revision, again = asked[before], asked[before + 1]
    reach = at_beat + (rig.config.margin_ms + rig.config.revise_ms) / 1000 * 2  # 120 BPM: 2 beats a second
    assert revision.bar == 2 and revision.from_beat == -(-2 * (reach - 2 * BAR) // 1) / 2  # next half beat
    assert again.bar == 3 and again.from_beat == 0
    assert revision.capsule == again.capsule and revision.capsule.quadrant is Quadrant.Q3  # one smoothing step
    assert 0.5 < revision.capsule.weights[2] < 1.0
    assert rig.lead.revisions == 1
    # from the revision's beat on, bar 2 plays the new emotion (the fake: sad is quieter), and only once
    sent = ons(rig)
    late = [s for s in sent if 2 * BAR + revision.from_beat <= s.beat < 3 * BAR]
    early = [s for s in sent if 2 * BAR <= s.beat < 2 * BAR + revision.from_beat]
    assert late and early and max(s.velocity for s in late) < min(s.velocity for s in early)
    assert len({(s.beat, s.pitch) for s in late}) == len(late)  # nothing doubled
    rig.advance(2 * rig.ns_per_bar)
    bar3 = [s for s in ons(rig) if 3 * BAR <= s.beat < 4 * BAR]
    assert bar3 and max(s.velocity for s in bar3) < min(s.velocity for s in early)  # the old bar 3 gave way
    assert len({(s.beat, s.pitch) for s in bar3}) == len(bar3)


def test_a_knob_that_stays_or_barely_moves_redoes_nothing():
    rig, asked = turn_rig()
    before = len(asked)
    rig.inbox.put((rig.time(), 0xB0, 20, knob_value(Quadrant.Q1) + 2))  # inside happy's plateau
    rig.advance(rig.ns_per_bar // 2)
    assert all(r.from_beat == 0 for r in asked[before:]) and not getattr(rig.lead, "revisions", 0)


def test_a_late_revision_leaves_the_old_notes_playing_and_nothing_stuck():
    rig, asked = turn_rig()
    before = len(asked)
    rig.inbox.put((rig.time(), 0xB0, 20, knob_value(Quadrant.Q3)))
    rig.advance(rig.ns_per_bar // 2, auto_deliver=False)  # the model is busy: the revision never comes in time
    assert asked[before].from_beat > 0
    played = {(s.beat, s.pitch) for s in ons(rig) if 2 * BAR <= s.beat < 2.5 * BAR + 0.01}
    assert played  # the bar went on as it was
    rig.worker.requests.clear()
    rig.advance(2 * rig.ns_per_bar)
    for event in rig.clock.stop(rig.time()):
        rig.conductor.process(event)
    rig.pump()
    assert rig.port.sounding() == set()


def test_ensemble_mode_redoes_the_sounding_bar_lead_and_voices():
    rig, asked = turn_rig(mode="ensemble")
    before = len(asked)
    rig.inbox.put((rig.time(), 0xB0, 20, knob_value(Quadrant.Q3)))
    rig.advance(rig.ns_per_bar // 2)
    revision = asked[before]
    assert revision.bar == 2 and revision.from_beat > 0 and rig.lead.revisions == 1
    start = 2 * BAR + revision.from_beat
    state = rig.clock.state
    sent = [(round(state.beat_at(t), 3), m[0] & 0x0F, m[1]) for t, m in rig.port.note_ons()]
    late = [s for s in sent if start <= s[0] < 3 * BAR]
    lead = sorted((b, p) for b, ch, p in late if ch == 0)
    alto = sorted((b, p) for b, ch, p in late if ch == 1)
    assert lead and [b for b, _ in alto] == [b for b, _ in lead]  # new voices under the new lead, from the turn
    assert [p for _, p in alto] == [p - 3 for _, p in lead]  # the fake voices' minor third: the new emotion
    assert len(set(late)) == len(late)  # nothing doubled


def test_the_worker_skips_requests_a_newer_epoch_made_stale():
    import queue

    from affetto.analysis.emotion import Capsule
    from affetto.daemon.generator import BarRequest
    from affetto.daemon.workers import current

    happy = Capsule.of(Quadrant.Q1)
    waiting: queue.Queue = queue.Queue()
    for bar, epoch in ((4, 1), (5, 2)):
        waiting.put(BarRequest(bar=bar, capsule=happy, epoch=epoch))
    todo, stop = current(BarRequest(bar=3, capsule=happy, epoch=1), waiting.get_nowait)
    assert [(r.bar, r.epoch) for r in todo] == [(5, 2)] and not stop
    waiting.put(BarRequest(bar=6, capsule=happy, epoch=2))
    waiting.put(None)
    todo, stop = current(waiting.get(), waiting.get_nowait)
    assert [r.bar for r in todo] == [6] and stop
    assert current(None, waiting.get_nowait) == ([], True)
