"""What the conductor says about itself while it plays: every log line it writes.

The conductor decides; this words it, on the conductor's logger, and keeps the
lines a storm of messages could repeat within bounds (one
:class:`~affetto.ratelimit.RateLimitedLog` per kind of line):

- transport changes and missed bars: at most ``LOG_BURST`` per kind every
  ``LOG_PERIOD_S`` (:attr:`Reporter.rl`, which the bar book shares);
- the status line every ``status_every_bars`` bars: bar, tempo, emotion,
  generation time, bars generated and missed, send lateness, notes dropped
  late. The first line after a transport change is limited like the
  transport's own line; the regular lines are not;
- lasting conditions (a wrong channel, a generator's error): once an hour per kind;
- survived failures: once a minute per kind, with the traceback, and a count;
- each new kind of trouble the MIDI input's parsers count: once, then counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from affetto.analysis.emotion import Capsule
from affetto.daemon.barbook import BarBook
from affetto.daemon.midi import SYSTEM
from affetto.daemon.scheduler import Scheduler, percentile
from affetto.ratelimit import RateLimitedLog

LOG_PERIOD_S = 10.0  # per kind of repeated line: at most LOG_BURST lines per this many seconds
LOG_BURST = 4
ONCE_PERIOD_S = 3600.0  # lines about a lasting condition (wrong channel, a generator error)
FAULT_LOG_PERIOD_S = 60.0  # a failure of one kind is logged once a minute at most (with a count)


def is_channel_message(item: object | None) -> bool:
    """An inbox item that is a note or CC (``(t_ns, status, d1, d2)`` below the system messages)."""
    return type(item) is tuple and len(item) == 4 and isinstance(item[1], int) and item[1] < SYSTEM


class Reporter:
    """The conductor's log lines: transport, status, faults, lasting conditions, port trouble."""

    def __init__(
        self, logger: logging.Logger, every_bars: int, *, now_ns: Callable[[], int] = time.monotonic_ns
    ) -> None:
        self.log = logger
        self.every_bars = every_bars
        self.rl = RateLimitedLog(logger, period_s=LOG_PERIOD_S, burst=LOG_BURST, now_ns=now_ns)
        self._once_log = RateLimitedLog(logger, period_s=ONCE_PERIOD_S, now_ns=now_ns)
        self._fault_log = RateLimitedLog(logger, period_s=FAULT_LOG_PERIOD_S, now_ns=now_ns)
        self._next_bar = 0
        self._due_to_transport = False
        self._trouble_seen: dict[str, int] = {}

    # -- transport ---------------------------------------------------------------
    def started(self, kind: str, bar: int, beat_in_bar: float, bpm: float) -> None:
        """The transport started or continued in ``bar`` (0-based); a status line is due there."""
        self._next_bar = bar
        self._due_to_transport = True
        self.rl.info(f"transport:{kind}", "transport %s at bar %d beat %.2f (%.1f BPM)", kind, bar + 1,
                     beat_in_bar, bpm)

    def halted(self, kind: str, beat: float, released: int) -> None:
        """The transport stopped or jumped at song beat ``beat``, releasing ``released`` notes."""
        self.rl.info(f"transport:{kind}", "transport %s at beat %.2f%s", kind, beat,
                     f", released {released} note(s)" if released else "")

    # -- the status line ---------------------------------------------------------
    def at(self, bar: int, bpm: float, capsule: Capsule, book: BarBook, scheduler: Scheduler) -> None:
        """Bar ``bar`` (0-based) is under way: the status line, when one is due."""
        if bar < self._next_bar:
            return
        self._next_bar = bar + self.every_bars
        lat = list(scheduler.lateness_ns)
        gen = book.times().recent_mean
        args = (
            "bar %d | %.1f BPM | %s | gen %s | bars %d generated, %d missed | lateness p99 %s | %d notes dropped late",
            bar + 1,
            bpm,
            capsule,
            f"{gen:.0f} ms" if gen is not None else "-",  # nothing measured yet at the first bars
            book.generated,
            book.missed,
            f"{percentile(lat, 99) / 1e6:.2f} ms" if lat else "-",
            scheduler.dropped_late,
        )
        if self._due_to_transport:
            self._due_to_transport = False
            self.rl.info("status:transport", *args)
        else:
            self.log.info(*args)

    # -- trouble -----------------------------------------------------------------
    def once(self, kind: str, message: str) -> None:
        """A lasting condition: its line once an hour per kind."""
        # kinds may carry data (a generator's error text): the limiter keeps a bounded number of them
        self._once_log.warning(kind, "%s (repeats are held back for an hour)", message)

    def fault(self, where: str, item: object | None, err: Exception) -> None:
        """A failure in ``where`` (handling ``item``, or the bar line) that the conductor survives."""
        if type(item) is tuple and len(item) > 1 and isinstance(item[1], int):
            what = f"MIDI status {item[1]:#04x}"
        else:
            what = type(item).__name__ if item is not None else "the clock"
        self._fault_log.log(
            logging.ERROR,
            f"fault:{where}:{type(err).__name__}",
            "survived a failure in %s (%s): %s: %s; %s",
            where,
            what,
            type(err).__name__,
            err,
            "the message was dropped" if is_channel_message(item) else "owned notes released, bars start over",
            exc_info=err,
        )

    def release_failed(self, err: Exception) -> None:
        self._fault_log.log(logging.ERROR, f"fault:release:{type(err).__name__}", "release failed: %s", err)

    def trouble(self, sources: tuple) -> None:
        """Log each kind of trouble the ports' parsers count, the first time it appears."""
        for source in sources:
            for kind, count in list(source.trouble.items()):
                if kind not in self._trouble_seen:
                    self.log.warning("MIDI ports: %s (logged once; counted from here on)", kind)
                self._trouble_seen[kind] = count
