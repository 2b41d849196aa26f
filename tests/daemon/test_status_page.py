"""The status page in a real browser (Debian's chromium through Playwright), fed by a board the test
swaps, as the conductor would: what it shows, and that it follows the figures as they change.

The JACK test (tests/jack/test_jack_status_page.py) shows it following a real clock.
"""

from __future__ import annotations

import logging
import time

import pytest
from status_browser import browser_page

from affetto.analysis.emotion import Capsule, Quadrant, va_capsule
from affetto.daemon.barbook import GenTimes
from affetto.daemon.status_http import StatusPage
from affetto.daemon.status_snapshot import Loop, Snapshot
from affetto.daemon.status_view import StatusView, WarningTail

TIMEOUT_MS = 20_000


def snapshot(**fields) -> Snapshot:
    base = dict(seq=1, t_ns=time.monotonic_ns(), running=False, bpm=120.0, beat=0.0, bar_beats=4.0, meter="4/4",
                clock="midi", mode="harmonise", target=Capsule.of(Quadrant.Q4), capsule=Capsule.of(Quadrant.Q4))
    base.update(fields)
    return Snapshot(**base)


class Board:
    def __init__(self) -> None:
        self.current = snapshot()


@pytest.fixture
def served():
    board = Board()
    tail = WarningTail()
    ports = {"backend": "native JACK MIDI", "in": "affetto:affetto in", "out": "affetto:affetto out", "lost": False,
             "connections": {"in": ["daw:out"], "out": ["daw:in"]}}
    # the test's board publishes only when the test says: never stale by the page's clock
    view = StatusView(lambda: board.current, ports=lambda: ports, warnings=tail, now_ns=lambda: board.current.t_ns)
    with StatusPage("127.0.0.1", 0, view, tail=tail) as page:
        page.start()
        yield page, board


def shows(page, selector: str, text: str) -> None:
    """Wait until ``selector``'s text is ``text`` (the page updates from its event stream)."""
    page.wait_for_function("([s, t]) => document.querySelector(s).textContent === t", arg=[selector, text],
                           timeout=TIMEOUT_MS)


def test_the_page_shows_the_figures_and_follows_them(served):
    server, board = served
    with browser_page() as (page, problems):
        page.goto(server.url)
        shows(page, "#link", "live")
        shows(page, "#state", "stopped")
        shows(page, "#mood", "calm")
        shows(page, "#loop", "listening for a loop (1, 2, 4 or 8 bars)…")
        assert page.text_content("#connections") == "daw:out → inout → daw:in"
        # the transport starts, a loop is learned, the knob turns, bars come back, a warning is logged
        notes = ((67, 0.0, 1.0), (69, 1.0, 1.0), (71, 2.0, 2.0), (72, 4.0, 4.0))
        board.current = snapshot(seq=2, running=True, bpm=137.5, beat=21.0, loop=Loop(2, 4, notes),
                                 target=va_capsule(-0.8, 0.9), trail=((1.0, -1.0), (0.2, 0.1), (-0.8, 0.9)),
                                 generated=12, missed=1, played=13, gen=GenTimes(12, 40.0, 38.5, 71.34))
        logging.getLogger("affetto.daemon.conductor").warning("bar 9 not ready in time: resting")
        shows(page, "#state", "running")
        shows(page, "#bpm", "137.5")
        shows(page, "#bar", "6")
        shows(page, "#beat", "2")
        shows(page, "#mood", "tense")
        shows(page, "#loop", "2-bar loop from bar 5 · 4 notes")
        assert page.locator("#roll rect").count() == 4
        assert page.locator("#trail line").count() == 2
        assert float(page.get_attribute("#dot", "cx")) < 0 < -float(page.get_attribute("#dot", "cy"))
        assert (page.text_content("#generated"), page.text_content("#missed")) == ("12", "1")
        assert (page.text_content("#gen-p50"), page.text_content("#gen-p99")) == ("38.5", "71.3")
        page.wait_for_function("() => document.querySelector('#warnings').textContent.includes('bar 9 not ready')",
                               timeout=TIMEOUT_MS)
        board.current = snapshot(seq=3, running=True, bpm=137.5, beat=22.5)
        shows(page, "#bar", "6")
        shows(page, "#beat", "3")
        assert problems == []  # no script error, nothing refused by the page's own policy
