"""A small MIDI byte-stream parser for the input callback.

It turns whatever a backend hands over into complete messages the conductor
cares about, and survives anything: running status, real-time bytes in the
middle of other messages, SysEx of any length (skipped), truncated messages,
stray data bytes. It never logs (the input callback must not block); it
counts each kind of trouble in :attr:`MidiParser.trouble`, and the conductor
logs each kind once.

An event is a tuple ``(t_ns, status, data1, data2)``; for Song Position
Pointer ``data1`` is the 14-bit position and ``data2`` is 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from affetto.daemon.midi import (
    CHANNEL_AT,
    CLOCK,
    CONTINUE,
    CONTROL_CHANGE,
    EOX,
    KIND,
    MTC,
    NOTE_OFF,
    NOTE_ON,
    PITCH_BEND,
    POLY_AT,
    PROGRAM,
    REALTIME,
    SONG_POSITION,
    SONG_SELECT,
    START,
    STATUS,
    STOP,
    SYSEX,
    SYSTEM,
    TUNE,
)

Event = tuple[int, int, int, int]

_DATA_LENGTH = {NOTE_OFF: 2, NOTE_ON: 2, POLY_AT: 2, CONTROL_CHANGE: 2, PROGRAM: 1, CHANNEL_AT: 1, PITCH_BEND: 2}
_COMMON_LENGTH = {MTC: 1, SONG_POSITION: 2, SONG_SELECT: 1, TUNE: 0}
# what the conductor wants; everything else is parsed (for running status) and dropped
_WANTED_CHANNEL = (NOTE_OFF, NOTE_ON, CONTROL_CHANGE)
_WANTED_REALTIME = (CLOCK, START, CONTINUE, STOP)


class MidiParser:
    """Stateful over chunks, as a byte stream is; one per input port."""

    def __init__(self) -> None:
        self._status = 0  # running status (channel messages only), 0 = none
        self._data: list[int] = []
        self._in_sysex = False
        self.trouble: Counter[str] = Counter()

    def feed(self, data: Iterable[int], t_ns: int) -> list[Event]:
        out: list[Event] = []
        for byte in data:
            if not isinstance(byte, int) or not 0 <= byte <= 0xFF:
                self.trouble["not a byte"] += 1
                continue
            if byte >= REALTIME:  # real-time: may appear anywhere, leaves running status alone
                if byte in _WANTED_REALTIME:
                    out.append((t_ns, byte, 0, 0))
                continue
            if byte == EOX:
                if not self._in_sysex:
                    self.trouble["stray end of SysEx"] += 1
                self._in_sysex = False
                self._status = 0
                continue
            if byte >= STATUS:  # a status byte
                if self._in_sysex:
                    self.trouble["unterminated SysEx"] += 1
                    self._in_sysex = False
                if self._data:
                    self.trouble["truncated message"] += 1
                self._data = []
                if byte == SYSEX:
                    self._in_sysex = True
                    self._status = 0
                    continue
                self._status = byte
                if byte >= SYSTEM and _COMMON_LENGTH.get(byte, 0) == 0:
                    self._status = 0  # tune request, undefined F4/F5: nothing follows
                continue
            # a data byte
            if self._in_sysex:
                continue
            if self._status == 0:
                self.trouble["data byte without status"] += 1
                continue
            self._data.append(byte)
            need = self._need(self._status)
            if len(self._data) < need:
                continue
            event = self._complete(self._status, self._data, t_ns)
            self._data = []
            if self._status >= SYSTEM:
                self._status = 0  # system common messages cancel running status
            if event is not None:
                out.append(event)
        return out

    @staticmethod
    def _need(status: int) -> int:
        if status >= SYSTEM:
            return _COMMON_LENGTH.get(status, 0)
        return _DATA_LENGTH[status & KIND]

    @staticmethod
    def _complete(status: int, data: list[int], t_ns: int) -> Event | None:
        if status == SONG_POSITION:
            return (t_ns, SONG_POSITION, data[0] | (data[1] << 7), 0)
        if status < SYSTEM and status & KIND in _WANTED_CHANNEL:
            return (t_ns, status, data[0], data[1])
        return None

    def reset(self) -> None:
        self._status = 0
        self._data = []
        self._in_sysex = False
