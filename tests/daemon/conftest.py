"""Fixtures for the daemon's unit tests (the fakes live in daemon_fakes.py)."""

from __future__ import annotations

import pytest
from daemon_fakes import make_rig


@pytest.fixture
def rig_factory():
    return make_rig
