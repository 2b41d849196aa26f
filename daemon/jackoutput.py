"""The JACK output queue: messages placed on the frame of their time, written by the process callback.

``send(message, at_ns=deadline)`` queues a message for the frame of
``deadline``; the scheduler hands events over :attr:`JackOutput.lead_ns` early
so the callback that covers the deadline's frame already has them. A message
without a time goes out at the first frame of the next period.
``discard_pending()`` drops queued messages: a panic calls it first, so a
note-on handed over before the panic cannot sound after its note-off.

Overruns (xruns): when a period overruns, JACK can lose what a client wrote in
it, and a lost note-off is a stuck note. After JACK reports an xrun the
callback writes again, at once, the releasing messages (note-offs, CC 123,
CC 120) of the last few periods that no later note-on on the same key or
channel has superseded; a duplicate release is harmless. :meth:`JackOutput.drain`
waits for periods that really ran, and starts over after an xrun.

The client that owns the port (:class:`~affetto.daemon.jackports.JackMidiPorts`)
is seen through :class:`PortOwner`: its loss, its counters of periods and
xruns, and its trouble counters.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import Counter, deque
from typing import Any, Protocol

from affetto.daemon.midi import ALL_NOTES_OFF, ALL_SOUND_OFF, CHANNEL, CONTROL_CHANGE, KIND, NOTE_OFF, NOTE_ON
from affetto.errors import PortError

LEAD_MARGIN_NS = 2_000_000  # beyond two periods, for the scheduler's and the callback's wake-up jitter
LOCK_TIMEOUT_S = 0.5  # a producer never waits longer for the pending queue (the callback holds it µs)
RELEASING_CCS = (ALL_SOUND_OFF, ALL_NOTES_OFF)
RESEND_PERIODS = 8  # after an xrun, releases written this many periods back are written again
DRAIN_TIMEOUT_S = 2.0  # a close waits at most this long for its last messages (JACK may be stalled)


class PortOwner(Protocol):
    """What the output reads of the client that owns it."""

    reason: str
    cycles: int  # process callbacks run so far
    xruns: int  # xruns JACK reported
    trouble: Counter[str]

    @property
    def lost(self) -> bool: ...


class JackOutput:
    """Queued, frame-placed output; the owner's process callback calls :meth:`write_cycle`."""

    timed = True

    def __init__(self, owner: PortOwner, name: str, period_ns: int) -> None:
        self._owner = owner
        self.name = name
        self.period_ns = period_ns
        self.lead_ns = 2 * period_ns + LEAD_MARGIN_NS
        self._lock = threading.Lock()
        self._pending: list[tuple[int, int, bytes, bool]] = []  # heap of (at_ns, seq, data, timed)
        self._due: list[tuple[int, int, bytes, bool]] = []  # the callback's own: this period's, or held over
        self._seq = itertools.count()
        self._written: deque[tuple[int, bytes]] = deque(maxlen=1024)  # (period, data), the callback's own
        self._xruns_handled = 0
        self.resent = 0  # releases written again after xruns

    @property
    def lost(self) -> bool:
        return self._owner.lost

    def send(self, message: list[int], at_ns: int | None = None) -> None:
        """Queue ``message`` for the frame of ``at_ns`` (monotonic ns), or for the next period without one."""
        if self._owner.lost:
            raise PortError(f"the JACK server has gone away ({self._owner.reason})")
        timed = at_ns is not None
        entry = (time.monotonic_ns() if at_ns is None else at_ns, next(self._seq), bytes(message), timed)
        if not self._lock.acquire(timeout=LOCK_TIMEOUT_S):
            raise PortError("the JACK output queue is stuck")
        try:
            heapq.heappush(self._pending, entry)
        finally:
            self._lock.release()

    def discard_pending(self) -> list[list[int]]:
        """Drop every queued message; returns them (a caller releases notes whose note-offs were among them)."""
        if not self._lock.acquire(timeout=LOCK_TIMEOUT_S):
            raise PortError("the JACK output queue is stuck")
        try:
            dropped = sorted(self._pending)
            self._pending.clear()
        finally:
            self._lock.release()
        return [list(entry[2]) for entry in dropped]

    def drain(self, periods: int, timeout: float = DRAIN_TIMEOUT_S) -> bool:
        """Wait until the queue is written out and ``periods`` more periods ran without an xrun
        (False on loss or timeout). Periods that ran, not JACK's frame clock: under load the clock
        moves on while no period writes anything."""
        owner = self._owner
        end = time.monotonic() + timeout
        target: int | None = None
        xruns = owner.xruns
        while not owner.lost and time.monotonic() < end:
            if owner.xruns != xruns:  # what was written may be lost: wait for the writes again
                target, xruns = None, owner.xruns
            if target is None and not self._pending and not self._due and self._xruns_handled == xruns:
                target = owner.cycles + periods
            if target is not None and owner.cycles >= target:
                return True
            time.sleep(self.period_ns / 4e9)
        return False

    def close(self) -> None:
        """Nothing of its own to close: the client goes with :meth:`JackMidiPorts.close`."""

    def forget(self) -> None:
        """Drop everything queued, held over and remembered (the server went away; no callback runs)."""
        with self._lock:
            self._pending.clear()
        self._due.clear()
        self._written.clear()

    # -- JACK's thread ------------------------------------------------------------
    def write_cycle(self, port: Any, start_ns: int, ns_per_frame: float, frames: int,
                    full: type[BaseException]) -> None:
        """Write this period's messages at their frames, in non-decreasing order (JACK requires it)."""
        due = self._due
        pending = self._pending
        if self._xruns_handled != self._owner.xruns:
            self._xruns_handled = self._owner.xruns
            self._resend_releases(start_ns)
        if pending:  # noqa: SIM102 (a locked queue waits a period; kept apart from the emptiness test)
            if self._lock.acquire(False):
                try:
                    limit = start_ns + (frames - 0.5) * ns_per_frame
                    while pending and pending[0][0] < limit:
                        due.append(heapq.heappop(pending))
                finally:
                    self._lock.release()
        if not due:
            return
        last = written = 0
        cycle = self._owner.cycles
        try:
            for at_ns, _seq, data, timed in due:
                offset = round((at_ns - start_ns) / ns_per_frame)
                if offset < 0 and timed:
                    self._owner.trouble["JACK output: a message came after its frame (sent a period late)"] += 1
                offset = min(max(offset, last), frames - 1)
                port.write_midi_event(offset, data)
                self._written.append((cycle, data))
                last = offset
                written += 1
        except full:
            self._owner.trouble["JACK output buffer full (messages held for the next period)"] += 1
        finally:
            del due[:written]

    def _resend_releases(self, start_ns: int) -> None:
        """Queue again, first, the recent releases no later note-on superseded (JACK reported an xrun)."""
        oldest = self._owner.cycles - RESEND_PERIODS
        again: list[bytes] = []
        sounding_after: set[tuple[int, int]] = set()  # (channel, pitch) started later; pitch -1: any
        for cycle, data in reversed(self._written):
            if cycle < oldest:
                break
            kind, channel = data[0] & KIND, data[0] & CHANNEL
            if kind == NOTE_ON and data[2] > 0:
                sounding_after.update(((channel, data[1]), (channel, -1)))
            elif kind in (NOTE_OFF, NOTE_ON):
                if (channel, data[1]) not in sounding_after:
                    again.append(data)
            elif kind == CONTROL_CHANGE and data[1] in RELEASING_CCS and (channel, -1) not in sounding_after:
                again.append(data)
        self.resent += len(again)
        self._due[:0] = [(start_ns, -1, data, False) for data in reversed(again)]
