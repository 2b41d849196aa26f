"""JACK-Client is a dependency on Linux, and libjack loads only when the JACK API is chosen."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
import affetto.daemon, affetto.daemon.service, affetto.daemon.ports, affetto.daemon.jackports, affetto.cli
maps = open("/proc/self/maps").read()
print("jack" in sys.modules, "libjack" in maps)
"""


def test_jack_client_is_a_linux_dependency():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "JACK-Client>=0.5; platform_system == 'Linux'" in deps


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/self/maps (Linux)")
def test_importing_the_daemon_does_not_load_libjack():
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
    ).stdout.split()
    assert out == ["False", "False"]
