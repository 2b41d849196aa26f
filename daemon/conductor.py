"""The conductor: clock, seed, controls, generator and scheduler, tied together.

One thread runs :meth:`Conductor.run`: it takes items from the bounded inbox
(MIDI events from the input callback, bar results from the generator worker,
stop requests) and acts at bar lines. Nothing here ever waits on the
generator, and the scheduler converts beats to deadlines on its own.

Bars and lookahead: at the start of bar ``k`` the conductor asks for bar
``k + 1`` with the controls as they are at that bar line (the capsule's
smoothing steps there); after Start (or Continue) at bar ``c`` the first
generated bar is ``c + 1``. A knob turn asks the sounding bar again from its
next reachable half beat (:mod:`affetto.daemon.pending`).

Modes (:mod:`affetto.daemon.modes`) decide what is asked at each bar line and
what a player's note means; the conductor sends what a mode asks, cancels what
it gives up (cutting what of it sounds when asked), and resets it at every
transport change. A routed mode's bars carry parts in ``Note.channel``: part 0
on the output channel, parts 1..3 on the harmony channels.

Late bars: a bar whose notes are not back ``margin_ms`` before its bar line
is given up, and the late policy of :mod:`affetto.daemon.barbook` (which keeps
the counts of bars and the generation times) says what plays in its place; a
result that arrives after its bar was given up is dropped (it still becomes the
"last good bar"). The clock never waits for the generator.

Ownership: on Stop, a position jump, a cancelled answer, an error, or when
:meth:`run` ends for any reason, every owned note is released and CC 123 goes
out on the channels used (see :mod:`affetto.daemon.notes`).

Faults: an exception while handling one inbox item or one bar line is caught
in :meth:`Conductor.turn`, logged (rate-limited, with its traceback the first
time) and counted in ``faults``. A failed note or CC is dropped; any other
failure releases every owned note and starts the bars over from the next bar
line. Every line the conductor logs is worded by
:class:`~affetto.daemon.report.Reporter`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass

from affetto.analysis.emotion import Capsule
from affetto.daemon.barbook import BarBook
from affetto.daemon.clocks import Clock, Transport, TransportEvent
from affetto.daemon.config import DaemonConfig
from affetto.daemon.controls import Controls, Settings
from affetto.daemon.emotion_source import EmotionSource
from affetto.daemon.generator import BarRequest, BarResult
from affetto.daemon.learn import LearnStep
from affetto.daemon.midi import CHANNEL, CONTROL_CHANGE, KIND, NOTE_OFF, NOTE_ON, SONG_POSITION, SYSTEM
from affetto.daemon.modes import Ask, Cancel, Mode, make_mode
from affetto.daemon.pending import Asked, Pending
from affetto.daemon.report import Reporter, is_channel_message
from affetto.daemon.scheduler import Scheduler
from affetto.daemon.seed import SeedBuffer
from affetto.daemon.status_snapshot import StatusBoard
from affetto.music.notes import Note

log = logging.getLogger(__name__)

IDLE_WAIT_NS = 50_000_000  # look at the clock at least this often


@dataclass(frozen=True)
class StopRequest:
    reason: str
    exit_code: int = 0


def _booked(name: str, doc: str) -> property:
    return property(lambda self: getattr(self.book, name), doc=doc)


class Conductor:
    def __init__(
        self,
        config: DaemonConfig,
        clock: Clock,
        scheduler: Scheduler,
        submit: Callable[[BarRequest], None],
        inbox: queue.Queue,
        *,
        trouble_sources: tuple = (),
        port_watch: Callable[[], tuple[int, bool]] | None = None,
        now_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.config = config
        self.clock = clock
        self.scheduler = scheduler
        self.submit = submit
        self.inbox = inbox
        self.now = now_ns
        self.meter = config.meter
        self.bar_beats = config.meter.beats_per_bar
        self.controls = Controls(config)
        self._settings: Settings | None = None  # the controls as they were at the last bar line
        self.learn = LearnStep.from_config(config, self.controls)  # None without a learn_trigger
        self.seed = SeedBuffer(config.meter)
        self.source = EmotionSource.from_config(config)  # the knob, or the player's mood (follow, ...)
        self.mode: Mode = make_mode(config)
        self.trouble_sources = trouble_sources
        self.port_watch = port_watch  # () -> (generation, lost) of the ports (a JACK server can go and return)
        self._port_generation = port_watch()[0] if port_watch is not None else 0
        self._epoch = 0  # bumped by every transport change; results of older epochs are dropped
        self._requested_upto: int | None = None  # highest bar requested in this epoch
        self._pending: dict[int, Pending] = {}
        self.asked = Asked(self.bar_beats)  # what was asked for each bar not yet over (a knob turn asks again)
        self._given_up: set[int] = set()
        self.exit_code = 0
        self.stop_reason: str | None = None
        self._stopping = False
        self.faults = 0  # items or bar lines that raised and were survived
        self.say = Reporter(log, config.status_every_bars, now_ns=now_ns)
        self.book = BarBook(config.late_policy, self.say.rl)
        self.board = StatusBoard(config, self.controls.target(), now_ns())  # the status page reads it
        self._input_ns = now_ns()  # when the newest MIDI message taken from the inbox arrived

    # the book's counts, read as the conductor's (tests, benchmarks, the service's last line)
    bars_generated = _booked("generated", "bars that came back in time and were played")
    bars_missed = _booked("missed", "bars given up: late, failed, or never asked for")
    bars_played = _booked("played", "bars handed to the scheduler, repeats included")
    errors = _booked("errors", "generator failures")
    gen_ms = _booked("gen_ms", "generation times in ms, the latest kept")

    # -- the loop ------------------------------------------------------------
    def run(self) -> int:
        """Process the inbox and bar lines until a stop request; always releases notes."""
        try:
            while not self._stopping:
                now = self.now()
                timeout = max(0.0, (self._next_wake(now) - now) / 1e9)
                try:
                    item = self.inbox.get(timeout=timeout)
                except queue.Empty:
                    item = None
                self.turn(item)
        except BaseException:
            self.exit_code = self.exit_code or 1
            raise
        finally:
            self.release("exit")
        return self.exit_code

    def request_stop(self, reason: str, exit_code: int = 0, *, wake: bool = True) -> None:
        """Ask :meth:`run` to end (safe from other threads, and from signal handlers with ``wake=False``).

        ``wake`` also puts a StopRequest in the inbox so a waiting :meth:`run` sees it at once. A
        signal handler must not: it runs in the thread of :meth:`run`, possibly while that thread
        holds the inbox's lock inside ``get``, and the queue's lock is not reentrant. The flag alone
        is seen within ``IDLE_WAIT_NS``.
        """
        if exit_code and not self.exit_code:
            self.exit_code = exit_code
        self.stop_reason = self.stop_reason or reason
        self._stopping = True
        if wake:
            # if the inbox is full the flag is enough: the loop looks at it after every item
            with contextlib.suppress(queue.Full):
                self.inbox.put_nowait(StopRequest(reason, exit_code))

    def turn(self, item: object | None) -> None:
        """One pass of the loop: ``item`` (if any), then the bar-line logic; a failure in either is survived."""
        if item is not None:
            try:
                self.process(item)
            except Exception as err:
                self._fault("item", item, err)
        try:
            self.on_time(self.now())
        except Exception as err:
            self._fault("bar line", None, err)

    def _fault(self, where: str, item: object | None, err: Exception) -> None:
        """Log (rate-limited per kind), release what cannot be trusted, and go on."""
        self.faults += 1
        self.say.fault(where, item, err)
        if is_channel_message(item):
            return  # a note or CC owns nothing: dropping it is enough
        try:
            self._restart_bars()
        except Exception as again:  # the release path itself failed: say so, and still go on
            self.say.release_failed(again)

    def _restart_bars(self) -> None:
        """Release every owned note and ask again from the next bar line (stale results are dropped)."""
        self._epoch += 1
        self._pending.clear()
        self.asked.clear()
        self._given_up.clear()
        self.mode.reset()
        state = self.clock.state
        self._requested_upto = self.bar_of(state.beat_at(self.now())) if state.running else None
        self.scheduler.release_all()

    # -- items -----------------------------------------------------------------
    def process(self, item: object) -> None:
        if type(item) is tuple:
            self._midi(*item)
        elif isinstance(item, BarResult):
            self._result(item)
        elif isinstance(item, StopRequest):
            self.request_stop(item.reason, item.exit_code)
        elif isinstance(item, TransportEvent):
            self._transport(item)

    def _midi(self, t_ns: int, status: int, d1: int, d2: int) -> None:
        self._input_ns = t_ns
        if status >= SYSTEM:
            data = d1 if status == SONG_POSITION else 0
            for event in self.clock.handle(status, data, t_ns):
                self._transport(event)
            self.scheduler.wake()
            return
        kind, channel = status & KIND, status & CHANNEL
        if self.config.in_channel is not None and channel != self.config.in_channel - 1:
            self.say.once(
                "other-channel",
                f"ignoring notes and CCs on channel {channel + 1} (listening on {self.config.in_channel})",
            )
            return
        if self.learn is not None and self.learn.take(kind, d1, d2):
            return
        if kind == CONTROL_CHANGE:
            self.controls.handle_cc(d1, d2)
            return
        state = self.clock.state
        if not state.running:
            return  # no song position to put it at
        beat = state.beat_at(t_ns)
        if kind == NOTE_ON and d2 > 0:
            self.seed.note_on(channel, d1, d2, beat)
            cancelled = self.mode.on_note(beat)
            if cancelled is not None:
                self._cancel_from(cancelled)
        elif kind in (NOTE_ON, NOTE_OFF):
            self.seed.note_off(channel, d1, beat)

    def _transport(self, event: TransportEvent) -> None:
        self._epoch += 1
        self._pending.clear()
        self.asked.clear()
        self._given_up.clear()
        self.mode.reset()
        released = self.scheduler.release_all()
        if event.kind in (Transport.START, Transport.CONTINUE):
            if event.kind is Transport.START:
                self.seed.clear()
                self.source.reset()
            bar = self.bar_of(event.beat)
            self._requested_upto = bar  # the first generated bar is the next one
            self.say.started(event.kind.value, bar, event.beat - bar * self.bar_beats + 1, self.clock.state.bpm)
        else:
            self._requested_upto = None
            if event.kind is Transport.LOCATE:
                self.seed.clear()
            self.say.halted(event.kind.value, event.beat, released)

    def _result(self, result: BarResult) -> None:
        pending = self._pending.pop(result.bar, None)
        if result.error:
            self.book.errors += 1
            self.say.once(f"gen-error:{result.error}", f"generator failed: {result.error}")
        else:
            self.book.timed(result.elapsed_ns)
        if pending is None or result.epoch != self._epoch:
            if not result.error and result.notes:
                self.book.keep(list(result.notes))
            return  # stale (transport changed, answer cancelled) or given up: not played
        if result.error:
            self._miss(result.bar, "the generator failed")
            return
        notes = [n for n in result.notes if 0 <= n.onset < self.bar_beats]  # a generator's promise, checked
        if len(notes) != len(result.notes):
            self.say.once("onset-range", "generator returned notes outside the bar: dropped")
        due_from = 0.0
        if pending.join:  # a bar already begun: only what is not yet due
            state = self.clock.state
            due_from = state.beat_at(self.now() + self._margin_ns) - result.bar * self.bar_beats
            notes = [n for n in notes if n.onset >= due_from]
        else:
            self.book.keep(notes)
        if pending.replaces is not None:  # asked again after a turn: its old notes not yet due give way
            self.scheduler.cancel_from(result.bar * self.bar_beats + max(due_from, pending.replaces))
        self.book.generated += 1
        self._play(result.bar, notes)

    # -- time --------------------------------------------------------------------
    def on_time(self, now: int) -> None:
        """The clock's housekeeping and the bar-line logic, then a snapshot for the status page."""
        self._keep_time(now)
        try:
            self.board.publish(now, self.clock.state, self.controls.target(), self._playing_capsule(), self.mode,
                               self.book, self.faults)
        except Exception as err:  # the page is a view: its failure must never touch the music
            self.say.once(f"status:{type(err).__name__}", f"no status snapshot: {err}")

    def _keep_time(self, now: int) -> None:
        if self.port_watch is not None:
            self._watch_ports(self.port_watch)
        for event in self.clock.check(now):
            self._transport(event)
        self.say.trouble(self.trouble_sources)
        state = self.clock.state
        if not state.running or self._requested_upto is None:
            return
        bar = self.bar_of(state.beat_at(now))
        # what the player played is judged only as far as it has been taken from the inbox: on a busy
        # machine a note can wait there behind the clock ticks, and must not be taken for missing
        heard = self._heard_until(now)
        cancel = self.mode.check(state.beat_at(heard), self.seed)
        if cancel is not None:
            self._act(cancel)
        # give up on bars whose notes are not back in time (the scheduler sends output_offset_ms early)
        for pbar, pending in sorted(self._pending.items()):
            if now >= self._due(pending, state):
                del self._pending[pbar]
                if pending.join:
                    continue  # joining a bar already begun: nothing was promised, nothing is missed
                self._given_up.add(pbar)
                self._miss(pbar, "not ready in time")
        # bar lines crossed since last time: ask for the bar after the current one, once the input up to the
        # line has been taken from the inbox. On a busy machine the bar's last notes (and the ticks around
        # them) can wait there past the line; the line hears them, for the mood it asks in and the seed it
        # asks with. The wait is for messages already sent: at most a clock tick when none are.
        line = self.bar_of(state.beat_at(heard)) if heard < now else bar
        if line + 1 > self._requested_upto:
            skipped = line - self._requested_upto  # bars we never even asked for (a stall)
            if skipped > 0:
                self.book.skipped(skipped)
                self.say.once("stall", f"conductor fell {skipped} bar(s) behind")
            self._requested_upto = line + 1
            self._bar_line(line)
        elif line == bar and cancel is None and self.mode.revisable and self.source.hears_knob \
                and self.controls.turned():
            self._knob_turned(now, bar)
        self.say.at(bar, state.bpm, self._playing_capsule(), self.book, self.scheduler)

    def _heard_until(self, now: int) -> int:
        """Up to when the player's input has been taken in: the arrival of the newest MIDI message taken
        from the inbox (messages come in order of arrival) while more wait there, or while MIDI clock
        ticks say how far the input has come (a port whose thread ran late holds notes and ticks
        alike); else now."""
        if not self.inbox.empty() or self.config.clock == "midi":
            return min(now, self._input_ns)
        return now

    def _playing_capsule(self) -> Capsule:
        """The emotion the bars are asked in: the knob's, or what the source made of it (follow, ...)."""
        return self._settings.capsule if self._settings is not None else self.controls.capsule

    def _knob_turned(self, now: int, bar: int) -> None:
        """The knob moved by more than a step: the bars asked from the sounding one on are asked again in
        the new emotion (one smoothing step), from the first half beat an answer can reach (daemon/pending)."""
        reach = self.clock.state.beat_at(now + self._margin_ns + int(self.config.revise_ms * 1e6))
        again = self.asked.again(bar, reach)
        if again is None:
            return
        self._settings = self.source.apply(self.controls.turn())
        self._epoch += 1  # what is on its way was asked in the old emotion
        self._pending.clear()
        for ask, from_beat in again:
            self._request(ask, join=True, from_beat=from_beat, replaces=from_beat)
        log.debug("the knob turned: bars from beat %.1f asked again", self.asked.turned_at)

    def _watch_ports(self, watch: Callable[[], tuple[int, bool]]) -> None:
        """The ports went away or came back: nothing pending can be trusted; once back, release
        through the new connection what was owned (note-offs, CC 123) and start the bars over."""
        generation, lost = watch()
        if generation == self._port_generation:
            return
        self._port_generation = generation
        if not lost:
            self.scheduler.output.revive()
        self._restart_bars()

    def _next_wake(self, now: int) -> int:
        state = self.clock.state
        wake = now + IDLE_WAIT_NS
        if state.running and self._requested_upto is not None:
            line = state.time_at(self._requested_upto * self.bar_beats) + 1
            if line > now:  # a line already passed waits for the input, whose arrival wakes the loop
                wake = min(wake, line)
            for pending in self._pending.values():
                wake = min(wake, self._due(pending, state))
        return max(wake, now)

    @property
    def _margin_ns(self) -> int:
        return int((self.config.margin_ms + self.config.output_offset_ms) * 1e6)

    def _due(self, pending: Pending, state) -> int:
        """When a pending bar's notes must be back: ``margin_ms`` before its bar line (before its end
        when it joins a bar already begun)."""
        line = pending.bar + 1 if pending.join else pending.bar
        return state.time_at(line * self.bar_beats) - self._margin_ns

    def _bar_line(self, bar: int) -> None:
        """Bar ``bar`` just started: ask for bar ``bar + 1`` what the mode wants, if anything.

        The controls step once here (the capsule's smoothing moves once per bar line), however many
        requests the mode makes before the next line.
        """
        self._settings = self.source.at_bar_line(bar, self.seed, self.controls.at_bar_line())
        self._act(self.mode.at_bar_line(bar, self.seed))

    def _act(self, action: Ask | Cancel | None) -> None:
        if isinstance(action, Cancel):
            self._cancel_from(action.bar, cut=True)
            action = action.then
        if action is None:
            return
        if action.join_current:
            now_bar = action.bar - 1
            self._request(Ask(now_bar, action.seed, action.task, action.loop_bars, action.position - 1), join=True)
        self._request(action)

    def _cancel_from(self, bar: int, *, cut: bool = False) -> None:
        """The mode gave up what it asked from ``bar`` on (the player played again, or changed the
        loop): not played; with ``cut``, what of it already sounds ends now."""
        self._epoch += 1  # its results are stale now
        self._pending.clear()
        self.asked.clear()
        self.scheduler.cancel_from(bar * self.bar_beats, cut=cut)

    def _request(self, ask: Ask, *, join: bool = False, from_beat: float = 0.0,
                 replaces: float | None = None) -> None:
        settings = self._settings if self._settings is not None else self.controls.at_bar_line()
        req = BarRequest(
            bar=ask.bar,
            capsule=settings.capsule,
            sampling=settings.sampling,
            seed=ask.seed,
            task=ask.task,
            rng_seed=self.config.rng_seed,
            epoch=self._epoch,
            loop_bars=ask.loop_bars,
            position=ask.position,
            from_beat=from_beat,
        )
        self._pending[ask.bar] = Pending(ask.bar, self.now(), join, replaces)
        self.asked.add(ask)
        self.submit(req)

    def _play(self, bar: int, notes: list[Note]) -> None:
        self.book.played += 1
        if not self.mode.routed:
            self.scheduler.add_notes(notes, bar * self.bar_beats, channel=self.config.out_channel)
            return
        channels = self.config.part_channels
        routed = [n for n in notes if 0 <= n.channel < len(channels)]
        if len(routed) != len(notes):
            self.say.once("part-range", "generator returned notes of unknown parts: dropped")
        for part, channel in enumerate(channels):
            mine = [n for n in routed if n.channel == part]
            if mine:
                self.scheduler.add_notes(mine, bar * self.bar_beats, channel=channel)

    def _miss(self, bar: int, why: str) -> None:
        notes = self.book.miss(bar, why, may_repeat=self.mode.repeat_on_miss)
        if notes:
            self._play(bar, notes)

    def release(self, why: str) -> int:
        self._pending.clear()
        self.asked.clear()
        self._requested_upto = None
        released = self.scheduler.release_all()
        log.debug("released owned notes (%s): %d", why, released)
        return released

    def bar_of(self, beat: float) -> int:
        return math.floor(beat / self.bar_beats + 1e-9)
