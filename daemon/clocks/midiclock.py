"""The MIDI clock follower: a DAW's MIDI clock (0xF8 at 24 ticks per quarter
note, Start 0xFA, Continue 0xFB, Stop 0xFC, Song Position Pointer 0xF2) as a clock source.

How the follower estimates tempo: a least-squares line ``t = a + b * n``
through the arrival times of the last ``window`` ticks, where ``n`` counts every
tick received (including ticks counted as missing). The song position is an
integer tick count, and the published state puts song tick ``k`` exactly on
the fitted line, so beat phase is locked to the tick count and never to an
accumulated float. When the newest residuals all run the same way beyond the
jitter (the tempo changed), the window restarts from the ticks of that run,
which re-locks within a fraction of a second instead of the ~2 s the full
window would need to forget the old tempo.

Transport: after Start the first tick is beat 0; after Song Position Pointer and
Continue the first tick is the song position. The first tick after either is
never taken for a duplicate or for lost ticks (a DAW restarts its tick train
there, at any phase of the old one): the fitted line keeps its tempo and is
moved to pass through that tick, so a jump lands exactly like a Start.

Jitter: JACK hands MIDI over at period boundaries, so a tick arrives up to one
period late. The fit absorbs that. A tick that arrives much later than the
next predicted tick (three quarters of a tick period or more) is counted as
one or more missing ticks, so a lost 0xF8 does not leave the daemon a tick
behind for the rest of the song; a tick that arrives far earlier than
predicted is a duplicate and is dropped.
"""

from __future__ import annotations

import logging
import math
from collections import deque

from affetto.daemon.clocks.base import (
    DEFAULT_BPM,
    NS_PER_MINUTE,
    Clock,
    ClockState,
    Transport,
    TransportEvent,
    bpm_to_ns_per_beat,
)
from affetto.daemon.midi import CLOCK, CONTINUE, PPQN, SONG_POSITION, SPP_MAX, START, STOP, TICKS_PER_SPP_UNIT
from affetto.errors import ConfigError

log = logging.getLogger("affetto.daemon.clock")  # the name its log lines have always had


class MidiClockFollower(Clock):
    """Follows MIDI clock, transport and Song Position Pointer from a DAW."""

    name = "midi"

    def __init__(
        self,
        *,
        window: int = 48,
        run_length: int = 3,
        min_threshold_ns: int = 2_000_000,
        timeout_ns: int = 1_000_000_000,
        initial_bpm: float = DEFAULT_BPM,
    ) -> None:
        if not isinstance(window, int) or window < 4:
            raise ConfigError(f"clock window must be an int >= 4 ticks, got {window!r}")
        self.window = window
        self.run_length = run_length
        self.min_threshold_ns = min_threshold_ns
        self.timeout_ns = timeout_ns
        self._points: deque[tuple[int, int]] = deque(maxlen=window)  # (n, t_ns)
        self._n = -1  # counter of every tick received or counted missing
        self._fit: tuple[float, float] | None = None  # (a, b): t = a + b * (n - n0) + t0
        self._t0 = 0  # time offset keeping the fit's floats small
        self._rms = 0.0
        self._run_sign = 0
        self._run: list[tuple[int, int]] = []
        self._ns_per_tick = bpm_to_ns_per_beat(initial_bpm) / PPQN
        self._running = False
        self._armed: Transport | None = None  # START/CONTINUE seen, waiting for the first tick
        self._song_tick = 0  # song position of the next tick to arrive
        self._last_tick_ns: int | None = None
        self._suspect: tuple[int, int] | None = None  # (gap, ticks counted missing) awaiting review
        self._epoch = 0
        self._state = ClockState(False, 0, 0.0, self._ns_per_tick * PPQN, 0)
        # counters, for the status line and tests
        self.missing_ticks = 0
        self.duplicate_ticks = 0
        self.restarts = 0
        self._warned: set[str] = set()

    # -- interface -------------------------------------------------------
    @property
    def state(self) -> ClockState:
        return self._state

    @property
    def song_tick(self) -> int:
        """Song position, in ticks, of the next tick to arrive."""
        return self._song_tick

    def handle(self, status: int, data: int, t_ns: int) -> list[TransportEvent]:
        if status == CLOCK:
            return self._tick(t_ns)
        if status == START:
            if self._running:
                self._warn_once("start-running", "Start while running: restarting from bar 1")
            self._running = False
            self._song_tick = 0
            self._armed = Transport.START
            self._publish(t_ns, new_epoch=True)
            return []
        if status == CONTINUE:
            if self._running:
                self._warn_once("continue-running", "Continue while running: ignored")
                return []
            self._armed = Transport.CONTINUE
            return []
        if status == STOP:
            if not (self._running or self._armed is not None):
                self._warn_once("stop-stopped", "Stop without Start: releasing notes anyway")
            # the position stays where the ticks put it, so Continue resumes from there
            self._running = False
            self._armed = None
            self._publish(t_ns, new_epoch=True)
            return [TransportEvent(Transport.STOP, self._song_tick / PPQN, t_ns)]
        if status == SONG_POSITION:
            if not isinstance(data, int) or not 0 <= data <= SPP_MAX:
                self._warn_once("spp-range", f"Song Position Pointer out of range: {data!r}")
                return []
            events = []
            if self._running:
                # a DAW sends Stop, SPP, Continue; an SPP while running is a jump all the same
                self._warn_once(
                    "spp-running", "Song Position Pointer while running: treated as Stop + locate"
                )
                self._running = False
                events.append(TransportEvent(Transport.STOP, self._song_tick / PPQN, t_ns))
            self._song_tick = data * TICKS_PER_SPP_UNIT
            self._publish(t_ns, new_epoch=True)
            events.append(TransportEvent(Transport.LOCATE, self._song_tick / PPQN, t_ns))
            return events
        return []

    def check(self, t_ns: int) -> list[TransportEvent]:
        """Stop if the clock went silent while running (cable pulled, DAW crashed)."""
        if self._running and self._last_tick_ns is not None:
            silent = t_ns - self._last_tick_ns
            if silent > max(self.timeout_ns, 12 * self._ns_per_tick):
                self._warn_once("timeout", f"no MIDI clock for {silent / 1e9:.2f} s while running: stopping")
                self._running = False
                self._armed = None
                self._publish(t_ns, new_epoch=True)
                return [TransportEvent(Transport.STOP, self._song_tick / PPQN, t_ns)]
        return []

    # -- tempo estimation -----------------------------------------------
    @property
    def bpm(self) -> float:
        return NS_PER_MINUTE / (self._ns_per_tick * PPQN)

    def _tick(self, t_ns: int) -> list[TransportEvent]:
        if self._armed is not None:
            return self._first_tick(t_ns)
        advance = 1
        last = self._last_tick_ns
        if last is not None and t_ns - last > 2 * self.timeout_ns:
            # the clock was off for a long time: a fresh start, not thousands of missing ticks
            self._points.clear()
            self._fit = None
            self._run = []
            self._run_sign = 0
            self._suspect = None
        elif last is not None and self._fit is not None and len(self._points) >= 8:
            b = self._ns_per_tick
            gap = t_ns - last
            jitter = max(2_000_000.0, 3.5 * self._rms)  # spread of arrival times around the line
            if self._suspect is not None:
                self._review_suspect(gap)
            if gap >= 1.4 * b + jitter:
                # probably lost tick(s); confirmed or undone by the next gap (see _review_suspect)
                missing = max(1, int(gap / b + 0.5) - 1)
                self.missing_ticks += missing
                advance += missing
                self._suspect = (gap, missing)
            elif gap <= max(0.25 * b, b - 1.4 * jitter) and t_ns - self._predict(self._n + 1) < -0.5 * b:
                self.duplicate_ticks += 1
                self._warn_once("duplicate", "duplicate MIDI clock tick dropped")
                return []
        self._n += advance
        self._last_tick_ns = t_ns
        self._add_point(self._n, t_ns)

        if self._running:
            self._song_tick += advance
            self._publish(t_ns, new_epoch=False, on_tick=True)
        else:
            self._publish(t_ns, new_epoch=False)  # stopped: the tempo estimate still moves
        return []

    def _first_tick(self, t_ns: int) -> list[TransportEvent]:
        """The first tick after Start or Continue: it *is* the song position, wherever it falls.

        A DAW restarts its tick train at a transport change (a locate is Stop, SPP, Continue within
        a few ms), so this tick may come anywhere between two ticks of the old train. It is never a
        duplicate and never a sign of lost ticks; if it is off the fitted line, the line is moved
        (tempo kept) to pass through it, so the song position lands on this tick's arrival, exactly
        as after Start.
        """
        kind = self._armed
        self._armed = None
        last = self._last_tick_ns
        advance = 1
        self._run, self._run_sign, self._suspect = [], 0, None
        if last is not None and t_ns - last > 2 * self.timeout_ns:
            self._points.clear()  # the clock was off a long time: a fresh fit
            self._fit = None
        elif last is not None and self._fit is not None:
            advance = max(1, round((t_ns - last) / self._ns_per_tick))
            shift = t_ns - self._predict(self._n + advance)
            if abs(shift) > max(self.min_threshold_ns, 3.0 * self._rms):
                moved = [(n, t + round(shift)) for n, t in self._points]
                self._points.clear()
                self._points.extend(moved)
                self._refit()
        self._n += advance
        self._last_tick_ns = t_ns
        self._add_point(self._n, t_ns)
        self._running = True
        event = TransportEvent(kind, self._song_tick / PPQN, t_ns)  # type: ignore[arg-type]
        self._song_tick += 1
        self._publish(t_ns, new_epoch=True, on_tick=True)
        return [event]

    def _review_suspect(self, gap: int) -> None:
        """A long gap was counted as missing ticks; the gap after it tells whether it was a tempo drop."""
        long_gap, missing = self._suspect  # type: ignore[misc]
        self._suspect = None
        old_period = long_gap / (missing + 1)
        if abs(gap - old_period) > 0.3 * old_period and gap > 0.6 * long_gap:
            # the ticks kept coming at the long spacing: the tempo dropped, nothing was lost
            self.missing_ticks -= missing
            self._n -= missing
            if self._running:
                self._song_tick -= missing
            n, t = self._points.pop()
            self._points.append((n - missing, t))
            self._refit()
            return
        self._warn_once("missing", f"MIDI clock tick(s) lost ({missing} counted as missing)")

    def _predict(self, n: int) -> float:
        a, b = self._fit  # type: ignore[misc]
        return self._t0 + a + b * n

    def _add_point(self, n: int, t_ns: int) -> None:
        if self._fit is not None and len(self._points) >= 2:
            r = t_ns - self._predict(n)
            threshold = max(self.min_threshold_ns, 3.0 * self._rms)
            sign = 1 if r > threshold else -1 if r < -threshold else 0
            if sign != 0 and sign == self._run_sign:
                self._run.append((n, t_ns))
            elif sign != 0:
                self._run_sign = sign
                self._run = [(n, t_ns)]
            else:
                self._run_sign = 0
                self._run = []
            if len(self._run) >= self.run_length:
                # the tempo changed: keep the run and the tick where it began
                junction = self._points[-1]
                self._points.clear()
                self._points.append(junction)
                self._points.extend(self._run[:-1])
                self._run = []
                self._run_sign = 0
                self.restarts += 1
        self._points.append((n, t_ns))
        self._refit()

    def _refit(self) -> None:
        pts = self._points
        m = len(pts)
        if m < 2:
            return
        self._t0 = pts[0][1]
        mean_n = sum(p[0] for p in pts) / m
        mean_t = sum(p[1] - self._t0 for p in pts) / m
        sxx = sum((p[0] - mean_n) ** 2 for p in pts)
        if sxx <= 0:
            return
        sxy = sum((p[0] - mean_n) * (p[1] - self._t0 - mean_t) for p in pts)
        b = sxy / sxx
        if b <= 0:
            return
        a = mean_t - b * mean_n
        self._fit = (a, b)
        self._ns_per_tick = b
        if m >= 8:
            self._rms = math.sqrt(sum((p[1] - self._t0 - a - b * p[0]) ** 2 for p in pts) / (m - 2))

    def _publish(self, t_ns: int, *, new_epoch: bool, on_tick: bool = False) -> None:
        if new_epoch:
            self._epoch += 1
        ns_per_beat = self._ns_per_tick * PPQN
        if self._running and on_tick:
            # the newest tick (song tick ``song_tick - 1``), placed on the fitted line:
            # phase locked to the tick count
            origin_ns = round(self._predict(self._n)) if self._fit is not None else t_ns
            origin_beat = (self._song_tick - 1) / PPQN
        else:
            origin_ns = t_ns
            origin_beat = self._song_tick / PPQN
        self._state = ClockState(self._running, origin_ns, origin_beat, ns_per_beat, self._epoch)

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning("clock: %s (further ones are not logged)", message)
