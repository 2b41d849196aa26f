"""The workers that host a generator: in a thread, or in a child process.

The conductor never calls a generator directly: generation takes 20-150 ms
and must not run on the MIDI thread or the scheduler thread. A worker owns the
generator (:class:`~affetto.daemon.generator.BarGenerator`, made by a factory)
and serves requests one at a time through
:func:`~affetto.daemon.generator.run_request`, whatever the generator is:

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
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from affetto.daemon.generator import BarGenerator, BarRequest, BarResult, GeneratorFactory, describe, run_request
from affetto.errors import AffettoError


def current(first: BarRequest | None, get_nowait: Callable[[], BarRequest | None]) -> tuple[list[BarRequest], bool]:
    """``first`` and every request already waiting behind it, less those a newer epoch made stale (the
    conductor gave up on them: a knob turn, a cancel, a stop); and whether the sentinel (None) came."""
    waiting: list[BarRequest] = []
    req = first
    while True:
        if req is None:
            stop = True
            break
        waiting.append(req)
        try:
            req = get_nowait()
        except queue.Empty:
            stop = False
            break
    newest = max((r.epoch for r in waiting), default=0)
    return [r for r in waiting if r.epoch == newest], stop


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
        self.generator = generator = self._factory()
        self.info = describe(generator)
        self._thread = threading.Thread(target=self._run, args=(generator,), name="affetto-generator", daemon=True)
        self._thread.start()
        return self

    def submit(self, req: BarRequest) -> None:
        self._requests.put(req)

    def _run(self, generator: BarGenerator) -> None:
        stop = False
        while not stop:
            todo, stop = current(self._requests.get(), self._requests.get_nowait)
            for req in todo:
                self._deliver(run_request(generator, req))

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
    stop = False
    while not stop:
        todo, stop = current(requests.get(), requests.get_nowait)
        for req in todo:
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
