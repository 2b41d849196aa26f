"""The scheduler: sends note events at absolute deadlines derived from the clock.

Events are kept in *beats* (song position) and turned into wall-clock
deadlines with the clock's current state right before sending, so a tempo
change reaches notes that were queued at the old tempo. The thread sleeps on
a condition variable until about ``spin_ns`` before an event is due (new
material, a tempo change or a stop wakes it early), then spins the rest on
``time.monotonic_ns`` and sends.

An event is due ``lead_ns`` before its deadline. With an untimed output (rtmidi)
``lead_ns`` is 0 and the message goes out at the deadline. A timed output
(native JACK) places each message on the frame of the ``at_ns`` it is given, so
it gets the event ``lead_ns`` early (about two JACK periods) with
``at_ns=deadline``: what the scheduler's wake-up jitter costs then is absorbed
by the lead instead of reaching the music. Lateness (send time minus the time
the event was due) is measured for every event. ``offset_ns``
(``output_offset_ms``, measured by ``affetto calibrate``) moves every deadline
that much earlier, so notes land on the grid after the MIDI path's round trip.

Policies:

- A note-on more than ``max_late_beats`` late is dropped (counted), not
  played out of time; its note-off then finds nothing to release.
- Note-offs are never dropped, and at equal beats they go before note-ons.
- While the clock is stopped nothing is sent; the conductor calls
  :meth:`release_all` on Stop, which empties the queue and panics (a timed
  output first drops what it was handed but has not played).

Priority: with ``fifo_priority`` the thread asks for SCHED_FIFO via
``os.sched_setscheduler``; where that is refused (no root, no rtprio limit, not
Linux) it logs a warning and runs at normal priority.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from affetto.daemon.clocks import ClockState
from affetto.daemon.notes import OwnedOutput
from affetto.music.notes import Note

log = logging.getLogger(__name__)

ON, OFF = 1, 0  # sort key: at equal beats, note-offs first
MAX_WAIT_NS = 20_000_000  # re-read the clock at least this often while waiting


@dataclass(frozen=True, slots=True)
class Sent:
    """A record of one sent event (kept by :class:`Scheduler` for tests and benchmarks)."""

    beat: float
    deadline_ns: int  # when the event should sound
    sent_ns: int  # when it was handed to the output (deadline - lead_ns at best)
    kind: int
    channel: int
    pitch: int


def set_fifo_priority(priority: int) -> bool:
    """Give the calling thread SCHED_FIFO ``priority``; False (with a warning) where refused."""
    setter = getattr(os, "sched_setscheduler", None)
    if setter is None:
        log.warning("SCHED_FIFO is not available on this platform: running at normal priority")
        return False
    try:
        setter(0, os.SCHED_FIFO, os.sched_param(priority))
    except (PermissionError, OSError) as err:
        log.warning(
            "could not get SCHED_FIFO priority %d (%s): running at normal priority; "
            "run as root or grant an rtprio limit (/etc/security/limits.d) for tighter timing",
            priority,
            err,
        )
        return False
    return True


class Scheduler:
    """One thread that plays note events at their deadlines through an :class:`OwnedOutput`."""

    def __init__(
        self,
        output: OwnedOutput,
        clock_state: Callable[[], ClockState],
        *,
        spin_ns: int = 1_000_000,
        lead_ns: int = 0,
        offset_ns: int = 0,
        max_late_beats: float = 0.25,
        fifo_priority: int | None = None,
        keep_sent: int = 0,
        now_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.output = output
        self._clock_state = clock_state
        self.spin_ns = spin_ns
        self.lead_ns = lead_ns  # hand events over this early (a timed output places them exactly)
        self.offset_ns = offset_ns  # every deadline this much early: the MIDI round trip (output_offset_ms)
        self.max_late_beats = max_late_beats
        self.fifo_priority = fifo_priority
        self.fifo = False
        self._now = now_ns
        self._cond = threading.Condition(output.lock)
        # (beat, ON/OFF, seq, channel, pitch, velocity of a note-on | onset beat of a note-off's note,
        #  epoch, event id of the note-on)
        self._heap: list[tuple[float, int, int, int, int, float, int, int]] = []
        self._seq = itertools.count()
        self._tokens: dict[int, int] = {}  # event id of a note-on -> ownership token
        self._epoch = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.lateness_ns: deque[int] = deque(maxlen=4096)
        self.sent_log: deque[Sent] = deque(maxlen=keep_sent or 1)
        self._keep_sent = keep_sent > 0
        self.dropped_late = 0
        self.error: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> Scheduler:
        self._thread = threading.Thread(target=self._run, name="affetto-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def __enter__(self) -> Scheduler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.release_all()

    # -- the queue -----------------------------------------------------------
    def add_notes(self, notes: Sequence[Note], offset_beats: float, *, channel: int | None = None) -> int:
        """Queue ``notes`` (onsets relative to ``offset_beats``); returns how many were queued."""
        with self._cond:
            for note in notes:
                ch = note.channel if channel is None else channel
                start = offset_beats + note.onset
                event = next(self._seq)
                heapq.heappush(
                    self._heap, (start, ON, event, ch, note.pitch, note.velocity, self._epoch, event)
                )
                heapq.heappush(
                    self._heap,
                    (start + note.duration, OFF, next(self._seq), ch, note.pitch, start, self._epoch, event),
                )
            self._cond.notify_all()
        return len(notes)

    def pending(self) -> int:
        with self._cond:
            return sum(1 for e in self._heap if e[1] == ON)

    def cancel_from(self, beat: float, *, cut: bool = False) -> int:
        """Drop queued note-ons at or after ``beat`` (their note-offs become no-ops); returns the count.

        With ``cut``, notes that started at or after ``beat`` and still sound
        are ended now (their note-offs go out at once).
        """
        with self._cond:
            before = len(self._heap)
            self._heap = [e for e in self._heap if not (e[1] == ON and e[0] >= beat - 1e-9)]
            dropped = before - len(self._heap)
            if cut:
                # sounding: its note-on went out (it holds a token); e[5] of a note-off is its note's onset
                ended = [e for e in self._heap if e[1] == OFF and e[7] in self._tokens and e[5] >= beat - 1e-9]
                if ended:
                    gone = {e[2] for e in ended}  # their sequence numbers
                    self._heap = [e for e in self._heap if e[2] not in gone]
                    for e in ended:
                        self.output.note_off(e[3], e[4], self._tokens.pop(e[7]))
            heapq.heapify(self._heap)
            self._cond.notify_all()
            return dropped

    def release_all(self) -> int:
        """Empty the queue and release every owned note (note-offs + CC 123); returns notes released."""
        with self._cond:
            self._heap.clear()
            self._tokens.clear()
            self._epoch += 1
            self._cond.notify_all()
            return self.output.panic()

    def run_due(self, now_ns: int) -> int:
        """Send, on the calling thread, every event due by ``now_ns`` (deadline - lead_ns <= now_ns);
        for tests and single-threaded use."""
        sent = 0
        with self._cond:
            state = self._clock_state()
            while self._heap and state.running:
                deadline = self._deadline(state, self._heap[0][0])
                if deadline - self.lead_ns > now_ns:
                    break
                self._send(heapq.heappop(self._heap), state, deadline)
                sent += 1
        return sent

    def wake(self) -> None:
        """Re-read the clock now (call after a tempo or transport change)."""
        with self._cond:
            self._cond.notify_all()

    # -- the thread --------------------------------------------------------
    def _run(self) -> None:
        if self.fifo_priority is not None:
            self.fifo = set_fifo_priority(self.fifo_priority)
        try:
            self._loop()
        except BaseException as err:  # never die silently: record, release, and let the conductor know
            self.error = err
            log.exception("scheduler thread failed")
            try:
                self.release_all()
            except Exception:
                log.exception("release after scheduler failure failed")

    def _loop(self) -> None:
        cond = self._cond
        now = self._now
        while True:
            with cond:
                if self._stopping:
                    return
                state = self._clock_state()
                if not self._heap or not state.running:
                    cond.wait(MAX_WAIT_NS / 1e9)
                    continue
                beat = self._heap[0][0]
                deadline = self._deadline(state, beat)
                due = deadline - self.lead_ns
                remaining = due - now()
                if remaining > self.spin_ns:
                    cond.wait(min(remaining - self.spin_ns, MAX_WAIT_NS) / 1e9)
                    continue
                epoch = self._epoch
            # spin the last stretch without the lock (and without sleeping)
            while now() < due:
                pass
            with cond:
                if epoch != self._epoch or not self._heap or self._heap[0][0] != beat or self._stopping:
                    continue  # released or rearranged while spinning
                state = self._clock_state()
                if not state.running:
                    continue
                ev = heapq.heappop(self._heap)
                self._send(ev, state, self._deadline(state, beat))  # the freshest estimate of the deadline

    def _deadline(self, state: ClockState, beat: float) -> int:
        """When an event at song position ``beat`` must leave: its time on the clock, minus the offset."""
        return state.time_at(beat) - self.offset_ns

    def _send(self, ev: tuple, state: ClockState, deadline: int) -> None:
        beat, kind, _seq, channel, pitch, velocity, epoch, event = ev
        if epoch != self._epoch:
            return
        sent_ns = self._now()
        late = sent_ns - (deadline - self.lead_ns)
        if kind == ON:
            if late > self.max_late_beats * state.ns_per_beat:
                self.dropped_late += 1
                return
            token = self.output.note_on(channel, pitch, velocity, at_ns=deadline)
            if token:
                self._tokens[event] = token
        else:
            owned = self._tokens.pop(event, None)
            if owned is None:
                return  # its note-on was dropped or cancelled
            self.output.note_off(channel, pitch, owned, at_ns=deadline)
        self.lateness_ns.append(late)
        if self._keep_sent:
            self.sent_log.append(Sent(beat, deadline, sent_ns, kind, channel, pitch))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by nearest rank; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
