"""What every conductor mode is: the :class:`Mode` interface and the two things it can say.

A mode is one small object with its own state. At the start of bar ``k`` the
conductor calls :meth:`Mode.at_bar_line` with the seed buffer and acts on what
comes back: an :class:`Ask` for bar ``k + 1``, a :class:`Cancel` of what was
asked from a bar on, or nothing; on every note-on of the player it calls
:meth:`Mode.on_note`, which may give back the first bar whose material is
cancelled; on every transport change, and whenever the bars start over after
a fault or a port's return, :meth:`Mode.reset`. The clock, the pending bars,
the late policy, channel routing and logging stay in the conductor.

A mode class also says what it needs from the rest of the daemon, read by
the config, the service and the conductor without a list of mode names
anywhere else: the task its bars are asked as, the kind of generator that
serves them (:data:`affetto.daemon.generators.GENERATORS`), whether its bars
carry voices for the harmony channels, and whether it plays a line of its own
on the output channel.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Protocol

from affetto.daemon.seed import SeedBuffer
from affetto.music.notes import Note, TimeSignature


@dataclass(frozen=True, slots=True)
class Ask:
    """Ask the generator for ``bar``: from ``seed`` (None: go on from what it has), as ``task``.

    A harmonise ask carries the loop as ``seed``, its length ``loop_bars`` and
    the asked bar's ``position`` from the loop's first bar line. With
    ``join_current`` the bar that has just begun (``bar - 1``) is asked for
    too, and whatever of it is not yet due when it comes back is played.
    """

    bar: int
    seed: tuple[Note, ...] | None
    task: str
    loop_bars: int = 0
    position: int = 0
    join_current: bool = False


@dataclass(frozen=True, slots=True)
class Cancel:
    """Give up what was asked from bar ``bar`` on, cut what of it already sounds, then ask ``then``."""

    bar: int
    then: Ask | None = None


class ModeSettings(Protocol):
    """What a mode reads from the daemon's configuration (:class:`~affetto.daemon.config.DaemonConfig`)."""

    @property
    def mode(self) -> str: ...

    @property
    def seed_bars(self) -> int: ...

    @property
    def meter(self) -> TimeSignature: ...


class Mode(ABC):
    """What the conductor asks at bar lines; one object per run, with its own state."""

    name: ClassVar[str]  # the name it is registered and configured under
    task: ClassVar[str]  # the BarRequest task its bars are asked as
    generator: ClassVar[str] = "lead"  # the kind of generator that serves its requests
    routed: ClassVar[bool] = False  # its bars carry parts (Note.channel): voices 1..3 on the harmony channels
    lead: ClassVar[bool] = True  # it plays a line of its own (part 0) on the output channel
    repeat_on_miss: ClassVar[bool] = True  # a missed bar may be replaced by the last good one
    revisable: ClassVar[bool] = False  # a knob turn redoes the sounding bar from its next beat

    @classmethod
    def from_config(cls, config: ModeSettings) -> Mode:
        """The mode for a run with ``config``. Default: a mode that needs no settings."""
        return cls()

    @abstractmethod
    def at_bar_line(self, bar: int, seed: SeedBuffer) -> Ask | Cancel | None:
        """Bar ``bar`` just started: what to ask for bar ``bar + 1``, or what to give up, if anything."""

    def on_note(self, beat: float) -> int | None:
        """The player started a note at song beat ``beat``: the first bar whose asked-for
        material is now cancelled, or None. Default: a note changes nothing asked."""
        return None

    def check(self, beat: float, seed: SeedBuffer) -> Cancel | None:
        """Called as time passes, on every pass of the conductor's loop while the transport runs and
        before its bar-line logic, with the song beat up to which the player's input has been taken in
        (less than now when messages still wait in the inbox): anything to give up now?"""
        return None

    def reset(self) -> None:
        """The transport changed or the bars start over: forget what was asked. Default: nothing kept."""
        return None
