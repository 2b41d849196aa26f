"""The daemon's configuration: one frozen dataclass, validated on creation.

Sources, lowest precedence first: defaults, a TOML file (top-level keys or a
``[daemon]`` table, names as below with ``-`` or ``_``), CLI options. Channels
are 1..16 here, as musicians count them. The sampling settings are one
:class:`~affetto.runtime.sampling.SamplingOverrides` (``sampling``); a TOML
file or the overrides may also name them flat (``temperature = 0.9``) or as
a ``[daemon.sampling]`` table.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from affetto.analysis.emotion import knob_for, parse_emotion
from affetto.daemon.clocks import CLOCKS
from affetto.daemon.modes import mode_class
from affetto.errors import ConfigError, EmotionError
from affetto.music.notes import TimeSignature
from affetto.runtime.assets import check_precision
from affetto.runtime.sampling import SamplingOverrides

MIDI_APIS = ("auto", "coremidi", "alsa", "jack", "winmm")
LATE_POLICIES = ("repeat", "rest")
HOSTS = ("thread", "process")
FAKE_MODEL = "builtin:fake"
EMOTION_SOURCES = ("knob", "follow", "contrast", "blend")  # daemon/emotion_source.py
SAMPLING_KEYS = ("temperature", "guidance", "top_k", "top_p", "candidates")  # may be given flat


def _check_int(name: str, value: Any, lo: int, hi: int, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an int, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be in range {lo}..{hi}, got {value!r}")


def _check_float(name: str, value: Any, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be in range {lo}..{hi}, got {value!r}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


_TRIGGER = re.compile(r"^\s*(cc|note)\s*[ :]?\s*(\d{1,3})\s*$", re.IGNORECASE)


def parse_trigger(text: Any) -> tuple[str, int]:
    """``"cc 102"`` or ``"note 36"`` -> ``("cc", 102)``; a :class:`ConfigError` otherwise."""
    match = _TRIGGER.match(text) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(f"learn_trigger must look like 'cc 102' or 'note 36', got {text!r}")
    kind, number = match.group(1).lower(), int(match.group(2))
    top = 119 if kind == "cc" else 127
    if number > top:
        raise ConfigError(f"learn_trigger {kind} number must be in range 0..{top}, got {number}")
    return kind, number


@dataclass(frozen=True)
class DaemonConfig:
    # ports
    midi_api: str = "auto"  # auto picks an API that really works here, never a broken default
    port_name: str = "affetto"  # virtual ports "<name> in" / "<name> out"
    in_port: str | None = None  # attach to an existing input port (name or substring) instead
    out_port: str | None = None  # attach to an existing output port instead
    # time
    clock: str = "midi"  # a registered source (affetto.daemon.clocks): the DAW's MIDI clock, internal, link
    link_start_stop: bool = True  # Link: start and stop with the session (else run from joining it)
    bpm: float = 120.0  # internal clock tempo
    meter: TimeSignature = field(default_factory=TimeSignature)
    # controls (CC numbers); valence_cc and arousal_cc together switch to XY mode
    emotion_cc: int | None = 20
    valence_cc: int | None = None
    arousal_cc: int | None = None
    temperature_cc: int | None = None
    guidance_cc: int | None = None
    density_cc: int | None = None  # busy-ness, 0..127 -> density level 1..6, instead of the emotion's plan
    texture_cc: int | None = None  # notes per onset, 0..127 -> a single line (1) .. full chords (5)
    learn_trigger: str | None = None  # "cc 102" (a button) or "note 36": learn the next CC (daemon/learn.py)
    emotion: int = 85  # knob value until the first CC arrives (85 = Q1, happy); words or Q1..Q4 are placed on it
    emotion_smoothing: float = 0.3  # weight of the previous capsule at each bar line
    emotion_source: str = "knob"  # knob, or the player's recognised mood: follow, contrast, blend (emotion_source.py)
    # MIDI channels, 1..16
    channel: int = 1  # output channel (the lead's line)
    harmony_channels: tuple[int, ...] = (2, 3, 4)  # alto, tenor, bass in harmonise and ensemble modes
    in_channel: int | None = None  # listen to notes and CCs on this channel only (None: all)
    # generation
    mode: str = "continue"  # a registered mode (affetto.daemon.modes): continue, call-response, harmonise, ...
    seed_bars: int = 2  # call-response answers at most this many bars; continue primes from seed_bars + 2
    model: str | None = None  # .onnx path; "builtin:fake" for the test generator
    precision: str = "auto"  # the shipped lead model when no model is named: auto (int8 on the CPU), fp32, int8
    ensemble_model: str | None = None  # the voices' .onnx (harmonise, ensemble); "builtin:fake" for a test one
    threads: int | None = None  # ONNX Runtime intra-op threads
    transfer_method: str = "auto"  # transfer, variation: the CVAE when shipped (auto), "cvae" or "rule"
    transfer_strength: float = 1.0  # transfer, variation: how far the loop moves towards the knob's emotion
    # sampling; a setting left at None takes the model's own (its manifest, else affetto's defaults)
    sampling: SamplingOverrides = field(default_factory=SamplingOverrides)
    rng_seed: int | None = None
    # The generator's Python sampling loop holds the GIL; in a child process it cannot delay the
    # scheduler's wake-ups (bench/bench_daemon.py: p99 0.008 ms vs 3.8 ms in a thread, with FIFO).
    generator_host: str = "process"
    late_policy: str = "repeat"  # a bar not ready in time: "repeat" the last good one, or "rest"
    margin_ms: float = 20.0  # a bar must be ready this long before its bar line
    revise_ms: float = 150.0  # after a knob turn, the sounding bar is redone from the first half beat this far off
    output_offset_ms: float = 0.0  # send every event this much early: the MIDI round trip (affetto calibrate)
    # real time
    fifo_priority: int | None = 70  # SCHED_FIFO for the scheduler; None: do not ask
    switch_interval_ms: float = 1.0  # sys.setswitchinterval, bounds GIL hand-over delays
    queue_size: int = 4096  # bounded input queue; overflow is dropped and counted
    status_every_bars: int = 4
    status_port: int | None = None  # the status page (daemon/status_http.py) on this port; 0: any free one
    status_host: str = "127.0.0.1"  # where it listens: loopback unless you name another address
    drain_periods: int = 4  # keep a JACK port open this many periods after the last message
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        _check_choice("midi_api", self.midi_api, MIDI_APIS)
        if not isinstance(self.port_name, str) or not self.port_name.strip():
            raise ConfigError(f"port_name must be a non-empty string, got {self.port_name!r}")
        for name in ("in_port", "out_port", "model", "ensemble_model"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{name} must be a non-empty string, got {value!r}")
        CLOCKS.get(self.clock)  # the registered sources (affetto.daemon.clocks), listed when it is not one
        _check_float("bpm", self.bpm, 20, 400)
        if not isinstance(self.link_start_stop, bool):
            raise ConfigError(f"link_start_stop must be true or false, got {self.link_start_stop!r}")
        if isinstance(self.meter, str):
            object.__setattr__(self, "meter", TimeSignature.parse(self.meter))
        if not isinstance(self.meter, TimeSignature):
            raise ConfigError(f"meter must look like 4/4, got {self.meter!r}")
        for name in ("emotion_cc", "valence_cc", "arousal_cc", "temperature_cc", "guidance_cc", "density_cc",
                     "texture_cc"):
            _check_int(name, getattr(self, name), 0, 119, optional=True)
        if (self.valence_cc is None) != (self.arousal_cc is None):
            raise ConfigError("valence_cc and arousal_cc go together (XY mode): set both or neither")
        ccs = [
            c
            for c in (
                self.emotion_cc,
                self.valence_cc,
                self.arousal_cc,
                self.temperature_cc,
                self.guidance_cc,
                self.density_cc,
                self.texture_cc,
            )
            if c is not None
        ]
        if len(ccs) != len(set(ccs)):
            raise ConfigError(f"each control needs its own CC number, got {ccs}")
        if self.learn_trigger is not None:

            kind, number = parse_trigger(self.learn_trigger)
            if kind == "cc" and number in ccs:
                raise ConfigError(f"learn_trigger CC {number} is a control's CC already: pick another")
        if isinstance(self.emotion, str):  # "sad", "Q4", "melancholic, slow": the knob's nearest position
            try:
                object.__setattr__(self, "emotion", knob_for(parse_emotion(self.emotion)))
            except EmotionError as err:
                raise ConfigError(f"emotion: {err}") from err
        _check_int("emotion", self.emotion, 0, 127)
        _check_float("emotion_smoothing", self.emotion_smoothing, 0.0, 0.95)
        _check_choice("emotion_source", self.emotion_source, EMOTION_SOURCES)
        _check_int("channel", self.channel, 1, 16)
        _check_int("in_channel", self.in_channel, 1, 16, optional=True)
        mode = mode_class(self.mode)  # the registered modes (affetto.daemon.modes), listed when it is not one
        if isinstance(self.harmony_channels, list):
            object.__setattr__(self, "harmony_channels", tuple(self.harmony_channels))
        if not isinstance(self.harmony_channels, tuple) or len(self.harmony_channels) != 3:
            raise ConfigError(f"harmony_channels are three channels (alto, tenor, bass), got {self.harmony_channels!r}")
        for ch in self.harmony_channels:
            _check_int("harmony_channels", ch, 1, 16)
        if mode.routed:  # it plays voices on the harmony channels
            if len(set(self.harmony_channels)) != 3:
                raise ConfigError(f"harmony_channels must be three different channels, got {self.harmony_channels}")
            if mode.lead and self.channel in self.harmony_channels:
                raise ConfigError(
                    f"the lead's channel {self.channel} is one of the harmony channels {self.harmony_channels}"
                )
            if round(self.meter.beats_per_bar, 6) not in (3.0, 4.0):
                raise ConfigError(
                    f"--mode {self.mode} writes voices in bars of 3 or 4 quarter notes (4/4, 3/4, 2/2, 6/8), "
                    f"got {self.meter}"
                )
        _check_int("seed_bars", self.seed_bars, 1, 16)
        _check_int("threads", self.threads, 1, 256, optional=True)
        check_precision(self.precision, self.model)
        _check_choice("transfer_method", self.transfer_method, ("auto", "cvae", "rule"))
        _check_float("transfer_strength", self.transfer_strength, 0.0, 1.0)
        if isinstance(self.sampling, dict):
            object.__setattr__(self, "sampling", SamplingOverrides.from_dict(self.sampling))
        if not isinstance(self.sampling, SamplingOverrides):
            raise ConfigError(f"sampling must be a table of sampling settings, got {self.sampling!r}")
        _check_int("rng_seed", self.rng_seed, 0, 2**63 - 1, optional=True)
        _check_choice("generator_host", self.generator_host, HOSTS)
        _check_choice("late_policy", self.late_policy, LATE_POLICIES)
        _check_float("margin_ms", self.margin_ms, 0.0, 1000.0)
        _check_float("revise_ms", self.revise_ms, 0.0, 2000.0)
        _check_float("output_offset_ms", self.output_offset_ms, 0.0, 500.0)
        _check_int("fifo_priority", self.fifo_priority, 1, 99, optional=True)
        _check_float("switch_interval_ms", self.switch_interval_ms, 0.1, 50.0)
        _check_int("queue_size", self.queue_size, 16, 1_000_000)
        _check_int("status_every_bars", self.status_every_bars, 1, 10_000)
        _check_int("status_port", self.status_port, 0, 65535, optional=True)
        if not isinstance(self.status_host, str) or not re.fullmatch(r"[\w.:\[\]-]+", self.status_host):
            raise ConfigError(f"status_host must be a host name or address, got {self.status_host!r}")
        _check_int("drain_periods", self.drain_periods, 1, 100)
        if str(self.log_level).upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"log_level must be DEBUG, INFO, WARNING or ERROR, got {self.log_level!r}")
        if self.midi_api == "winmm" and (self.in_port is None or self.out_port is None):
            raise ConfigError(
                "Windows (winmm) has no virtual MIDI ports: create a pair with loopMIDI "
                "(https://www.tobias-erichsen.de/software/loopmidi.html) and pass --in and --out"
            )

    @property
    def xy_mode(self) -> bool:
        return self.valence_cc is not None

    @property
    def out_channel(self) -> int:
        """Output channel, 0..15."""
        return self.channel - 1

    @property
    def part_channels(self) -> tuple[int, int, int, int]:
        """MIDI channels 0..15 of the parts: the lead, then alto, tenor and bass."""
        alto, tenor, bass = (c - 1 for c in self.harmony_channels)
        return (self.out_channel, alto, tenor, bass)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["meter"] = str(self.meter)
        out["sampling"] = self.sampling.given()
        return out

    def replace(self, **overrides: Any) -> DaemonConfig:
        """A copy with ``overrides`` applied; ``None`` values mean "not given" and are skipped."""
        given = {k.replace("-", "_"): v for k, v in overrides.items() if v is not None}
        flat = {k: given.pop(k) for k in SAMPLING_KEYS if k in given}
        if flat or "sampling" in given:
            sampling = given.get("sampling", self.sampling)
            if isinstance(sampling, dict):
                sampling = SamplingOverrides.from_dict({k.replace("-", "_"): v for k, v in sampling.items()})
            if not isinstance(sampling, SamplingOverrides):
                raise ConfigError(f"sampling must be a table of sampling settings, got {sampling!r}")
            given["sampling"] = sampling.replace(**flat)
        unknown = sorted(set(given) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"unknown daemon setting(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **given)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DaemonConfig:
        return cls().replace(**data)

    @classmethod
    def load(cls, path: str | Path) -> DaemonConfig:
        """Read a TOML file (top-level keys, or a ``[daemon]`` table)."""
        if sys.version_info >= (3, 11):
            import tomllib
        else:
            import tomli as tomllib

        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as err:
            raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config file {path} is not valid TOML: {err}") from err
        if "daemon" in data and isinstance(data["daemon"], dict):
            data = data["daemon"]
        return cls.from_dict(data)

    def describe(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.to_dict().items())
