"""``affetto learn`` and ``affetto calibrate``: the stage helpers' command line.

Like ``affetto run``, click only gathers options; the daemon modules load
inside the commands, so ``affetto --help`` stays fast.
"""

from __future__ import annotations

import queue
import sys
from pathlib import Path
from typing import NoReturn

import click

from affetto.daemon.cli import API_CHOICES

ROLE_CHOICES = ["emotion", "valence", "arousal", "temperature", "guidance", "density", "texture"]


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"affetto: {message}", err=True)
    sys.exit(code)


@click.command("learn")
@click.option("--in", "in_port", metavar="PORT", help="Listen on this input port (default: a new 'affetto-learn in').")
@click.option("--midi-api", type=click.Choice(API_CHOICES), default="auto", show_default=True)
@click.option("--role", type=click.Choice(ROLE_CHOICES), help="The role to learn (asked when not given).")
@click.option(
    "--save",
    "save_path",
    type=click.Path(dir_okay=False),
    help="TOML config to write the binding into (its other settings are kept; created if missing).",
)
@click.option("--timeout", type=click.FloatRange(1, 3600), default=60.0, show_default=True,
              help="Seconds to wait for a control to move.")
def learn(in_port: str | None, midi_api: str, role: str | None, save_path: str | None, timeout: float) -> None:
    """Bind the next controller you move to a role (emotion, valence, ...) and save it."""
    from affetto.daemon import ports as ports_module
    from affetto.daemon.config import DaemonConfig
    from affetto.daemon.learn import PAIR, MoveDetector, bind, cc_settings, save_settings, wait_for_move
    from affetto.errors import AffettoError

    try:
        config = DaemonConfig.load(save_path) if save_path and Path(save_path).exists() else DaemonConfig()
        if role is None:
            role = click.prompt("Role to learn", type=click.Choice(ROLE_CHOICES))
        roles = [role]
        if role in PAIR and getattr(config, f"{PAIR[role]}_cc") is None:
            roles.append(PAIR[role])  # valence and arousal work as a pair (an XY pad)
        inbox: queue.Queue = queue.Queue(maxsize=4096)
        bindings: dict[str, int] = {}
        api = ports_module.resolve_api(midi_api)
        with ports_module.open_ports(api, port_name="affetto-learn", in_port=in_port, inbox=inbox) as ports:
            port_in, _ = ports_module.endpoints(ports)
            click.echo(f"listening on {port_in.name!r} ({api})")
            for r in roles:
                click.echo(f"move the control for {r} ...")
                cc = wait_for_move(inbox, MoveDetector(ignore=tuple(bindings.values())), timeout)
                if cc is None:
                    _fail(f"no controller moved within {timeout:g} s", 1)
                bindings[r] = cc
                click.echo(f"{r} <- CC {cc}")
        new = bind(config, bindings)
        if save_path:
            old = cc_settings(config)
            changed = {k: v for k, v in cc_settings(new).items() if v != old[k]}
            default = cc_settings(DaemonConfig())
            for key, value in changed.items():
                if value is None and default[key] is not None:  # a TOML file cannot say "none"
                    _fail(f"{key} would fall back to its default CC {default[key]}: give it another CC first")
            save_settings(save_path, changed)
            click.echo(f"saved to {save_path}: " + ", ".join(f"{k} = {v}" for k, v in changed.items()))
        else:
            click.echo("put this in your config (or use --save): "
                       + ", ".join(f"{r}_cc = {cc}" for r, cc in bindings.items()))
    except AffettoError as err:
        _fail(str(err))


@click.command("calibrate")
@click.option("--in", "in_port", metavar="PORT", required=True, help="Input port the probes come back on.")
@click.option("--out", "out_port", metavar="PORT", required=True, help="Output port the probes go out on.")
@click.option("--midi-api", type=click.Choice(API_CHOICES), default="auto", show_default=True)
@click.option("--count", type=click.IntRange(2, 1000), default=20, show_default=True, help="Probe notes to send.")
@click.option(
    "--save",
    "save_path",
    type=click.Path(dir_okay=False),
    help="TOML config to write output_offset_ms into (its other settings are kept; created if missing).",
)
def calibrate(in_port: str, out_port: str, midi_api: str, count: int, save_path: str | None) -> None:
    """Time probe notes out and back through the MIDI path; the mean becomes output_offset_ms."""
    from affetto.daemon import ports as ports_module
    from affetto.daemon.calibrate import measure
    from affetto.daemon.learn import save_settings
    from affetto.errors import AffettoError

    try:
        inbox: queue.Queue = queue.Queue(maxsize=4096)
        api = ports_module.resolve_api(midi_api)
        with ports_module.open_ports(
            api, port_name="affetto-calibrate", in_port=in_port, out_port=out_port, inbox=inbox
        ) as ports:
            port_in, port_out = ports_module.endpoints(ports)
            click.echo(f"probing {port_out.name!r} -> {port_in.name!r} ({api}), {count} notes on channel 16")
            result = measure(port_out.send, inbox, count=count)
        click.echo(result.describe())
        if not result.round_trips_ms:
            _fail("nothing measured", 1)
        click.echo(f"output_offset_ms = {result.offset_ms}")
        if save_path:
            save_settings(save_path, {"output_offset_ms": result.offset_ms})
            click.echo(f"saved to {save_path}")
    except AffettoError as err:
        _fail(str(err))
