"""What the status page shows besides the conductor's snapshot: the ports and the last warnings.

:class:`StatusView` puts together, on the HTTP server's threads, one JSON
document from the conductor's latest
:class:`~affetto.daemon.status_snapshot.Snapshot`, the MIDI ports (names, the
backend, the connections JACK reported, whether the server is gone) and the
last warnings logged under ``affetto``. It only reads: the snapshot is an
immutable object, the ports' figures are plain attributes, and the warnings
are kept by :class:`WarningTail`, a logging handler that appends to a bounded
deque and takes no lock.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable
from importlib import resources
from typing import Any

from affetto.daemon.status_snapshot import Snapshot, document

WARNINGS_KEPT = 8
STALE_NS = 2_000_000_000  # a snapshot older than this: the conductor is not turning (said on the page)
PAGE = "status_page.html"


def page_html() -> bytes:
    """The page (``daemon/status_page.html``): one file, an inline script and style, nothing else."""
    return resources.files("affetto.daemon").joinpath(PAGE).read_bytes()


class WarningTail(logging.Handler):
    """Keeps the last warnings (and worse) of a logger tree, for the page."""

    def __init__(self, kept: int = WARNINGS_KEPT) -> None:
        super().__init__(logging.WARNING)
        self.records: deque[dict[str, str]] = deque(maxlen=kept)

    def handle(self, record: logging.LogRecord) -> bool:
        # no lock: the thread that logs (the conductor, the scheduler) only appends to a bounded deque
        if record.levelno < self.level:
            return False
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call: show its template rather than lose the line
            message = str(record.msg)
        self.records.append({
            "time": time.strftime("%H:%M:%S", time.localtime(record.created)),
            "level": record.levelname,
            "source": record.name.rpartition(".")[2],
            "message": message,
        })
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)

    def last(self) -> list[dict[str, str]]:
        return list(self.records)


def describe_ports(ports: Any) -> Callable[[], dict[str, Any]]:
    """A reader of the ports' figures: names and backend now, connections and loss when asked."""
    fixed = {
        "backend": str(getattr(ports, "backend", "")),
        "in": str(getattr(getattr(ports, "input", None), "name", "")),
        "out": str(getattr(getattr(ports, "output", None), "name", "")),
    }

    def read() -> dict[str, Any]:
        out: dict[str, Any] = dict(fixed, lost=bool(getattr(ports, "lost", False)))
        connections = getattr(ports, "connections", None)  # native JACK keeps them; rtmidi cannot tell
        out["connections"] = dict(connections) if connections is not None else None
        for name in ("xruns", "reconnects"):
            value = getattr(ports, name, None)
            if isinstance(value, int):
                out[name] = value
        return out

    return read


class StatusView:
    """The page's document: the snapshot, the ports and the warnings, as JSON bytes."""

    def __init__(
        self,
        read: Callable[[], Snapshot],
        *,
        ports: Callable[[], dict[str, Any]] | None = None,
        warnings: WarningTail | None = None,
        now_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.read = read
        self.ports = ports
        self.warnings = warnings
        self.now = now_ns

    def document(self) -> dict[str, Any]:
        snap = self.read()
        doc = document(snap)
        doc["stale"] = self.now() - snap.t_ns > STALE_NS
        doc["ports"] = self.ports() if self.ports is not None else None
        doc["warnings"] = self.warnings.last() if self.warnings is not None else []
        return doc

    def body(self) -> bytes:
        return json.dumps(self.document(), separators=(",", ":")).encode()
