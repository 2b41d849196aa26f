"""Log lines limited per kind, so a faulty controller or a transport storm cannot fill a disk.

:class:`RateLimitedLog` wraps a logger. Each message carries a *kind* (a short
key such as ``"transport:start"``); the first message of a kind is always
logged, after that at most ``burst`` per ``period_s`` (a token bucket per kind).
When a line goes out after some were held back it says how many, so counts are
never lost, only the repetition. Kinds are bounded too (least recently used
forgotten), so messages whose kind carries data cannot grow memory.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_KINDS = 256


class RateLimitedLog:
    """``logger`` with a per-kind token bucket; ``now_ns`` is injectable for tests."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        period_s: float = 10.0,
        burst: int = 1,
        now_ns: Callable[[], int] = time.monotonic_ns,
        max_kinds: int = MAX_KINDS,
    ) -> None:
        if not period_s > 0:
            raise ValueError(f"period_s must be > 0, got {period_s!r}")
        if not isinstance(burst, int) or burst < 1:
            raise ValueError(f"burst must be an int >= 1, got {burst!r}")
        self.logger = logger
        self.period_ns = int(period_s * 1e9)
        self.burst = burst
        self.now = now_ns
        self.max_kinds = max_kinds
        # kind -> [tokens, time of the last refill (ns), messages held back since the last line]
        self._buckets: OrderedDict[str, list] = OrderedDict()
        self.suppressed = 0  # held back in all, for tests and the status line

    def log(self, level: int, kind: str, msg: str, *args: object, exc_info: BaseException | bool | None = None) -> bool:
        """Log ``msg % args`` at ``level`` unless ``kind`` is over its rate; True when logged."""
        now = self.now()
        bucket = self._buckets.get(kind)
        if bucket is None:
            bucket = [float(self.burst), now, 0]
            self._buckets[kind] = bucket
            if len(self._buckets) > self.max_kinds:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(kind)
            elapsed = max(0, now - bucket[1])
            bucket[0] = min(float(self.burst), bucket[0] + elapsed * self.burst / self.period_ns)
            bucket[1] = now
        if bucket[0] < 1.0:
            bucket[2] += 1
            self.suppressed += 1
            return False
        bucket[0] -= 1.0
        held, bucket[2] = bucket[2], 0
        if held:
            msg = f"{msg} (and {held} like it held back)"
        self.logger.log(level, msg, *args, exc_info=exc_info)
        return True

    def info(self, kind: str, msg: str, *args: object) -> bool:
        return self.log(logging.INFO, kind, msg, *args)

    def warning(self, kind: str, msg: str, *args: object) -> bool:
        return self.log(logging.WARNING, kind, msg, *args)

    def error(self, kind: str, msg: str, *args: object) -> bool:
        return self.log(logging.ERROR, kind, msg, *args)
