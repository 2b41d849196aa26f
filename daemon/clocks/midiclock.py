"""The MIDI clock follower: a DAW's MIDI clock (0xF8 at 24 ticks per quarter
note, Start 0xFA, Continue 0xFB, Stop 0xFC, Song Position Pointer 0xF2) as a clock source.

How the follower estimates tempo: a least-squares line ``t = a + b * n``
through the arrival times of the last ``window`` ticks, where ``n`` counts every
tick received (corrected when ticks were lost, see Counting). The song position is an
integer tick count, and the published state puts song tick ``k`` exactly on
the fitted line, so beat phase is locked to the tick count and never to an
accumulated float. When the newest residuals all run the same way beyond the
jitter (the tempo changed), the window restarts from the ticks of that run,
which re-locks within a fraction of a second instead of the ~2 s the full
window would need to forget the old tempo.

Transport: after Start the first tick is beat 0; after Song Position Pointer and
Continue the first tick is the song position. A DAW restarts its tick train at a
transport change, at any phase of the old one: the fitted line keeps its tempo
and is moved to pass through that tick, so a jump lands exactly like a Start.

Counting: every tick counts. Whether a tick went missing (or came twice) is
never guessed from one gap: ticks that arrive off the line beyond the jitter
are held out of the fit, in a run, until the run says what happened (see
``_judge_run``): ticks bunched together or catching up are a stutter (a DAW or
a JACK period that ran late sends its overdue ticks at once, which is common on
a busy machine) and change nothing; ticks that then sit a whole number of ticks
off the line, at its tempo, mean the count is off (a lost or repeated 0xF8) and
the count is corrected; ticks off by the same part of a tick mean the train
moved; ticks further off tick by tick mean the tempo changed. Guessing from
single gaps, which this replaced, took the ticks of a stutter for duplicates
(or for lost ticks) often enough to leave the song position a tick off for the
rest of the song; right after a jump, when the line rests on one tick, it did
so from a first tick that came a little late.

Jitter: a backend that hands MIDI over at period boundaries delays a tick by up
to one period; the fit absorbs that. With a jitter near half a tick, twice as
many ticks decide whether the count is off.
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

MAX_BPM = 1000.0  # a line steeper than this is no tempo (ticks bunched by a stall): the last line is kept
LATE_TICKS = 1.5  # a gap of this many ticks between the first ticks after Start: ticks went missing
SETTLE_TICKS = PPQN  # ticks after Start within which the first ticks' count is checked against the line


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
        self._anchored = False  # the line's phase rests on the first tick after Start/Continue alone
        self._run: list[tuple[int, int, float]] = []  # (n, t_ns, residual): ticks held off the line, one way
        self._ns_per_tick = bpm_to_ns_per_beat(initial_bpm) / PPQN
        self._running = False
        self._armed: Transport | None = None  # START/CONTINUE seen, waiting for the first tick
        self._resumable = False  # stopped because the ticks went silent (not by a Stop): they may come back
        self._early: list[tuple[int, int]] | None = None  # (count, time) of the ticks just after Start/Continue
        self._song_tick = 0  # song position of the next tick to arrive
        self._last_tick_ns: int | None = None
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
        if status in (START, CONTINUE, STOP, SONG_POSITION):
            self._resumable = False  # the DAW says what the transport does
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
                self._resumable = True
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
        last = self._last_tick_ns
        if self._resumable:
            if last is not None and t_ns - last <= 2 * self.timeout_ns:
                return self._resume(t_ns, last)
            self._resumable = False  # silent too long: only Start or Continue starts the song again
        if last is not None and t_ns - last > 2 * self.timeout_ns:
            # the clock was off for a long time: a fresh fit
            self._points.clear()
            self._fit = None
            self._run, self._run_sign = [], 0
        self._n += 1
        self._last_tick_ns = t_ns
        if self._running:
            self._song_tick += 1
        if self._early is not None:
            self._early.append((self._n, t_ns))
        self._add_point(self._n, t_ns)  # may correct the count (see _judge_run)
        self._check_first()
        # stopped, the position stays where it is and the tempo estimate still moves
        self._publish(t_ns, new_epoch=False, on_tick=self._running)
        return []

    def _resume(self, t_ns: int, last: int) -> list[TransportEvent]:
        """Ticks again within twice the timeout after they went silent while running, with no Stop,
        Start or Continue between (a stalled server or DAW; a cable pulled and put back): the song
        goes on where the time says, as after Continue, the ticks of the silence counted as lost."""
        self._resumable = False
        self._count_lost(max(0, round((t_ns - last) / self._ns_per_tick) - 1), resuming=True)
        self._warn_once("resumed", "MIDI clock back after a silence: going on where the time says")
        self._armed = Transport.CONTINUE
        return self._first_tick(t_ns)

    def _first_tick(self, t_ns: int) -> list[TransportEvent]:
        """The first tick after Start or Continue: it *is* the song position, wherever it falls.

        A DAW restarts its tick train at a transport change (a locate is Stop, SPP, Continue within
        a few ms), so this tick may come anywhere between two ticks of the old train. If it is off
        the fitted line, the line is moved (tempo kept) to pass through it, so the song position
        lands on this tick's arrival, exactly as after Start.
        """
        kind = self._armed
        self._armed = None
        last = self._last_tick_ns
        advance = 1
        self._run, self._run_sign = [], 0
        if last is not None and t_ns - last > 2 * self.timeout_ns:
            self._points.clear()  # the clock was off a long time: a fresh fit
            self._fit = None
        elif last is not None and self._fit is not None:
            advance = max(1, round((t_ns - last) / self._ns_per_tick))  # ticks of the line, not of the song
            shift = t_ns - self._predict(self._n + advance)
            if abs(shift) > max(self.min_threshold_ns, 3.0 * self._rms):
                self._move(shift)
        self._n += advance
        self._last_tick_ns = t_ns
        self._early = [(self._n, t_ns)]
        self._add_point(self._n, t_ns)
        self._anchored = True
        self._running = True
        event = TransportEvent(kind, self._song_tick / PPQN, t_ns)  # type: ignore[arg-type]
        self._song_tick += 1
        self._publish(t_ns, new_epoch=True, on_tick=True)
        return [event]

    def _predict(self, n: int) -> float:
        a, b = self._fit  # type: ignore[misc]
        return self._t0 + a + b * n

    def _add_point(self, n: int, t_ns: int) -> None:
        """Fit a tick in, or hold it in the run of ticks off the line until the run is understood."""
        if self._fit is not None and len(self._points) >= 2:
            r = t_ns - self._predict(n)
            threshold = max(self.min_threshold_ns, 3.0 * self._rms)
            sign = 1 if r > threshold else -1 if r < -threshold else 0
            if sign != 0:
                if sign != self._run_sign:
                    self._run, self._run_sign = [], sign
                self._run.append((n, t_ns, r))
                if len(self._run) >= self.run_length:
                    self._judge_run(threshold)  # fits the run in, or holds it
                return
            self._run, self._run_sign = [], 0  # back on the line: what was held was a stutter
        self._anchored = False
        self._points.append((n, t_ns))
        self._refit()

    def _judge_run(self, threshold: float) -> None:
        """``run_length`` or more ticks in a row sit off the line, the same way: what are they?

        Judged on the newest ``run_length`` ticks after the last bunched pair:

        - All the same whole number of ticks off, at the line's tempo: the count is off (a tick
          was lost, or sent twice). The count is corrected, so phase stays locked to the DAW's ticks
          (not while the line still rests on the first tick after Start or Continue alone).
        - All the same amount off, not a whole tick (or any amount while the line rests on the
          first tick, which may have come late with the ticks after it): the DAW's train is
          elsewhere than the line. The line is moved, tempo kept.
        - Bunched (under a third of a tick apart), or late and catching up: a stutter (a DAW or a
          JACK period ran late and sent its overdue ticks together). They are counted and kept out
          of the fit until the ticks are back on the line, or sit the same way off it (for at most
          four runs' worth).
        - Otherwise, further off tick by tick: the tempo changed. The window restarts from the
          run and the tick where it began, which re-locks within a fraction of a second.
        """
        run = self._run
        b = self._ns_per_tick
        tail = run  # the ticks since the last two that came bunched
        for i in range(len(run) - 1, 0, -1):
            if run[i][1] - run[i - 1][1] < 0.3 * b:
                tail = run[i + 1 :]
                break
        limit = len(run) >= 4 * self.run_length
        recent = tail[-self.run_length :]
        residuals = [r for _n, _t, r in recent]
        catching_up = self._run_sign > 0 and len(residuals) > 1 and residuals[-1] < residuals[0] - threshold
        if (len(recent) < self.run_length or catching_up) and not limit:
            return  # a stutter: held
        if len(recent) < self.run_length:  # held long enough: judge the newest ticks as they are
            tail = recent = run[-self.run_length :]
            residuals = [r for _n, _t, r in recent]
        mean = sum(residuals) / len(residuals)
        off = self._whole_ticks(residuals, threshold)
        if off is not None:
            # with a jitter near half a tick, twice as many ticks decide
            need = self.run_length if threshold <= 0.25 * b else 2 * self.run_length
            if (off == 0 or len(tail) < need) and not limit:
                return  # more than one tick went astray in a row, or too few yet: wait until it settles
            recent = tail[-need:]
            residuals = [r for _n, _t, r in recent]
            mean = sum(residuals) / len(residuals)
            if off == 0 or self._whole_ticks(residuals, threshold) != off or abs(mean - off * b) > 0.2 * b:
                off = None
        if off and (not self._anchored or off > 0):
            # (while the line rests on the first tick alone, ticks a whole number of ticks *early* say
            # that tick came late; ticks that many *late* say ticks after it were lost)
            self._recount(off)
            self._points.extend((n + off, t) for n, t, _r in recent)  # what came before them was a stutter
        elif max(residuals) - min(residuals) <= threshold:
            self._move(mean)
            self._points.extend((n, t) for n, t, _r in recent)
        else:
            junction = self._points[-1]
            self._points.clear()
            self._points.append(junction)
            self._points.extend((n, t) for n, t, _r in tail)
            self.restarts += 1
        self._run, self._run_sign = [], 0
        self._anchored = False
        self._refit()

    def _whole_ticks(self, residuals: list[float], threshold: float) -> int | None:
        """When every residual is a whole number of ticks off (the jitter well under half a tick):
        that number if it is the same for all, 0 if it varies; None when they are not whole ticks."""
        b = self._ns_per_tick
        if self._rms > 0.2 * b or len(self._points) < 8:
            return None
        whole = [round(r / b) for r in residuals]
        tolerance = min(max(threshold, 0.2 * b), 0.45 * b)
        if not all(k != 0 and k * whole[0] > 0 and abs(r - k * b) <= tolerance for k, r in zip(whole, residuals)):
            return None
        return whole[0] if len(set(whole)) == 1 else 0

    def _recount(self, off: int) -> None:
        """The newest ticks are ``off`` ticks further on than counted: a lost (or a repeated) 0xF8."""
        self._n += off
        if off > 0:
            self._count_lost(off)
        else:
            if self._running:
                self._song_tick += off
            self.duplicate_ticks -= off
            self._warn_once("duplicate", "duplicate MIDI clock tick(s) dropped")

    def _count_lost(self, lost: int, *, resuming: bool = False) -> None:
        """``lost`` ticks of the song never arrived: the song position moves on by them."""
        if lost <= 0:
            return
        if self._running or resuming:
            self._song_tick += lost
        self.missing_ticks += lost
        self._warn_once("missing", f"MIDI clock tick(s) lost ({lost} counted as missing)")

    def _check_first(self) -> None:
        """Ticks lost just after Start/Continue, before a tempo was known to tell.

        The line then rests on the first two or three ticks, takes a gap in them for a slower tempo (or
        is moved by the ticks after the gap), and the count after the gap is short. Once four ticks after
        the gap give the line, a gap of :data:`LATE_TICKS` or more of its ticks says ticks went missing
        there, and the line says how many: the tick before the gap sits a whole number of ticks earlier
        on it than its count. The ticks after the gap are counted on by them.
        """
        early = self._early
        if early is None or self._fit is None:
            return
        if self._n - early[0][0] > SETTLE_TICKS:
            self._early = None  # settled
            return
        b = self._ns_per_tick
        gap = next((i for i in range(1, len(early)) if early[i][1] - early[i - 1][1] >= LATE_TICKS * b
                    and early[i][0] - early[i - 1][0] == 1), None)
        if gap is None or len(early) - gap < 4:
            return
        n_before, t_before = early[gap - 1]
        a, _ = self._fit
        at = (t_before - self._t0 - a) / b  # the tick before the gap on the line, in ticks
        lost = round(n_before - at)
        if lost < 1 or abs(n_before - at - lost) > 0.25:
            return
        self._n += lost
        self._count_lost(lost)
        self._points.clear()  # the line rests on these ticks, as they came, counted anew
        self._points.extend((n + lost, t) if n > n_before else (n, t) for n, t in early)
        self._run, self._run_sign = [], 0
        self._early = None
        self._refit()

    def _move(self, shift: float) -> None:
        """Move the line by ``shift`` ns, tempo kept."""
        moved = [(n, t + round(shift)) for n, t in self._points]
        self._points.clear()
        self._points.extend(moved)
        self._refit()

    def _refit(self) -> None:
        pts = self._points
        m = len(pts)
        if m < 2:
            return
        t0 = pts[0][1]
        mean_n = sum(p[0] for p in pts) / m
        mean_t = sum(p[1] - t0 for p in pts) / m
        sxx = sum((p[0] - mean_n) ** 2 for p in pts)
        if sxx <= 0:
            return
        sxy = sum((p[0] - mean_n) * (p[1] - t0 - mean_t) for p in pts)
        b = sxy / sxx
        if b < NS_PER_MINUTE / (MAX_BPM * PPQN):
            return  # no tempo (ticks bunched by a stall, or at one instant): keep the last line
        a = mean_t - b * mean_n
        self._t0 = t0
        self._fit = (a, b)
        self._ns_per_tick = b
        if m >= 8:
            self._rms = math.sqrt(sum((p[1] - t0 - a - b * p[0]) ** 2 for p in pts) / (m - 2))

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
