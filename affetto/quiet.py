"""Silencing C libraries (libjack, ALSA, symusic) that write to the process's file descriptors."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_fds(*fds: int) -> Iterator[None]:
    """Send what is written to ``fds`` (default: 2, stderr) to /dev/null for the block.

    Python's own buffers are flushed first so nothing of ours is lost; where the
    descriptors cannot be duplicated the block runs unsilenced.
    """
    fds = fds or (2,)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        saved = [os.dup(fd) for fd in fds]
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            for fd in fds:
                os.dup2(null.fileno(), fd)
            yield
    finally:
        for fd, saved_fd in zip(fds, saved):
            os.dup2(saved_fd, fd)
            os.close(saved_fd)
