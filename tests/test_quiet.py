"""quiet_fds: C-level writes to the silenced descriptors vanish, and the descriptors come back."""

import os

from affetto.quiet import quiet_fds


def test_writes_to_silenced_descriptors_vanish_and_they_come_back(capfd):
    with quiet_fds():
        os.write(2, b"from C, on stderr\n")
    with quiet_fds(1, 2):
        os.write(1, b"from C, on stdout\n")
        os.write(2, b"again on stderr\n")
    os.write(2, b"after\n")
    os.write(1, b"out after\n")
    captured = capfd.readouterr()
    assert captured.err == "after\n" and captured.out == "out after\n"
