"""The generator contract, a fake generator, and the workers that host one.

The conductor never calls a generator directly: generation takes 20-150 ms
and must not run on the MIDI thread or the scheduler thread. A worker owns the
generator and runs requests one at a time:

- :class:`ThreadWorker`: a thread in this process. ONNX Runtime releases the
  GIL during ``run``, but sampling is Python, and a thread holding the GIL
  delays every scheduler wake-up by up to the switch interval.
- :class:`ProcessWorker`: a child process (spawned), so the generator's Python
  work never competes for this process's GIL. Its factory must be picklable.
  The child dies with its parent, however the parent ends (SIGKILL and the
  out-of-memory killer included): it holds the read end of a pipe whose only
  write end stays in the parent, and a thread exits the child at end-of-file
  (every platform); on Linux it also asks for a parent-death signal
  (``prctl(PR_SET_PDEATHSIG)``) when started from the main thread (the signal
  follows the thread that started it). Python's resource tracker, kept alive
  by its pipe in both, then ends too.

Which one keeps scheduler lateness lower is measured by ``bench/bench_daemon.py``.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from affetto.analysis.emotion import Capsule
from affetto.ensemble.accompany import LOOP_BARS
from affetto.errors import AffettoError, ConfigError
from affetto.music.notes import Note, TimeSignature
from affetto.runtime.sampling import NO_OVERRIDES, SamplingOverrides

log = logging.getLogger(__name__)


@runtime_checkable
class BarGenerator(Protocol):
    """What the daemon needs from a model (the ONNX engine implements it)."""

    meter: TimeSignature

    def prime(self, seed: Sequence[Note]) -> None:
        """Start afresh from ``seed`` (onsets in beats from the first seed bar line; may be empty)."""

    def generate_bar(
        self, capsule: Capsule, sampling: SamplingOverrides = NO_OVERRIDES, *, rng: np.random.Generator | None = None
    ) -> list[Note]:
        """The next bar; onsets relative to its start, ``0 <= onset < meter.beats_per_bar``.

        A sampling setting left at None takes the model's own default.
        """


GeneratorFactory = Callable[[], BarGenerator]

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)


class FakeGenerator:
    """A deterministic stand-in whose output visibly follows the capsule.

    Valence picks major or minor, arousal sets density, register and velocity;
    the seed's lowest pitch sets the root. ``cost_ms`` burns CPU per bar, the
    share ``gil_share`` of it in pure Python (holding the GIL, like a sampling
    loop) and the rest in numpy matrix products (releasing it, like ONNX Runtime).
    """

    provider = "fake"
    model_path = "builtin:fake"

    def __init__(
        self,
        meter: TimeSignature | None = None,
        *,
        cost_ms: float = 0.0,
        gil_share: float = 0.3,
        fail_after: int | None = None,
    ) -> None:
        self.meter = meter or TimeSignature()
        self.cost_ms = cost_ms
        self.gil_share = gil_share
        self.fail_after = fail_after
        self.root = 60
        self.primed: list[list[Note]] = []
        self.bars = 0
        self.capsules: list[Capsule] = []

    def prime(self, seed: Sequence[Note]) -> None:
        self.primed.append(list(seed))
        if seed:
            self.root = 48 + min(n.pitch for n in seed) % 12

    def generate_bar(
        self, capsule: Capsule, sampling: SamplingOverrides = NO_OVERRIDES, *, rng: np.random.Generator | None = None
    ) -> list[Note]:  # the fake draws one bar whatever the candidates
        if self.fail_after is not None and self.bars >= self.fail_after:
            raise RuntimeError("fake generator failure")
        self._burn()
        rng = rng or np.random.default_rng(self.bars)
        self.bars += 1
        self.capsules.append(capsule)
        valence, arousal = capsule.valence, capsule.arousal
        scale = MAJOR if valence >= 0 else MINOR
        steps_per_beat = 2 if arousal < 0 else 4
        length = self.meter.beats_per_bar
        step = 1.0 / steps_per_beat
        octave = 12 if arousal > 0.3 else 0
        velocity = int(min(127, max(1, 70 + 40 * arousal)))
        notes = []
        for i in range(int(length * steps_per_beat)):
            if i and rng.random() > 0.5 + 0.4 * arousal:
                continue
            degree = int(rng.integers(0, len(scale)))
            pitch = min(127, self.root + octave + scale[degree])
            notes.append(Note(pitch, i * step, step * 0.9, velocity))
        return notes

    def _burn(self) -> None:
        if self.cost_ms <= 0:
            return
        end = time.perf_counter() + self.cost_ms * self.gil_share / 1000
        x = 0
        while time.perf_counter() < end:  # pure Python: holds the GIL
            x += 1
        end = time.perf_counter() + self.cost_ms * (1 - self.gil_share) / 1000
        a = np.ones((96, 96))
        while time.perf_counter() < end:  # numpy: mostly releases the GIL
            a = np.tanh(a @ a / 96.0)


class FakeVoices:
    """A deterministic stand-in for the ensemble (a :class:`~affetto.ensemble.accompany.Voicer`).

    Under each melody note: a third below (minor when valence < 0, else
    major) on part 1, a sixth below on part 2, and the note two octaves down
    on part 3 on the bar's first note only, so a test can tell the parts and
    the emotion apart.
    """

    path = "builtin:fake-voices"

    def __init__(self, meter: TimeSignature | None = None) -> None:
        self.meter = meter or TimeSignature()
        self.calls = 0

    def voice_bars(self, melody: Sequence[Note], bars: int, capsule: Capsule, *, seed: int = 0) -> list[list[Note]]:
        self.calls += 1
        length = self.meter.beats_per_bar
        third = 3 if capsule.valence < 0 else 4
        out: list[list[Note]] = [[] for _ in range(bars)]
        for n in sorted(melody, key=lambda n: n.onset):
            bar = int(n.onset // length)
            if not 0 <= bar < bars:
                continue
            onset = n.onset - bar * length
            velocity = max(1, n.velocity - 8)
            out[bar].append(Note(max(0, n.pitch - third), onset, n.duration, velocity, 1))
            out[bar].append(Note(max(0, n.pitch - 8), onset, n.duration, velocity, 2))
            if not any(v.channel == 3 for v in out[bar]):
                out[bar].append(Note(max(0, n.pitch - 24), onset, n.duration, velocity, 3))
        return out


TASKS = ("continue", "answer", "harmonise")


@dataclass(frozen=True, kw_only=True)
class BarRequest:
    """What the conductor asks of the generator for one bar; checked once, here.

    ``task`` says what is asked: ``continue`` the seed, ``answer`` a phrase
    (call-response), ``harmonise`` under it. A ``harmonise`` request carries
    the player's loop as ``seed`` (onsets from its first bar line), its length
    ``loop_bars`` (1, 2, 4 or 8) and ``position``, the asked bar counted from
    the loop's first bar line; the voices come back with their part (1, 2, 3)
    in ``Note.channel`` (see :mod:`affetto.ensemble.accompany`).
    """

    bar: int
    capsule: Capsule
    sampling: SamplingOverrides = NO_OVERRIDES  # None fields: the model's own settings
    seed: tuple[Note, ...] | None = None  # prime with this first when not None
    task: str = "continue"
    rng_seed: int | None = None
    epoch: int = 0  # the conductor's transport epoch, handed back on the result
    loop_bars: int = 0  # harmonise: the loop's length in bars
    position: int = 0  # harmonise: bars from the loop's first bar line to the asked bar

    def __post_init__(self) -> None:
        if isinstance(self.bar, bool) or not isinstance(self.bar, int) or self.bar < 0:
            raise ConfigError(f"bar must be an int >= 0, got {self.bar!r}")
        if not isinstance(self.capsule, Capsule):
            raise ConfigError(f"capsule must be a Capsule, got {self.capsule!r}")
        if not isinstance(self.sampling, SamplingOverrides):
            raise ConfigError(f"sampling must be SamplingOverrides, got {self.sampling!r}")
        if self.seed is not None and not (
            isinstance(self.seed, tuple) and all(isinstance(n, Note) for n in self.seed)
        ):
            raise ConfigError("seed must be a tuple of Notes or None")
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.rng_seed is not None and (isinstance(self.rng_seed, bool) or not isinstance(self.rng_seed, int)):
            raise ConfigError(f"rng_seed must be an int or None, got {self.rng_seed!r}")
        if isinstance(self.epoch, bool) or not isinstance(self.epoch, int):
            raise ConfigError(f"epoch must be an int, got {self.epoch!r}")
        if self.task == "harmonise":
            if self.seed is None:
                raise ConfigError("a harmonise request carries the loop as its seed")
            if self.loop_bars not in LOOP_BARS:
                raise ConfigError(f"loop_bars must be one of {LOOP_BARS}, got {self.loop_bars!r}")
            if isinstance(self.position, bool) or not isinstance(self.position, int) or self.position < 0:
                raise ConfigError(f"position must be an int >= 0, got {self.position!r}")


@dataclass(frozen=True)
class BarResult:
    bar: int
    notes: list[Note] = field(default_factory=list)
    elapsed_ns: int = 0
    error: str | None = None
    epoch: int = 0


def run_request(generator: BarGenerator, req: BarRequest) -> BarResult:
    """Serve one request on ``generator`` (never raises: errors come back in the result)."""
    t0 = time.perf_counter_ns()
    try:
        if req.task == "harmonise":
            notes = generator.harmonise_bar(  # type: ignore[attr-defined]
                req.seed, req.loop_bars, req.position, req.capsule, req.sampling
            )
            return BarResult(req.bar, list(notes), time.perf_counter_ns() - t0, None, req.epoch)
        if req.seed is not None:
            generator.prime(req.seed)
        rng = np.random.default_rng(None if req.rng_seed is None else [req.rng_seed, req.bar])
        notes = generator.generate_bar(req.capsule, req.sampling, rng=rng)
        return BarResult(req.bar, list(notes), time.perf_counter_ns() - t0, None, req.epoch)
    except Exception as err:  # a failing bar is a missed bar, not a dead daemon
        return BarResult(req.bar, [], time.perf_counter_ns() - t0, f"{type(err).__name__}: {err}", req.epoch)


def describe(generator: Any) -> dict[str, str]:
    return {
        "model": str(getattr(generator, "model_path", type(generator).__name__)),
        "provider": str(getattr(generator, "provider", "unknown")),
        "meter": str(getattr(generator, "meter", "?")),
    }


class ThreadWorker:
    """Runs the generator on one worker thread; results go to ``deliver``."""

    kind = "thread"

    def __init__(self, factory: GeneratorFactory, deliver: Callable[[BarResult], None]) -> None:
        self._factory = factory
        self._deliver = deliver
        self._requests: queue.Queue[BarRequest | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.generator: BarGenerator | None = None
        self.info: dict[str, str] = {}

    def start(self) -> ThreadWorker:
        self.generator = self._factory()
        self.info = describe(self.generator)
        self._thread = threading.Thread(target=self._run, name="affetto-generator", daemon=True)
        self._thread.start()
        return self

    def submit(self, req: BarRequest) -> None:
        self._requests.put(req)

    def _run(self) -> None:
        while (req := self._requests.get()) is not None:
            self._deliver(run_request(self.generator, req))  # type: ignore[arg-type]

    def close(self) -> None:
        self._requests.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def __enter__(self) -> ThreadWorker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _child_main(factory: GeneratorFactory, requests: Any, results: Any) -> None:
    # Ctrl-C reaches the whole process group; the parent owns shutdown and stops this child.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        generator = factory()
    except Exception as err:
        results.put(("error", f"{type(err).__name__}: {err}"))
        return
    results.put(("ready", describe(generator)))
    while (req := requests.get()) is not None:
        results.put(("result", run_request(generator, req)))


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _die_with_parent(parent_pid: int, lifeline: Any, pdeathsig: bool) -> None:
    """In the child: arrange to exit as soon as the parent is gone, however it went."""
    if pdeathsig and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the pipe below still watches
    if os.getppid() != parent_pid:  # the parent died before any of this was armed
        os._exit(0)

    def watch() -> None:
        with contextlib.suppress(EOFError, OSError):
            lifeline.recv_bytes()  # the parent never writes: this returns only at end-of-file
        os._exit(0)  # the parent is gone: nobody is left to read results

    threading.Thread(target=watch, name="affetto-lifeline", daemon=True).start()


def _child_entry(
    parent_pid: int, lifeline: Any, pdeathsig: bool, factory: GeneratorFactory, requests: Any, results: Any
) -> None:
    _die_with_parent(parent_pid, lifeline, pdeathsig)
    _child_main(factory, requests, results)


class ProcessWorker:
    """Runs the generator in a spawned child process; results go to ``deliver``."""

    kind = "process"

    def __init__(
        self, factory: GeneratorFactory, deliver: Callable[[BarResult], None], *, start_timeout: float = 60.0
    ) -> None:
        self._factory = factory
        self._deliver = deliver
        self._timeout = start_timeout
        ctx = mp.get_context("spawn")
        self._closed = False
        self._requests = ctx.Queue()
        self._results = ctx.Queue()
        # the child's lifeline: it keeps the read end; the write end never leaves this process
        self._lifeline_read, self._lifeline = ctx.Pipe(duplex=False)
        self._ctx = ctx
        self._proc: Any = None
        self._reader: threading.Thread | None = None
        self.info: dict[str, str] = {}

    def start(self) -> ProcessWorker:
        main = threading.current_thread() is threading.main_thread()
        proc = self._ctx.Process(
            target=_child_entry,
            args=(os.getpid(), self._lifeline_read, main, self._factory, self._requests, self._results),
            name="affetto-generator",
            daemon=True,
        )
        proc.start()
        self._proc = proc
        self._lifeline_read.close()  # only the child holds the read end now
        try:
            kind, payload = self._results.get(timeout=self._timeout)
        except queue.Empty as err:
            self._proc.kill()
            raise AffettoError(f"the generator process did not start within {self._timeout:.0f} s") from err
        if kind == "error":
            self._proc.join(timeout=5)
            raise AffettoError(f"the generator process failed to load the model: {payload}")
        self.info = payload
        self._reader = threading.Thread(target=self._read, name="affetto-generator-reader", daemon=True)
        self._reader.start()
        return self

    def submit(self, req: BarRequest) -> None:
        self._requests.put(req)

    def _read(self) -> None:
        while True:
            try:
                item = self._results.get()
            except (EOFError, OSError):
                return
            if item is None:
                return
            self._deliver(item[1])

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._proc is None:  # never started
            self._lifeline.close()
            return
        try:
            self._requests.put(None)
            self._proc.join(timeout=5.0)
        finally:
            self._lifeline.close()  # end-of-file in a child that is still there: it exits
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(timeout=5.0)
            self._results.put(None)
            if self._reader is not None:
                self._reader.join(timeout=2.0)
            for q in (self._requests, self._results):  # stop their feeder threads
                q.close()
                q.join_thread()
            # Let the queues' semaphores be freed now: the daemon leaves by os._exit, which skips the
            # finalizers that would otherwise unlink them (and the resource tracker then warns).
            if not self._proc.is_alive():  # a child that outlived kill() keeps its objects
                self._proc.close()
                del self._requests, self._results, self._proc
                gc.collect()

    def __enter__(self) -> ProcessWorker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_worker(kind: str, factory: GeneratorFactory, deliver: Callable[[BarResult], None]):
    if kind == "thread":
        return ThreadWorker(factory, deliver)
    if kind == "process":
        return ProcessWorker(factory, deliver)
    raise ValueError(f"generator host must be 'thread' or 'process', got {kind!r}")
