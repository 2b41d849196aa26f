"""MIDI learn on fakes: which CC counts as moved, bindings, the TOML file, the daemon's learn step, the CLI."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner
from daemon_fakes import make_rig

from affetto.daemon.config import DaemonConfig, parse_trigger
from affetto.daemon.controls import knob_capsule
from affetto.daemon.learn import LearnStep, MoveDetector, bind, save_settings
from affetto.errors import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


def test_the_first_cc_that_moves_more_than_the_jitter_is_bound():
    d = MoveDetector()
    # a noisy fader on CC 7 (+-2 around 64), a controller resending CC 1's state, then CC 21 turned
    feed = [(7, 64), (1, 100), (7, 66), (1, 100), (7, 62), (21, 10), (7, 65), (21, 12), (21, 15)]
    bound = [d.feed(c, v) for c, v in feed]
    assert bound == [None] * 8 + [21]
    assert MoveDetector(ignore=(21,)).feed(21, 0) is None
    assert d.feed(123, 0) is None and d.feed(123, 127) is None  # channel mode messages are no controls


def test_bind_takes_a_cc_from_the_role_that_had_it_and_keeps_the_xy_pair_together():
    c = bind(DaemonConfig(), {"temperature": 20})  # 20 is the emotion knob's by default
    assert c.temperature_cc == 20 and c.emotion_cc is None
    xy = bind(DaemonConfig(), {"valence": 21, "arousal": 22})
    assert xy.xy_mode and (xy.valence_cc, xy.arousal_cc) == (21, 22)
    back = bind(xy, {"density": 21})  # valence's CC: arousal alone is no configuration, both go
    assert back.density_cc == 21 and back.valence_cc is None and back.arousal_cc is None
    with pytest.raises(ConfigError, match="go together"):
        bind(DaemonConfig(), {"valence": 21})
    with pytest.raises(ConfigError, match="unknown role"):
        bind(DaemonConfig(), {"tempo": 21})


def test_learn_trigger_is_checked_where_the_config_is_made():
    assert parse_trigger("cc 102") == ("cc", 102) and parse_trigger("Note:36") == ("note", 36)
    for bad in ("cc 120", "note 128", "knob 3", 5):
        with pytest.raises(ConfigError, match="learn_trigger"):
            DaemonConfig(learn_trigger=bad)
    with pytest.raises(ConfigError, match="a control's CC"):
        DaemonConfig(learn_trigger="cc 20")


STUDIO = """\
# my studio
title = "ignored by nobody"

[daemon]
# the knob on the left
emotion_cc = 20
bpm = 96.0
meter = "3/4"

[notes]
text = "not the daemon's"
"""


def test_save_settings_rewrites_and_adds_keys_in_the_daemon_table_keeping_the_rest(tmp_path):
    path = tmp_path / "studio.toml"
    path.write_text(STUDIO.replace('title = "ignored by nobody"\n', ""), encoding="utf-8")
    config = save_settings(path, {"emotion_cc": 21, "temperature_cc": 22, "guidance_cc": None})
    text = path.read_text(encoding="utf-8")
    assert "# my studio" in text and "# the knob on the left" in text and 'text = "not the daemon\'s"' in text
    data = tomllib.loads(text)
    assert data["daemon"] == {"emotion_cc": 21, "bpm": 96.0, "meter": "3/4", "temperature_cc": 22}
    assert data["notes"] == {"text": "not the daemon's"}
    assert (config.emotion_cc, config.temperature_cc, config.bpm, str(config.meter)) == (21, 22, 96.0, "3/4")
    save_settings(path, {"temperature_cc": None})
    assert "temperature_cc" not in path.read_text(encoding="utf-8")


def test_save_settings_on_top_level_keys_and_on_a_new_file(tmp_path):
    flat = tmp_path / "flat.toml"
    flat.write_text("bpm = 100.0\nemotion-cc = 20\n", encoding="utf-8")
    save_settings(flat, {"emotion_cc": 30, "output_offset_ms": 12.5})
    assert tomllib.loads(flat.read_text(encoding="utf-8")) == {"bpm": 100.0, "emotion_cc": 30, "output_offset_ms": 12.5}
    new = tmp_path / "new.toml"
    save_settings(new, {"density_cc": 23})
    assert DaemonConfig.load(new).density_cc == 23


def test_save_settings_leaves_the_file_alone_when_the_result_is_invalid(tmp_path):
    path = tmp_path / "studio.toml"
    path.write_text("emotion_cc = 20\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="own CC"):
        save_settings(path, {"density_cc": 20})
    assert path.read_text(encoding="utf-8") == "emotion_cc = 20\n"
    assert not (tmp_path / "studio.toml.tmp").exists()


def cc(rig, control, value):
    rig.inbox.put((rig.time(), 0xB0, control, value))
    rig.pump()


def test_the_daemon_learn_step_binds_roles_in_turn(caplog):
    caplog.set_level(logging.INFO, logger="affetto.daemon.learn")
    rig = make_rig(learn_trigger="cc 102")
    rig.start()
    controls = rig.conductor.controls
    assert isinstance(rig.conductor.learn, LearnStep)

    def learn(control, values):
        cc(rig, 102, 127)  # the button: pressed ...
        cc(rig, 102, 0)  # ... and released
        for v in values:
            cc(rig, control, v)

    learn(21, [64, 65, 63, 70])  # jitter, then a move: emotion
    assert controls.config.emotion_cc == 21 and not rig.conductor.learn.armed
    cc(rig, 21, 5)
    assert controls.target() == knob_capsule(5)  # the learned knob plays at once
    learn(22, [0, 10])  # valence: waits for arousal
    assert controls.config.valence_cc is None
    learn(23, [100, 90])  # arousal: the pair applies, XY mode
    assert controls.config.xy_mode and (controls.config.valence_cc, controls.config.arousal_cc) == (22, 23)
    learn(24, [0, 127])  # temperature
    cc(rig, 24, 127)
    assert controls.config.temperature_cc == 24 and controls.at_bar_line().sampling.temperature == pytest.approx(1.7)
    learn(25, [0, 50])  # guidance
    learn(26, [0, 127])  # density
    cc(rig, 26, 127)
    assert controls.at_bar_line().sampling.density == 6
    learn(27, [127, 0])  # texture
    cc(rig, 27, 0)
    assert controls.at_bar_line().sampling.texture == 1
    assert rig.conductor.learn.role == "emotion"  # round again
    assert [r for r, _ in rig.conductor.learn.learned] == [
        "emotion", "valence", "arousal", "temperature", "guidance", "density", "texture"
    ]
    messages = [r.getMessage() for r in caplog.records]
    assert "learn: move the control for emotion" in messages
    assert any("temperature <- CC 24" in m and "temperature_cc = 24" in m for m in messages)


def test_a_trigger_note_arms_learning_and_never_reaches_the_seed():
    rig = make_rig(learn_trigger="note 0")
    rig.start()
    rig.advance(rig.ns_per_bar // 4)
    rig.inbox.put((rig.time(), 0x90, 0, 100))
    rig.inbox.put((rig.time(), 0x80, 0, 0))
    rig.pump()
    assert rig.conductor.learn.armed and rig.conductor.seed.latest_onset is None
    cc(rig, 40, 0)
    cc(rig, 40, 60)
    assert rig.conductor.controls.config.emotion_cc == 40


class FakePorts:
    """Stands in for open_ports: messages "arrive" as soon as the ports open."""

    def __init__(self, messages, inbox):
        self.messages, self.inbox = messages, inbox
        self.input = type("In", (), {"name": "fake in"})()
        self.output = type("Out", (), {"name": "fake out", "send": lambda self, m: None})()

    def __enter__(self):
        for i, (control, value) in enumerate(self.messages):
            self.inbox.put((i, 0xB0, control, value))
        return self

    def __exit__(self, *exc):
        return None


@pytest.fixture
def fake_ports(monkeypatch):
    from affetto.daemon import ports

    messages: list = []
    monkeypatch.setattr(ports, "resolve_api", lambda name: "alsa")
    monkeypatch.setattr(ports, "open_ports", lambda api, inbox, **kw: FakePorts(messages, inbox))
    return messages


def test_affetto_learn_asks_for_a_role_and_saves_it(tmp_path, fake_ports):
    from affetto.cli import cli

    path = tmp_path / "studio.toml"
    path.write_text(STUDIO.replace('title = "ignored by nobody"\n', ""), encoding="utf-8")
    fake_ports.extend([(7, 64), (7, 65), (21, 0), (21, 9)])
    result = CliRunner().invoke(cli, ["learn", "--save", str(path)], input="temperature\n")
    assert result.exit_code == 0, result.output
    assert "temperature <- CC 21" in result.output
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert data["daemon"]["temperature_cc"] == 21 and data["daemon"]["bpm"] == 96.0


def test_affetto_learn_valence_learns_arousal_too(tmp_path, fake_ports):
    from affetto.cli import cli

    path = tmp_path / "xy.toml"
    fake_ports.extend([(21, 0), (21, 9), (22, 50), (22, 60)])
    result = CliRunner().invoke(cli, ["learn", "--role", "valence", "--save", str(path)])
    assert result.exit_code == 0, result.output
    assert "move the control for arousal" in result.output
    config = DaemonConfig.load(path)
    assert config.xy_mode and (config.valence_cc, config.arousal_cc) == (21, 22)


def test_affetto_learn_onto_the_default_emotion_cc_says_what_to_do(tmp_path, fake_ports):
    from affetto.cli import cli

    path = tmp_path / "studio.toml"
    fake_ports.extend([(20, 0), (20, 60)])
    result = CliRunner().invoke(cli, ["learn", "--role", "density", "--save", str(path)])
    assert result.exit_code == 2 and "emotion_cc would fall back to its default CC" in result.output
