"""The density and texture controls: a CC picks a level that rides on every bar request."""

from __future__ import annotations

import pytest
from daemon_fakes import make_rig

from affetto.daemon.config import DaemonConfig
from affetto.daemon.controls import Controls, cc_to_density, cc_to_texture
from affetto.errors import ConfigError


def test_cc_values_map_onto_six_levels_in_equal_steps():
    levels = [cc_to_density(v) for v in range(128)]
    assert levels[0] == 1 and levels[127] == 6 and levels == sorted(levels)  # never level 0, an empty bar
    assert all(21 <= levels.count(k) <= 22 for k in range(1, 7))


def test_unbound_density_stays_none_and_other_ccs_do_not_move_it():
    controls = Controls(DaemonConfig())
    assert not controls.handle_cc(30, 127)
    assert controls.at_bar_line().sampling.density is None


def test_a_density_cc_moves_the_next_bar_requests():
    rig = make_rig(density_cc=30)
    rig.start()
    rig.advance(int(1.5 * rig.ns_per_bar), auto_deliver=False)
    assert rig.worker.requests and all(r.sampling.density is None for r in rig.worker.requests)
    rig.inbox.put((rig.time(), 0xB0, 30, 127))
    rig.advance(rig.ns_per_bar, auto_deliver=False)
    assert rig.worker.requests[-1].sampling.density == 6
    rig.inbox.put((rig.time(), 0xB0, 30, 0))
    rig.advance(rig.ns_per_bar, auto_deliver=False)
    assert rig.worker.requests[-1].sampling.density == 1


def test_density_cc_needs_its_own_number():
    with pytest.raises(ConfigError, match="each control needs its own CC number"):
        DaemonConfig(emotion_cc=20, density_cc=20)


def test_cc_values_map_onto_five_textures_in_equal_steps():
    levels = [cc_to_texture(v) for v in range(128)]
    assert levels[0] == 1 and levels[127] == 5 and levels == sorted(levels)
    assert all(25 <= levels.count(k) <= 26 for k in range(1, 6))


def test_a_texture_cc_moves_the_next_bar_requests_and_needs_its_own_number():
    rig = make_rig(texture_cc=31)
    rig.start()
    rig.advance(int(1.5 * rig.ns_per_bar), auto_deliver=False)
    assert rig.worker.requests and all(r.sampling.texture is None for r in rig.worker.requests)
    rig.inbox.put((rig.time(), 0xB0, 31, 0))
    rig.advance(rig.ns_per_bar, auto_deliver=False)
    assert rig.worker.requests[-1].sampling.texture == 1  # a single line, whatever the emotion plans
    with pytest.raises(ConfigError, match="each control needs its own CC number"):
        DaemonConfig(density_cc=25, texture_cc=25)
