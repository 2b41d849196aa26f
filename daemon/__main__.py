"""``python -m affetto.daemon run|ports``: the daemon's commands without the main CLI."""

import click

from affetto.daemon.cli import ports, run


@click.group()
def main() -> None:
    """affetto's real-time daemon."""


main.add_command(run)
main.add_command(ports)

if __name__ == "__main__":
    main()
