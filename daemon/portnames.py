"""Finding a MIDI port by name, for every backend: the exact name, else the one port containing it."""

from __future__ import annotations

from affetto.errors import PortError


def find_port(names: list[str], wanted: str, direction: str) -> int:
    """Index of the port named ``wanted`` exactly, else of the one port containing it."""
    if wanted in names:
        return names.index(wanted)
    hits = [i for i, n in enumerate(names) if wanted.lower() in n.lower()]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        listing = ", ".join(repr(n) for n in names) or "none"
        raise PortError(f"no MIDI {direction} port matches {wanted!r}; available: {listing}")
    raise PortError(
        f"{wanted!r} matches several MIDI {direction} ports: "
        + ", ".join(repr(names[i]) for i in hits)
        + "; give more of the name"
    )
