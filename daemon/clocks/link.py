"""Ableton Link as a clock source: tempo, bar phase and start/stop of a Link session.

The binding is LinkPython-extern (import name ``link``), a dependency of
affetto, imported only when ``clock = "link"``. It
ships wheels for Linux (x86_64, aarch64), macOS (Intel and Apple silicon) and
Windows, and its session-state calls are plain synchronous methods, which is
what a polled clock source wants.

Time bases: Link's clock (``link.clock().micros()``; CLOCK_MONOTONIC_RAW on
Linux, mach time on macOS) is mapped to ``time.monotonic_ns`` by the shared
:class:`~affetto.daemon.timebase.OffsetTracker`, read again at every poll so
the slow drift between the two clocks is followed.

Song position: Link has a beat timeline but no song position. When the
session starts playing (``isPlaying`` with start/stop sync, or at once without
it), the song starts at beat 0 on the session's next bar line (a bar line is
where ``phaseAtTime(t, quantum)`` is 0, quantum = the meter's beats per bar):
a peer that starts with a quantised launch lands there anyway, and one that
starts mid-bar, or a session joined while it plays, gets a short count-in. So
the daemon's bar lines are the session's bar lines; the song beat is Link's
beat minus that origin.

Polling: the conductor calls :meth:`LinkClock.check` at least every 50 ms.
Each call reads the session state and publishes a fresh :class:`ClockState`
anchored at that moment with the session's tempo, so a peer's tempo change
reaches the scheduler within a poll (well within one beat at any tempo the
daemon accepts). Should the session's beat jump (a peer forcing the timeline,
or this peer joining a session that is already playing), the song position
follows: a remapped magnitude with the same phase is absorbed silently, a new
phase is reported as a position jump (locate, then continue).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from affetto.daemon.clocks.base import NS_PER_MINUTE, Clock, ClockState, Transport, TransportEvent
from affetto.daemon.timebase import OffsetTracker
from affetto.errors import ConfigError

log = logging.getLogger("affetto.daemon.link")  # the name its log lines have always had

INSTALL_HINT = "pip install LinkPython-extern (a dependency of affetto: reinstalling affetto brings it)"
JUMP_BEATS = 0.25  # a song position further than this from the prediction is a jump
START_SLACK_BEATS = 0.02  # a start this close after a bar line starts on that bar line
OFFSET_LEAK_NS = 20_000  # per poll (20 or more a second): follows a drift of 0.4 ms/s
LATE_START_US = 250_000  # a start older than this was missed (joined late): wait for the next bar


def load_binding() -> Any:
    """The ``link`` module of LinkPython-extern, or a one-line :class:`ConfigError`."""
    try:
        import link
    except ImportError as err:
        raise ConfigError(f"clock 'link' needs the Ableton Link binding: {INSTALL_HINT}") from err
    if not hasattr(link, "Link"):
        raise ConfigError(f"the 'link' module found is not the Ableton Link binding: {INSTALL_HINT}")
    return link


class LinkClock(Clock):
    """Follows a Link session: tempo, bar lines (phase at ``quantum``) and, optionally, start/stop."""

    name = "link"

    def __init__(
        self,
        quantum: float,
        *,
        bpm: float = 120.0,
        start_stop_sync: bool = True,
        session: Any = None,
        now_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if isinstance(quantum, bool) or not isinstance(quantum, (int, float)) or not 0 < quantum <= 64:
            raise ConfigError(f"Link quantum must be a number of beats in range 0..64, got {quantum!r}")
        if session is None:
            session = load_binding().Link(float(bpm))
        self.quantum = float(quantum)
        self.start_stop_sync = start_stop_sync
        self._link = session
        self._now = now_ns
        self._link.startStopSyncEnabled = start_stop_sync
        self._link.enabled = True
        self._offset = OffsetTracker(leak_ns=OFFSET_LEAK_NS)
        self._read_offset()
        self._origin = 0.0  # Link beat of song beat 0
        self._running = False
        self._armed: float | None = None  # Link beat of the bar line the song will start on
        self._epoch = 0
        self._peers = 0
        self._state = ClockState(False, now_ns(), 0.0, NS_PER_MINUTE / float(bpm), 0)
        self.jumps = 0

    # -- interface -----------------------------------------------------------
    @property
    def state(self) -> ClockState:
        return self._state

    @property
    def peers(self) -> int:
        return self._peers

    def check(self, t_ns: int) -> list[TransportEvent]:
        """Read the session at ``t_ns``: tempo, phase, start/stop; returns transport events."""
        self._read_offset()
        session = self._link.captureAppSessionState()
        q = self.quantum
        now_us = self._offset.to_outside(t_ns) // 1000
        ns_per_beat = NS_PER_MINUTE / session.tempo()
        playing = session.isPlaying() if self.start_stop_sync else True
        self._note_peers()
        events: list[TransportEvent] = []

        if playing and not self._running:
            return self._arm_or_start(session, t_ns, now_us, ns_per_beat)

        if not playing:
            self._armed = None
        if not playing and self._running:
            beat = session.beatAtTime(now_us, q) - self._origin
            self._running = False
            self._epoch += 1
            self._publish(t_ns, beat, ns_per_beat)
            return [TransportEvent(Transport.STOP, beat, t_ns)]

        if not self._running:
            self._publish(t_ns, self._state.origin_beat, ns_per_beat)
            return events

        beat = session.beatAtTime(now_us, q) - self._origin
        predicted = self._state.beat_at(t_ns)
        # a tempo change since the last poll moves the beat away from the prediction too
        elapsed = (t_ns - self._state.origin_ns) / ns_per_beat
        tolerance = JUMP_BEATS + elapsed * abs(self._state.ns_per_beat / ns_per_beat - 1)
        if abs(beat - predicted) > tolerance:
            beat, jumped = self._realign(session, now_us, predicted, tolerance)
            if jumped:
                self.jumps += 1
                self._epoch += 1
                log.info("Link: the session's beat jumped to %.2f (was %.2f): following", beat, predicted)
                events.append(TransportEvent(Transport.LOCATE, beat, t_ns))
                events.append(TransportEvent(Transport.CONTINUE, beat, t_ns))
        self._publish(t_ns, beat, ns_per_beat)
        return events

    def close(self) -> None:
        """Leave the session."""
        self._link.enabled = False

    # -- helpers ----------------------------------------------------------------
    def _read_offset(self) -> None:
        us = self._link.clock().micros()
        self._offset.sample(us * 1000, self._now())

    def _arm_or_start(self, session: Any, t_ns: int, now_us: int, ns_per_beat: float) -> list[TransportEvent]:
        """The session plays and the song does not yet: start on the session's next bar line."""
        q = self.quantum
        beat_now = session.beatAtTime(now_us, q)
        if self._armed is None or not -2 * q < self._armed - beat_now < 2 * q:
            start_us = session.timeForIsPlaying() if self.start_stop_sync else now_us
            # a start seen late (joining a session that plays already) waits for the next bar line
            self._armed = self._bar_line_from(session, start_us if start_us > now_us - LATE_START_US else now_us)
        if beat_now < self._armed:
            self._publish(t_ns, self._state.origin_beat, ns_per_beat)  # a count-in: still stopped
            return []
        self._origin, self._armed = self._armed, None
        self._running = True
        self._epoch += 1
        self._publish(t_ns, beat_now - self._origin, ns_per_beat)
        return [TransportEvent(Transport.START, 0.0, self._state.time_at(0.0))]

    def _bar_line_from(self, session: Any, us: int) -> float:
        """Link beat of the session's first bar line at or after ``us``; a start a hair after a bar
        line (``START_SLACK_BEATS``) counts as on it."""
        q = self.quantum
        beat = session.beatAtTime(us, q)
        phase = session.phaseAtTime(us, q)
        if phase < START_SLACK_BEATS:
            return beat - phase
        return beat + (q - phase)

    def _realign(self, session: Any, now_us: int, predicted: float, tolerance: float) -> tuple[float, bool]:
        """The song beat nearest the prediction that has the session's phase; jumped when it is
        still far from the prediction."""
        q = self.quantum
        phase = session.phaseAtTime(now_us, q)
        song = math.floor((predicted - phase) / q + 0.5) * q + phase
        self._origin = session.beatAtTime(now_us, q) - song
        return song, abs(song - predicted) > tolerance

    def _publish(self, t_ns: int, beat: float, ns_per_beat: float) -> None:
        self._state = ClockState(self._running, t_ns, beat, ns_per_beat, self._epoch)

    def _note_peers(self) -> None:
        peers = self._link.numPeers()
        if peers != self._peers:
            log.info("Link: %d peer(s) in the session", peers)
            self._peers = peers
