"""Debian's chromium driven by Playwright for Python, for the status page's browser tests.

``playwright install`` cannot download browsers here, so the system's chromium is
launched by path (``tests/run.sh`` installs it, as it does jackd2). Without
chromium or Playwright the tests skip, unless ``AFFETTO_REQUIRE_JACK=1`` makes
that a failure (as the JACK tests do).
"""

from __future__ import annotations

import contextlib
import os
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def _missing(reason: str) -> None:
    if os.environ.get("AFFETTO_REQUIRE_JACK") == "1":
        pytest.fail(f"AFFETTO_REQUIRE_JACK=1 but {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def browser_page(width: int = 1100, height: int = 800):
    """A fresh page in headless chromium; yields (page, problems): ``problems`` collects the page's
    console errors and uncaught exceptions (a Content-Security-Policy refusal is one)."""
    if not os.path.exists(CHROMIUM):
        _missing("chromium is not installed (Debian: apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright is not installed (pip install playwright)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            problems: list[str] = []
            page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda err: problems.append(str(err)))
            yield page, problems
        finally:
            browser.close()
