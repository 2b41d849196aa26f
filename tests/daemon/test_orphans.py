"""SIGKILL of the daemon leaves nothing behind: the model's process and the resource tracker end too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from affetto.daemon.generators import fake_generator
from affetto.daemon.workers import ProcessWorker
from affetto.music.notes import TimeSignature

PARENT = textwrap.dedent(
    """
    import functools, sys, threading
    from multiprocessing import resource_tracker
    from affetto.daemon.workers import ProcessWorker
    from affetto.daemon.generators import fake_generator
    from affetto.music.notes import TimeSignature

    workers = []

    def start():
        worker = ProcessWorker(functools.partial(fake_generator, TimeSignature()), lambda result: None)
        workers.append(worker)
        worker.start()
        print(worker._proc.pid, resource_tracker._resource_tracker._pid, flush=True)

    if __name__ == "__main__":
        if sys.argv[1] == "main":
            start()
        else:  # from another thread: no parent-death signal (it would follow that thread), the pipe alone
            thread = threading.Thread(target=start)
            thread.start()
            thread.join()
        threading.Event().wait()  # live until killed
    """
)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its new parent to reap it counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except (OSError, IndexError):
            return False
    return True


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Poll until every pid is gone or ``timeout`` passes; returns those still alive."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in pids if alive(p)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
@pytest.mark.parametrize("started_from", ["main", "thread"])
def test_sigkill_of_the_parent_ends_the_model_process_and_the_resource_tracker(tmp_path, started_from):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen(
        [sys.executable, str(script), started_from],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    child = tracker = None
    try:
        line = parent.stdout.readline()  # the worker is up (bounded by its own start timeout)
        assert line, f"the parent process failed (exit {parent.poll()})"
        child, tracker = (int(x) for x in line.split())
        assert alive(child) and alive(tracker)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert wait_gone([child, tracker], timeout=20.0) == []
    finally:
        for pid in (child, tracker):  # never leave them behind, even when the test fails
            if pid is not None and alive(pid):
                os.kill(pid, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_a_closed_worker_leaves_no_child():
    results = []
    worker = ProcessWorker(_factory(), results.append).start()
    pid = worker._proc.pid
    worker.close()
    assert wait_gone([pid], timeout=10.0) == []


def _factory():
    import functools

    return functools.partial(fake_generator, TimeSignature())
