"""A piano-roll PNG of generated bars (needs matplotlib: the 'plot' extra)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from affetto.music.notes import Note, TimeSignature


def piano_roll(path: str | Path, notes: Sequence[Note], *, meter: TimeSignature, title: str,
               seed_beats: float = 0.0) -> None:
    """Draw notes as bars of their length, velocity as shade, bar lines, the seed shaded grey."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle
    except ImportError as err:
        raise ImportError("plotting needs matplotlib: pip install 'affetto[plot]'") from err
    end = max((n.end for n in notes), default=meter.beats_per_bar)
    low = min((n.pitch for n in notes), default=60) - 2
    high = max((n.pitch for n in notes), default=72) + 2
    fig, ax = plt.subplots(figsize=(max(6.0, end * 0.35), 4.0), dpi=100)
    if seed_beats > 0:
        ax.axvspan(0, seed_beats, color="0.92", zorder=0, label="seed")
    for n in notes:
        shade = 0.25 + 0.75 * n.velocity / 127
        color = (0.55, 0.55, 0.55) if n.onset < seed_beats else (0.1, 0.3 * shade, 0.9 * shade)
        ax.add_patch(Rectangle((n.onset, n.pitch - 0.4), n.duration, 0.8, color=color, zorder=2))
    bar = 0.0
    while bar <= end + 1e-9:
        ax.axvline(bar, color="0.6", linewidth=0.8, zorder=1)
        bar += meter.beats_per_bar
    ax.set_xlim(0, end)
    ax.set_ylim(low, high)
    ax.set_xlabel("beats")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
