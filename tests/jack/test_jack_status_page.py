"""The status page in a real browser while a real JACK clock runs.

``affetto run --status-port 0`` (any free port, read from its log) follows the
MIDI clock of a DAW client; headless chromium (Playwright) opens the page, and
the page must show the DAW's tempo, the bar moving on, the transport stopping
with the DAW, and the DAW's connections. The checks wait on what the page
shows; none of them times anything.
"""

from __future__ import annotations

import json
import re
import signal
import urllib.request

import pytest
from conftest import Daw, clock_script, running_affetto
from status_browser import browser_page

pytestmark = pytest.mark.jack

BPM = 150.0  # a tick every 800 frames at 48 kHz: the follower's tempo is exact
BARS = 10
TIMEOUT_MS = 30_000


def bar_beyond(page, bar: int) -> int:
    """Wait until the page shows a bar after ``bar``; returns it."""
    page.wait_for_function("(b) => Number(document.querySelector('#bar').textContent) > b", arg=bar,
                           timeout=TIMEOUT_MS)
    return int(page.text_content("#bar"))


def test_the_page_follows_a_real_clock(jack_server):
    name = "affstatus"
    with running_affetto(name, "--clock", "midi", "--status-port", "0", server=jack_server) as (proc, ready, lines):
        assert ready.wait(30), "the daemon did not get ready: " + "".join(lines)
        urls = [m.group(1) for line in lines if (m := re.search(r"status page: (http://127\.0\.0\.1:\d+/)", line))]
        assert urls, "no status page in the log: " + "".join(lines)
        url = urls[0]
        daw = Daw("statusdaw")
        try:
            daw.connect(f"{name}:{name} in", f"{name}:{name} out")
            script, per_tick = clock_script(BPM, BARS)
            script.append((int(BARS * 96 * per_tick), bytes([0xFC])))  # Stop after the last bar
            with browser_page() as (page, problems):
                page.goto(url)
                page.wait_for_function("() => document.querySelector('#link').textContent === 'live'",
                                       timeout=TIMEOUT_MS)
                assert page.text_content("#state") == "stopped"
                daw.play(script)
                page.wait_for_function("() => document.querySelector('#state').textContent === 'running'",
                                       timeout=TIMEOUT_MS)
                page.wait_for_function("() => document.querySelector('#bpm').textContent === '150.0'",
                                       timeout=TIMEOUT_MS)
                first = bar_beyond(page, 1)
                second = bar_beyond(page, first)
                third = bar_beyond(page, second)
                assert first < second < third <= BARS + 1
                assert page.text_content("#clock") == "MIDI clock"
                assert "statusdaw:out → in" in page.text_content("#connections")
                assert "out → statusdaw:in" in page.text_content("#connections")
                assert daw.finished.wait(60), "the DAW script did not finish"
                page.wait_for_function("() => document.querySelector('#state').textContent === 'stopped'",
                                       timeout=TIMEOUT_MS)
                assert problems == []
            with urllib.request.urlopen(url + "status.json", timeout=10) as response:
                doc = json.load(response)
            assert doc["running"] is False and doc["clock"] == "midi"
            assert doc["bar"] >= third and doc["generated"] >= third - 2 and doc["mode"] == "continue"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        finally:
            daw.close()
