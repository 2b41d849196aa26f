"""``affetto run`` and ``affetto ports``: the daemon's command line.

Click only fills in a :class:`~affetto.daemon.config.DaemonConfig`; the
daemon modules are imported inside the commands so ``affetto --help`` stays
fast and never loads ONNX Runtime.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from affetto.runtime.assets import PRECISIONS

API_CHOICES = ["auto", "coremidi", "alsa", "jack", "winmm"]


class Registered(click.Choice):
    """A choice among the names a plug-in registry holds when the command line is read, so a mode or a
    clock source registered in its folder is offered here with no edit (and this module stays light)."""

    def __init__(self, names: Callable[[], Sequence[str]]) -> None:
        self._names = names
        super().__init__(())

    # click 8.4 declares Choice.choices a Sequence, 8.5 a tuple: a settable property must match exactly.
    @property  # type: ignore[override,unused-ignore]
    def choices(self) -> tuple[Any, ...]:
        return tuple(self._names())

    @choices.setter
    def choices(self, value: Any) -> None:  # click's own __init__ sets them: they are read live
        pass


def _mode_names() -> list[str]:
    from affetto.daemon.modes import MODES

    return MODES.names()


def _clock_names() -> list[str]:
    from affetto.daemon.clocks import CLOCKS

    return CLOCKS.names()


def _channel(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and not 1 <= value <= 16:
        raise click.BadParameter("channel must be in range 1..16")
    return value


def _channels(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        channels = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(f"three channels like 2,3,4, got {value!r}") from None
    if len(channels) != 3 or not all(1 <= c <= 16 for c in channels):
        raise click.BadParameter(f"three channels in range 1..16 like 2,3,4, got {value!r}")
    return channels


def _cc(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and not 0 <= value <= 119:
        raise click.BadParameter("a controller number must be in range 0..119")
    return value


@click.command("run")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    help="TOML file with daemon settings; the options below override it.",
)
@click.option(
    "--midi-api", type=click.Choice(API_CHOICES), help="MIDI API (default auto: one that works here)."
)
@click.option(
    "--port-name", help="Name of the virtual ports: '<name> in' and '<name> out' (default affetto)."
)
@click.option(
    "--in", "in_port", metavar="PORT", help="Attach to this existing input port (name or substring)."
)
@click.option(
    "--out", "out_port", metavar="PORT", help="Attach to this existing output port (name or substring)."
)
@click.option(
    "--clock",
    type=Registered(_clock_names),
    help="Follow MIDI clock (midi, the default), run one (internal), or join an Ableton Link session "
    "(link, needs affetto[link]).",
)
@click.option("--bpm", type=float, help="Tempo of the internal clock.")
@click.option("--meter", help="Time signature, e.g. 4/4 or 6/8.")
@click.option("--emotion-cc", type=int, callback=_cc, help="CC of the emotion knob (default 20).")
@click.option("--valence-cc", type=int, callback=_cc, help="CC for valence (XY mode, with --arousal-cc).")
@click.option("--arousal-cc", type=int, callback=_cc, help="CC for arousal (XY mode, with --valence-cc).")
@click.option("--temperature-cc", type=int, callback=_cc, help="CC that sets the sampling temperature.")
@click.option("--guidance-cc", type=int, callback=_cc, help="CC that sets the guidance scale.")
@click.option("--density-cc", type=int, callback=_cc, help="CC that sets the density level (1..6).")
@click.option("--texture-cc", type=int, callback=_cc,
              help="CC that sets the texture: a single line (0) .. full chords (127).")
@click.option("--emotion-source", type=click.Choice(["knob", "follow", "contrast", "blend"]),
              help="Where the emotion comes from (default knob): follow the player's mood, answer it in "
              "contrast (opposite valence), or blend it with the knob.")
@click.option("--channel", type=int, callback=_channel, help="Output MIDI channel, 1..16 (default 1).")
@click.option(
    "--mode",
    type=Registered(_mode_names),
    help="What to play (default continue): call-response answers your phrases, harmonise plays voices "
    "under your loop, ensemble the lead with voices.",
)
@click.option(
    "--harmony-channels",
    callback=_channels,
    metavar="A,T,B",
    help="Channels of alto, tenor and bass in harmonise and ensemble modes (default 2,3,4).",
)
@click.option("--seed-bars", type=click.IntRange(1, 16),
              help="Bars a call-response answers at most; continue mode primes from this + 2.")
@click.option("--model", help="An exported .onnx model (default: the shipped one; builtin:fake for a stand-in).")
@click.option("--precision", type=click.Choice(PRECISIONS),
              help="The shipped lead model's weights when no --model is named: auto (int8 on the CPU), fp32 or int8.")
@click.option(
    "--ensemble-model",
    help="The voices' ensemble .onnx (default: the shipped one; builtin:fake for a stand-in).",
)
@click.option("--threads", type=click.IntRange(1, 256), help="ONNX Runtime threads.")
@click.option(
    "--generator-host",
    type=click.Choice(["thread", "process"]),
    help="Run the generator in a thread or a child process.",
)
@click.option("--status-port", type=click.IntRange(0, 65535), metavar="PORT",
              help="Serve a live status page on this port (0: any free port; off by default).")
@click.option("--status-host", metavar="HOST", help="Where the status page listens (default 127.0.0.1).")
@click.option("-v", "--verbose", count=True, help="More logging (-v: debug).")
def run(config_path: str | None, verbose: int, **options: object) -> None:
    """Follow the DAW's clock and stream generated bars to the output port."""
    from affetto.daemon.config import DaemonConfig
    from affetto.daemon.service import run_daemon
    from affetto.errors import AffettoError

    try:
        config = DaemonConfig.load(config_path) if config_path else DaemonConfig()
        if verbose:
            options["log_level"] = "DEBUG"
        config = config.replace(**options)
        code = run_daemon(config)
    except AffettoError as err:
        click.echo(f"affetto: {err}", err=True)
        sys.exit(2)
    # Everything is released and closed by now. Skip the interpreter's final garbage collection:
    # tearing down MIDI backends there (libjack, rtmidi) can crash or hang, and after a JACK server
    # loss the dead ports must never be freed at all.
    import logging
    import os

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@click.command("ports")
@click.option("--midi-api", type=click.Choice(API_CHOICES), default="auto", show_default=True)
def ports(midi_api: str) -> None:
    """List the MIDI input and output ports."""
    from affetto.daemon.ports import list_ports, resolve_api
    from affetto.errors import PortError

    try:
        api = resolve_api(midi_api)
        inputs, outputs = list_ports(api)
    except PortError as err:
        click.echo(f"affetto: {err}", err=True)
        sys.exit(2)
    click.echo(f"MIDI API: {api}")
    for title, names in (("inputs", inputs), ("outputs", outputs)):
        click.echo(f"{title}:")
        for name in names or ["(none)"]:
            click.echo(f"  {name}")
