"""A JACK client's process callback is parked before deactivation: the cycles after the park only clear
the outputs, and deactivation comes after a cycle has been seen parked (or at once when no cycle comes)."""

import threading

from affetto.daemon.jackports import ParkedProcess


class Port:
    def __init__(self) -> None:
        self.cleared = 0

    def clear_buffer(self) -> None:
        self.cleared += 1


class Client:
    """JACK's process thread as a Python thread: a cycle every millisecond until deactivated. Its period as
    JACK would tell it is 100 ms, so the park waits up to 0.4 s: room for a loaded machine."""

    blocksize, samplerate = 4800, 48000

    def __init__(self, callback) -> None:
        self.callback, self.log = callback, []
        self.active = threading.Event()
        self.active.set()
        self.thread = threading.Thread(target=self._cycles, daemon=True)
        self.thread.start()

    def _cycles(self) -> None:
        while self.active.wait(0) and self.active.is_set():
            self.callback(self.blocksize)
            threading.Event().wait(0.001)

    def deactivate(self) -> None:
        self.log.append(("deactivate", self.callback.parked.is_set()))
        self.active.clear()
        self.thread.join(1.0)


def test_deactivation_waits_for_a_parked_cycle_and_the_callback_stops_working():
    out, calls = Port(), []
    parking = ParkedProcess(lambda frames: calls.append(frames), (out,))
    client = Client(parking)
    while len(calls) < 3:  # the client is running the process callback
        threading.Event().wait(0.001)
    assert parking.deactivate(client) is True
    assert client.log == [("deactivate", True)]
    n = len(calls)
    assert out.cleared >= 1  # the parked cycle cleared the output, sent nothing twice
    threading.Event().wait(0.01)
    assert len(calls) == n and not client.thread.is_alive()


class GoneServer:
    """A client whose server has stopped: no cycle comes and its period cannot be asked."""

    def __init__(self) -> None:
        self.deactivated = False

    @property
    def blocksize(self) -> int:
        raise RuntimeError("the server is gone")

    def deactivate(self) -> None:
        self.deactivated = True


def test_with_no_cycle_deactivation_goes_ahead():
    parking = ParkedProcess(lambda frames: None)
    client = GoneServer()
    assert parking.deactivate(client) is False
    assert client.deactivated
