"""Helpers shared by the daemon's tests on fakes and through JACK."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def sounding(messages: Iterable[tuple[object, Sequence[int]]]) -> set[tuple[int, int]]:
    """(channel, pitch) of notes a MIDI stream leaves on, honouring CC 123 (All Notes Off).

    Sets make JACK's rare duplicated or dropped messages harmless to the verdict.
    """
    on: set[tuple[int, int]] = set()
    for _, m in messages:
        if len(m) < 3:
            continue
        kind, ch = m[0] & 0xF0, m[0] & 0x0F
        if kind == 0x90 and m[2] > 0:
            on.add((ch, m[1]))
        elif kind == 0x80 or (kind == 0x90 and m[2] == 0):
            on.discard((ch, m[1]))
        elif kind == 0xB0 and m[1] == 123:
            on = {k for k in on if k[0] != ch}
    return on
