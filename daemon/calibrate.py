"""Latency calibration: time probe notes through the MIDI path and back.

``affetto calibrate --in PORT --out PORT`` sends probe notes (note-ons on
channel 16, one at a time, each pitch different from the one before) to the
output port and waits for each to come back on the input port: a DAW track
whose input is affetto's output and whose output goes to affetto's input, or
a loopback cable. The round trip of each probe is the input's own timestamp
of the returning note-on minus the time it was sent; a probe not back within
``timeout_s`` is counted as lost.

Why the round trip is the offset to use: the DAW's MIDI clock reaches the
daemon late by the DAW -> affetto leg, and the notes the daemon sends reach
the DAW late by the affetto -> DAW leg, so a note meant for a beat sounds
late by both, the round trip. ``output_offset_ms`` (the mean round trip) makes
the scheduler send every event that much earlier (see
:class:`affetto.daemon.scheduler.Scheduler`). The DAW's own monitoring
latency (its audio output buffer) is not on this path: see the README.

Probes are spaced ``interval_s`` apart plus a varying part, so they do not
lock to a backend's period and the jitter shows.
"""

from __future__ import annotations

import math
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass

from affetto.daemon.midi import KIND, NOTE_OFF, NOTE_ON
from affetto.daemon.scheduler import percentile

PROBE_CHANNEL = 15  # channel 16, as musicians count
PROBE_VELOCITY = 100


def probe_pitch(i: int) -> int:
    return 36 + (i * 7) % 48  # C2..B5, never the same twice in a row


@dataclass(frozen=True)
class Calibration:
    round_trips_ms: tuple[float, ...]
    lost: int

    @property
    def mean_ms(self) -> float:
        r = self.round_trips_ms
        return sum(r) / len(r) if r else math.nan

    @property
    def std_ms(self) -> float:
        r = self.round_trips_ms
        if len(r) < 2:
            return math.nan
        m = self.mean_ms
        return math.sqrt(sum((x - m) ** 2 for x in r) / (len(r) - 1))

    @property
    def p95_ms(self) -> float:
        return percentile(self.round_trips_ms, 95)

    @property
    def offset_ms(self) -> float:
        """The ``output_offset_ms`` to write: the mean round trip, to a tenth of a millisecond."""
        return round(self.mean_ms, 1)

    def describe(self) -> str:
        r = self.round_trips_ms
        if not r:
            return f"no probe came back ({self.lost} lost): is the output routed back to the input?"
        return (
            f"round trip over {len(r)} probes: mean {self.mean_ms:.2f} ms, jitter std {self.std_ms:.2f} ms, "
            f"p95 {self.p95_ms:.2f} ms, min {min(r):.2f} ms, max {max(r):.2f} ms, {self.lost} lost"
        )


def measure(
    send: Callable[[list[int]], None],
    inbox: queue.Queue,
    *,
    count: int = 20,
    interval_s: float = 0.1,
    timeout_s: float = 1.0,
    now_ns: Callable[[], int] = time.monotonic_ns,
    sleep: Callable[[float], None] = time.sleep,
) -> Calibration:
    """Send ``count`` probes through ``send`` and time their return among the inbox's
    ``(t_ns, status, d1, d2)`` messages (``t_ns`` stamped on arrival by the input port)."""
    trips: list[float] = []
    lost = 0
    for i in range(count):
        pitch = probe_pitch(i)
        _drain(inbox)
        t0 = now_ns()
        send([NOTE_ON | PROBE_CHANNEL, pitch, PROBE_VELOCITY])
        back = _wait_for(inbox, pitch, t0 + int(timeout_s * 1e9), now_ns)
        send([NOTE_OFF | PROBE_CHANNEL, pitch, 0])
        if back is None:
            lost += 1
        else:
            trips.append((back - t0) / 1e6)
        sleep(interval_s * (1 + 0.5 * ((i * 0.618) % 1)))
    return Calibration(tuple(trips), lost)


def _drain(inbox: queue.Queue) -> None:
    while True:
        try:
            inbox.get_nowait()
        except queue.Empty:
            return


def _wait_for(inbox: queue.Queue, pitch: int, deadline_ns: int, now_ns: Callable[[], int]) -> int | None:
    """Arrival stamp of the next note-on of ``pitch`` (any channel: a DAW track may rechannel it)."""
    while (left := deadline_ns - now_ns()) > 0:
        try:
            item = inbox.get(timeout=left / 1e9)
        except queue.Empty:
            return None
        if type(item) is not tuple or len(item) != 4:
            continue
        t_ns, status, d1, d2 = item
        if status & KIND == NOTE_ON and d1 == pitch and d2 > 0:
            return t_ns
    return None
