"""DaemonConfig validation, TOML loading, overrides, controls mapping, and the click commands."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from affetto.analysis.emotion import Capsule, Quadrant, knob_value
from affetto.daemon.cli import ports, run
from affetto.daemon.config import DaemonConfig
from affetto.daemon.controls import Controls
from affetto.daemon.generator import BarRequest
from affetto.errors import ConfigError
from affetto.music.notes import Note, TimeSignature
from affetto.runtime.sampling import SamplingOverrides


def test_defaults_and_toml_with_overrides(tmp_path):
    path = tmp_path / "studio.toml"
    path.write_text(
        '[daemon]\nport-name = "studio"\nmeter = "6/8"\nemotion_cc = 21\nmode = "call-response"\n'
    )
    config = DaemonConfig.load(path)
    assert config.port_name == "studio" and config.meter == TimeSignature(6, 8)
    assert config.mode == "call-response" and config.emotion_cc == 21
    config = config.replace(port_name="live", bpm=None)
    assert config.port_name == "live" and config.bpm == 120.0
    assert config.to_dict()["meter"] == "6/8"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"channel": 0}, "channel must be in range 1..16"),
        ({"emotion_cc": 200}, "emotion_cc must be in range 0..119"),
        ({"valence_cc": 1}, "valence_cc and arousal_cc go together"),
        ({"valence_cc": 20, "arousal_cc": 21}, "each control needs its own CC"),
        ({"mode": "jam"}, "mode must be one of call-response, continue, ensemble, harmonise, transfer, variation, "
                          "got 'jam'"),
        ({"clock": "ptp"}, "clock must be one of internal, link, midi, got 'ptp'"),
        ({"midi_api": "oss"}, "midi_api must be one of"),
        ({"meter": "4-4"}, "meter must look like"),
        ({"bpm": "fast"}, "bpm must be a number"),
        ({"nonsense": 1}, "unknown daemon setting"),
        ({"midi_api": "winmm"}, "loopMIDI"),
        ({"candidates": 0}, "candidates must be in range 1..16"),
        ({"precision": "fp16"}, "precision must be one of auto, fp32, int8, got 'fp16'"),
        ({"precision": "fp32", "model": "my.onnx"}, "with model = 'my.onnx' it has nothing to pick"),
    ],
)
def test_validation_messages(overrides, message):
    with pytest.raises(ConfigError, match=message):
        DaemonConfig().replace(**overrides)


def test_sampling_settings_are_one_validated_object(tmp_path):
    path = tmp_path / "studio.toml"
    path.write_text('temperature = 0.9\n[sampling]\ntop-p = 0.8\n')
    config = DaemonConfig.load(path)
    assert config.sampling == SamplingOverrides(temperature=0.9, top_p=0.8)
    assert config.replace(candidates=2).sampling == SamplingOverrides(temperature=0.9, top_p=0.8, candidates=2)
    assert config.to_dict()["sampling"] == {"temperature": 0.9, "top_p": 0.8}
    with pytest.raises(ConfigError, match="unknown sampling setting"):
        DaemonConfig.from_dict({"sampling": {"heat": 1}})
    with pytest.raises(ConfigError, match="top_k must be an int"):
        DaemonConfig(sampling=SamplingOverrides(top_k=2.5))


def test_bar_requests_are_keyword_only_and_checked_once():
    request = BarRequest(bar=3, capsule=Capsule.of(Quadrant.Q1), task="answer")
    assert request.sampling == SamplingOverrides() and request.seed is None
    with pytest.raises(TypeError):
        BarRequest(3, Capsule.of(Quadrant.Q1))  # type: ignore[misc]  # keyword-only on purpose
    for bad, message in (
        ({"bar": -1}, "bar must be an int >= 0"),
        ({"capsule": (1, 0, 0, 0)}, "capsule must be a Capsule"),
        ({"sampling": {"temperature": 1.0}}, "sampling must be SamplingOverrides"),
        ({"seed": [Note(60, 0, 1)]}, "seed must be a tuple of Notes"),
        ({"task": "improvise"}, "task must be one of continue, answer, harmonise"),
    ):
        with pytest.raises(ConfigError, match=message):
            BarRequest(**{"bar": 0, "capsule": Capsule.of(Quadrant.Q1), **bad})


def test_bad_toml(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("port_name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        DaemonConfig.load(path)
    with pytest.raises(ConfigError, match="cannot read"):
        DaemonConfig.load(tmp_path / "missing.toml")


def test_knob_walks_the_quadrants():
    controls = Controls(DaemonConfig(emotion_smoothing=0.0))
    for quadrant in (Quadrant.Q3, Quadrant.Q4, Quadrant.Q1, Quadrant.Q2):
        assert controls.handle_cc(20, knob_value(quadrant))
        assert controls.at_bar_line().capsule.quadrant is quadrant


def test_xy_mode_and_other_ccs():
    config = DaemonConfig(
        emotion_cc=None, valence_cc=1, arousal_cc=2, temperature_cc=3, guidance_cc=4, emotion_smoothing=0.0
    )
    controls = Controls(config)
    controls.handle_cc(1, 0)
    controls.handle_cc(2, 127)
    assert controls.at_bar_line().capsule.quadrant is Quadrant.Q2
    controls.handle_cc(3, 127)
    controls.handle_cc(4, 0)
    settings = controls.at_bar_line()
    assert settings.sampling.temperature == pytest.approx(1.7) and settings.sampling.guidance == pytest.approx(1.0)
    assert not controls.handle_cc(20, 5)  # not ours in XY mode
    assert not controls.handle_cc(1, 128)  # out of range: ignored
    assert not controls.handle_cc(1, -1)


def test_smoothing_glides_then_settles():
    controls = Controls(DaemonConfig(emotion=knob_value(Quadrant.Q3), emotion_smoothing=0.5))
    controls.handle_cc(20, knob_value(Quadrant.Q1))
    first = controls.at_bar_line().capsule
    assert 0 < first.weights[Quadrant.Q1] < 1
    for _ in range(10):
        last = controls.at_bar_line().capsule
    assert last.weights[Quadrant.Q1] == 1.0


def test_cli_run_rejects_bad_options_with_a_message():
    runner = CliRunner()
    result = runner.invoke(run, ["--channel", "17"])
    assert result.exit_code == 2 and "channel must be in range 1..16" in result.output
    result = runner.invoke(run, ["--meter", "3-4", "--model", "builtin:fake"])
    assert result.exit_code == 2 and "meter must look like" in result.output


def test_cli_run_reports_an_api_that_cannot_work(monkeypatch):
    from affetto.daemon import ports as ports_module

    monkeypatch.setattr(ports_module, "probe_api", lambda name: "no server here")
    result = CliRunner().invoke(run, ["--midi-api", "jack", "--model", "builtin:fake"])
    assert result.exit_code == 2
    assert "MIDI API jack does not work here: no server here" in result.output


def test_cli_ports_lists(monkeypatch):
    from affetto.daemon import ports as ports_module

    monkeypatch.setattr(ports_module, "resolve_api", lambda name: "alsa")
    monkeypatch.setattr(ports_module, "list_ports", lambda api: (["DAW out"], []))
    result = CliRunner().invoke(ports, [])
    assert result.exit_code == 0
    assert "MIDI API: alsa" in result.output and "DAW out" in result.output and "(none)" in result.output


def test_the_readmes_config_file_loads_and_every_key_it_names_is_a_setting(tmp_path):
    """The README's example config is real: it loads as written, and its commented keys exist too."""
    import dataclasses
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```toml\n(\[daemon\]\n.*?)```", readme, re.S).group(1)
    path = tmp_path / "studio.toml"
    path.write_text(block, encoding="utf-8")
    config = DaemonConfig.load(path)
    assert config.harmony_channels == (2, 3, 4) and config.midi_api == "jack"
    keys = {line.split("=")[0].strip("# ").strip() for line in block.splitlines() if "=" in line}
    settings = {f.name for f in dataclasses.fields(DaemonConfig)} | {"temperature", "guidance", "candidates"}
    assert keys <= settings, keys - settings


def test_the_starting_emotion_may_be_words_placed_on_the_knob():
    from affetto.analysis.emotion import Quadrant, knob_capsule, knob_value

    assert DaemonConfig(emotion="sad").emotion == knob_value(Quadrant.Q3)
    assert DaemonConfig(emotion="Q2").emotion == knob_value(Quadrant.Q2)
    assert knob_capsule(DaemonConfig(emotion="melancholic, slow").emotion).quadrant is Quadrant.Q3
    with pytest.raises(ConfigError, match="emotion: unknown mood word 'sadd'; did you mean sad"):
        DaemonConfig(emotion="sadd")
