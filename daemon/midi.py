"""MIDI's numbers, written once: status bytes, controller numbers, clock resolution.

A channel message's status is ``kind | channel`` (channel 0..15); ``status & KIND``
is its kind and ``status & CHANNEL`` its channel. System messages are
``SYSTEM`` (0xF0) and above; real-time ones (``CLOCK`` and above) may appear
anywhere in a byte stream.
"""

from __future__ import annotations

STATUS = 0x80  # bytes from here up are status bytes, below are data bytes

# channel messages (the high nibble)
NOTE_OFF = 0x80
NOTE_ON = 0x90
POLY_AT = 0xA0
CONTROL_CHANGE = 0xB0
PROGRAM = 0xC0
CHANNEL_AT = 0xD0
PITCH_BEND = 0xE0
KIND = 0xF0  # mask: the kind of a channel message
CHANNEL = 0x0F  # mask: its channel

# system common
SYSTEM = 0xF0  # this and above are system messages
SYSEX = 0xF0
MTC = 0xF1
SONG_POSITION = 0xF2  # Song Position Pointer: 14 bits, in sixteenth notes
SONG_SELECT = 0xF3
TUNE = 0xF6
EOX = 0xF7  # end of SysEx

# system real-time
REALTIME = 0xF8  # this and above are real-time messages
CLOCK = 0xF8  # 24 per quarter note
START = 0xFA
CONTINUE = 0xFB
STOP = 0xFC
ACTIVE_SENSING = 0xFE
RESET = 0xFF

# controller numbers
ALL_SOUND_OFF = 120
ALL_NOTES_OFF = 123

PPQN = 24  # MIDI clock ticks per quarter note
TICKS_PER_SPP_UNIT = 6  # a Song Position Pointer unit is a sixteenth note
SPP_MAX = 0x3FFF  # the largest Song Position Pointer value (14 bits)
