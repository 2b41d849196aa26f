"""The daemon's service in this process, on real JACK ports: what holds once it says it is ready."""

from __future__ import annotations

import gc

import pytest

from affetto.daemon import service
from affetto.daemon.config import DaemonConfig

pytestmark = pytest.mark.jack


def test_start_up_objects_are_out_of_the_collectors_sight_when_ready(jack_server):
    config = DaemonConfig(midi_api="jack", port_name="affgc", clock="internal", model="builtin:fake",
                          generator_host="thread")
    seen = {}

    def ready(conductor) -> None:
        seen["frozen"] = gc.get_freeze_count()
        seen["conductor_tracked"] = gc.is_tracked(conductor) and any(o is conductor for o in gc.get_objects())
        conductor.request_stop("test", 0)

    gc.unfreeze()
    try:
        code = service.run_daemon(config, on_ready=ready, install_signals=False)
    finally:
        gc.unfreeze()  # the suite's objects back in sight
    assert code == 0
    # the conductor, made at start-up, is frozen: a full collection while playing does not look at it
    assert seen["frozen"] > 0 and not seen["conductor_tracked"]
