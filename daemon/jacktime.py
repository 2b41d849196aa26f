"""JACK's frame clock <-> ``time.monotonic_ns``, and loading JACK-Client itself.

JACK's frame clock maps to its microsecond clock through ``jack_frames_to_time``
(the server's own filtered estimate of each period's start); JACK-Client does
not wrap those functions, so three are declared here with cffi. JACK's clock
maps to ``time.monotonic_ns`` by the shared
:class:`~affetto.daemon.timebase.OffsetTracker`, read every period (a reading
delayed by preemption only comes out larger, and the tracker keeps the
smallest, leaking upward slowly so a drift between the two clocks is followed).
"""

from __future__ import annotations

import ctypes.util
import functools
import time
from typing import Any

from affetto.daemon.timebase import OffsetTracker
from affetto.errors import PortError

FRAME_MASK = 0xFFFFFFFF  # jack_nframes_t is 32 bits and wraps
OFFSET_LEAK_NS = 5_000  # per period: follows a drift of ~1 ms/s at 48 kHz / 256 frames
NEED_JACK_CLIENT = "pip install JACK-Client, or pip install 'affetto[jack]'"


def import_jack() -> Any:
    """The ``jack`` module (JACK-Client), or a PortError that says how to get it."""
    try:
        import jack
    except (ImportError, OSError) as err:
        raise PortError(
            f"the JACK MIDI API needs the JACK-Client package and libjack ({NEED_JACK_CLIENT}): {err}"
        ) from err
    return jack


@functools.cache
def _time_functions() -> tuple[Any, Any]:
    """(ffi, lib) with the JACK time functions JACK-Client does not wrap, from the libjack it loaded."""
    jack = import_jack()
    import cffi  # JACK-Client depends on it

    ffi = cffi.FFI()
    ffi.cdef(
        "uint64_t jack_get_time(void);"
        "uint64_t jack_frames_to_time(const void *client, uint32_t frames);"
        "uint32_t jack_time_to_frames(const void *client, uint64_t usecs);"
    )
    return ffi, ffi.dlopen(getattr(jack, "_libname", None) or ctypes.util.find_library("jack"))


class JackTime:
    """JACK's frame clock <-> ``time.monotonic_ns`` for one client (see the module docstring)."""

    def __init__(self, client: Any) -> None:
        jack = import_jack()
        ffi, lib = _time_functions()
        # JACK-Client keeps the jack_client_t* in ``_ptr``; pass the same address to our declarations
        self._ptr = ffi.cast("void *", int(jack._ffi.cast("uintptr_t", client._ptr)))
        self._frames_to_time = lib.jack_frames_to_time
        self._time_to_frames = lib.jack_time_to_frames
        self._get_time = lib.jack_get_time
        self.rate = client.samplerate
        self.tracker = OffsetTracker(leak_ns=OFFSET_LEAK_NS)
        for _ in range(65):
            self.sample()

    @property
    def offset_ns(self) -> int:
        return self.tracker.offset_ns

    def sample(self) -> None:
        """One more reading of the offset; cheap enough for every period."""
        jack_us = self._get_time()
        self.tracker.sample(jack_us * 1000, time.monotonic_ns())

    def cycle(self, first_frame: int, frames: int) -> tuple[int, float]:
        """(monotonic ns of ``first_frame``, ns per frame) for the period that starts there."""
        t0 = self._frames_to_time(self._ptr, first_frame)
        t1 = self._frames_to_time(self._ptr, (first_frame + frames) & FRAME_MASK)
        ns_per_frame = (t1 - t0) * 1000 / frames if t1 > t0 else 1e9 / self.rate
        return t0 * 1000 + self.offset_ns, ns_per_frame

    def frame_ns(self, frame: int) -> int:
        """Monotonic ns of a JACK frame (near the current one)."""
        return self._frames_to_time(self._ptr, frame & FRAME_MASK) * 1000 + self.offset_ns

    def frame_at(self, t_ns: int) -> int:
        """The JACK frame of a monotonic time (near now)."""
        return self._time_to_frames(self._ptr, max(0, (t_ns - self.offset_ns) // 1000))
