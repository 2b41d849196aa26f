"""Note ownership: every note-on the daemon sends is owned until its note-off.

Stuck notes are the worst failure this product can have, so all note traffic
goes through :class:`OwnedOutput`:

- ``note_on`` records ``(channel, pitch)`` with a fresh token and returns it;
  if that key already sounds, it sends a note-off first (MIDI cannot sound one
  key twice), and the older note's scheduled note-off becomes stale.
- ``note_off(channel, pitch, token)`` sends only if ``token`` still owns the
  key, so a stale note-off never cuts a newer note short.
- ``panic()`` sends a note-off for every owned note and CC 123 (All Notes Off)
  on every channel the daemon has used, then forgets them all.

Timed sinks (``sink.timed``, e.g. native JACK MIDI) take ``send(message,
at_ns=...)`` and play the message at that monotonic time; the scheduler hands
events to them ahead of their deadlines. A note is owned from the moment its
note-on is handed over, even if it has not sounded yet. Before its note-offs,
``panic()`` has such a sink drop what it still holds (``discard_pending()``),
so a note-on queued for later cannot sound after the panic; any note-off among
the dropped messages is sent at once, so a note whose note-off was handed over
but not yet played is released too. Untimed sinks get ``send(message)``.

Methods are thread-safe (one lock), and the lock is held while sending, so a
panic from the conductor and a send from the scheduler never interleave.
"""

from __future__ import annotations

import itertools
import logging
import threading
from typing import Protocol, TypeGuard

from affetto.daemon.midi import ALL_NOTES_OFF, CONTROL_CHANGE, KIND, NOTE_OFF, NOTE_ON
from affetto.errors import PortError

log = logging.getLogger(__name__)



class MidiSink(Protocol):
    """Anything that sends raw MIDI messages (a port, or a fake that records).

    A timed sink also has ``timed = True``, ``send(message, at_ns=None)`` and
    ``discard_pending() -> list[list[int]]`` (the messages it dropped).
    """

    def send(self, message: list[int]) -> None: ...


class TimedMidiSink(Protocol):
    """A sink that places each message at its deadline (``timed = True``)."""

    timed: bool

    def send(self, message: list[int], at_ns: int | None = None) -> None: ...


def is_timed(sink: MidiSink) -> TypeGuard[TimedMidiSink]:
    """Whether ``sink`` says it is timed (``timed = True``), which promises ``send(message, at_ns=...)``."""
    return bool(getattr(sink, "timed", False))


class OwnedOutput:
    """Sends notes to ``sink`` and remembers which ones are sounding."""

    def __init__(self, sink: MidiSink) -> None:
        self.sink = sink
        self._timed_sink = sink if is_timed(sink) else None
        self.timed = self._timed_sink is not None
        self._lock = threading.RLock()
        self._owned: dict[tuple[int, int], int] = {}
        self._used_channels: set[int] = set()
        self._tokens = itertools.count(1)
        self.sent = 0
        self.failed = False  # the sink raised: later sends are skipped

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def sounding(self) -> list[tuple[int, int]]:
        """Owned ``(channel, pitch)`` pairs, sorted."""
        with self._lock:
            return sorted(self._owned)

    def note_on(self, channel: int, pitch: int, velocity: int, at_ns: int | None = None) -> int:
        """Send a note-on (at ``at_ns`` on a timed sink) and own it; returns the token its note-off
        must carry (0 if not sent)."""
        with self._lock:
            key = (channel, pitch)
            if key in self._owned:
                self._send([NOTE_OFF | channel, pitch, 0], at_ns)
                del self._owned[key]
            token = next(self._tokens)
            self._used_channels.add(channel)
            if not self._send([NOTE_ON | channel, pitch, velocity], at_ns):
                return 0
            self._owned[key] = token
            return token

    def note_off(self, channel: int, pitch: int, token: int, at_ns: int | None = None) -> bool:
        """Send the note-off if ``token`` still owns the key; True when sent."""
        with self._lock:
            key = (channel, pitch)
            if self._owned.get(key) != token:
                return False
            del self._owned[key]
            return self._send([NOTE_OFF | channel, pitch, 0], at_ns)

    def revive(self) -> None:
        """The sink works again (a JACK server came back): send again; what is still owned is
        released by the next :meth:`panic`."""
        with self._lock:
            self.failed = False

    def control_change(self, channel: int, control: int, value: int, at_ns: int | None = None) -> None:
        with self._lock:
            self._used_channels.add(channel)
            self._send([CONTROL_CHANGE | channel, control, value], at_ns)

    def panic(self) -> int:
        """Note-offs for owned notes plus CC 123 per used channel; returns the number of notes released."""
        with self._lock:
            keys = set(self._owned)
            owned = len(keys)
            self._owned.clear()
            for message in self._discard_pending():
                if message[0] & KIND == NOTE_OFF:  # handed over, not yet played: its note may be sounding
                    keys.add((message[0] & 0x0F, message[1]))
            for channel, pitch in sorted(keys):
                self._send([NOTE_OFF | channel, pitch, 0])
            for channel in sorted(self._used_channels):
                self._send([CONTROL_CHANGE | channel, ALL_NOTES_OFF, 0])
            if owned:
                log.info("released %d sounding note(s)", owned)
            return owned

    def _discard_pending(self) -> list[list[int]]:
        discard = getattr(self.sink, "discard_pending", None)
        if discard is None or self.failed:
            return []
        try:
            return list(discard() or ())
        except PortError as err:
            self.failed = True
            log.error("output port failed, nothing is sent until it works again: %s", err)
            return []

    def _send(self, message: list[int], at_ns: int | None = None) -> bool:
        if self.failed:
            return False
        try:
            if self._timed_sink is not None and at_ns is not None:
                self._timed_sink.send(message, at_ns=at_ns)
            else:
                self.sink.send(message)
        except PortError as err:
            self.failed = True
            log.error("output port failed, nothing is sent until it works again: %s", err)
            return False
        self.sent += 1
        return True
