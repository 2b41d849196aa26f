"""Fakes for the daemon's tests: a steppable clock, a recording port, a manual worker, a rig."""

from __future__ import annotations

import queue

from midi_helpers import sounding

from affetto.daemon.clocks import InternalClock
from affetto.daemon.conductor import Conductor
from affetto.daemon.config import DaemonConfig
from affetto.daemon.fakes import FakeGenerator, FakeVoices
from affetto.daemon.generator import BarRequest, HarmoniseGenerator, PhraseGenerator, run_request
from affetto.daemon.modes import mode_class
from affetto.daemon.notes import OwnedOutput
from affetto.daemon.scheduler import Scheduler
from affetto.ensemble.accompany import Band, LoopHarmoniser
from affetto.errors import PortError

MS = 1_000_000


class SteppableTime:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start_ns: int = 1_000_000_000) -> None:
        self.t = start_ns

    def __call__(self) -> int:
        return self.t

    def step(self, ns: int) -> int:
        self.t += ns
        return self.t


class RecordingPort:
    """A port that records every message; ``fail`` makes it raise like a vanished port."""

    def __init__(self, now=None) -> None:
        self.messages: list[tuple[int, list[int]]] = []
        self.now = now or (lambda: 0)
        self.fail = False

    def send(self, message: list[int]) -> None:
        if self.fail:
            raise PortError("port went away")
        self.messages.append((self.now(), list(message)))

    def sounding(self) -> set[tuple[int, int]]:
        """Notes left on at the receiving end, honouring CC 123."""
        return sounding(self.messages)

    def note_ons(self) -> list[tuple[int, list[int]]]:
        return [(t, m) for t, m in self.messages if m[0] & 0xF0 == 0x90 and m[2] > 0]


class TimedPort:
    """A timed sink, like native JACK output: a message sounds at its ``at_ns``, or when sent without one.

    ``handed`` records ``(send time, message, at_ns)``. ``discard_pending`` drops what has not
    sounded by now and returns it; ``calls`` records the order of sends and discards.
    """

    timed = True

    def __init__(self, now) -> None:
        self.now = now
        self.handed: list[tuple[int, list[int], int | None]] = []
        self.calls: list[str] = []
        self._queued: list[tuple[int, list[int]]] = []

    def send(self, message: list[int], at_ns: int | None = None) -> None:
        self.calls.append("send")
        self.handed.append((self.now(), list(message), at_ns))
        self._queued.append((self.now() if at_ns is None else at_ns, list(message)))

    def discard_pending(self) -> list[list[int]]:
        self.calls.append("discard")
        now = self.now()
        dropped = [m for t, m in self._queued if t > now]
        self._queued = [(t, m) for t, m in self._queued if t <= now]
        return dropped

    def heard(self) -> list[tuple[int, list[int]]]:
        """What a listener hears, in time order (sends at equal times keep their order)."""
        return sorted(self._queued, key=lambda e: e[0])


class ManualWorker:
    """Collects requests; the test decides when (and whether) each result comes back."""

    def __init__(self, inbox: queue.Queue, generator) -> None:
        self.inbox = inbox
        self.generator = generator
        self.requests: list[BarRequest] = []

    def submit(self, req: BarRequest) -> None:
        self.requests.append(req)

    def deliver(self, index: int = -1) -> None:
        self.inbox.put(run_request(self.generator, self.requests[index]))

    def deliver_all(self) -> None:
        for req in self.requests:
            self.inbox.put(run_request(self.generator, req))
        self.requests.clear()


class Rig:
    """A conductor on a steppable clock, driven without threads."""

    def __init__(self, config: DaemonConfig, *, internal: bool = True) -> None:
        from affetto.daemon.clocks import MidiClockFollower

        self.time = SteppableTime()
        self.port = RecordingPort(self.time)
        self.output = OwnedOutput(self.port)
        self.clock = InternalClock(config.bpm) if internal else MidiClockFollower()
        self.scheduler = Scheduler(self.output, lambda: self.clock.state, now_ns=self.time, keep_sent=10_000)
        self.inbox: queue.Queue = queue.Queue(maxsize=config.queue_size)
        self.lead = FakeGenerator(config.meter)
        self.voices = FakeVoices(config.meter)
        # the generator of the kind the mode asks for, on the fakes (``generator``: the model behind it)
        kind = mode_class(config.mode).generator
        if kind == "harmoniser":
            self.generator = LoopHarmoniser(self.voices)
            served = HarmoniseGenerator(self.generator)
        else:
            self.generator = Band(self.lead, self.voices) if kind == "band" else self.lead
            served = PhraseGenerator(self.generator)
        self.worker = ManualWorker(self.inbox, served)
        self.conductor = Conductor(
            config, self.clock, self.scheduler, self.worker.submit, self.inbox, now_ns=self.time
        )
        self.config = config

    def start(self) -> None:
        for event in self.clock.start(self.time()):
            self.conductor.process(event)

    def pump(self) -> None:
        """Process everything in the inbox, then the bar-line logic, then due sends."""
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                break
            self.conductor.process(item)
        self.conductor.on_time(self.time())
        self.scheduler.run_due(self.time())

    def advance(self, ns: int, *, step_ns: int = 5 * MS, auto_deliver: bool = True) -> None:
        end = self.time() + ns
        while self.time() < end:
            self.time.step(min(step_ns, end - self.time()))
            if auto_deliver:
                self.worker.deliver_all()
            self.pump()

    @property
    def ns_per_bar(self) -> int:
        return int(self.clock.state.ns_per_beat * self.config.meter.beats_per_bar)


def make_rig(**overrides) -> Rig:
    base = {"model": "builtin:fake", "clock": "internal", "bpm": 120.0, "rng_seed": 1}
    base.update(overrides)
    return Rig(DaemonConfig.from_dict(base), internal=base["clock"] == "internal")
