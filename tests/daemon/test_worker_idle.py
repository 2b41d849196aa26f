"""A worker hands a bar over first and then lets the generator do the work that could wait (``idle``);
a model without ``idle`` is served as before."""

import queue
import threading

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.daemon.fakes import FakeGenerator
from affetto.daemon.generator import BarRequest, PhraseGenerator, idle
from affetto.daemon.workers import ThreadWorker


class Idler(FakeGenerator):
    """A phrase model that records the order of its bars and idle calls."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []
        self.idled = threading.Event()

    def generate_bar(self, *args, **kwargs):
        self.log.append("bar")
        return super().generate_bar(*args, **kwargs)

    def idle(self) -> None:
        self.log.append("idle")
        self.idled.set()


def test_the_thread_worker_idles_after_handing_the_bar_over():
    delivered: queue.Queue = queue.Queue()
    model = Idler()
    with ThreadWorker(lambda: PhraseGenerator(model), delivered.put) as worker:
        worker.submit(BarRequest(bar=0, capsule=Capsule.of(Quadrant.Q1)))
        result = delivered.get(timeout=10)
        assert result.error is None and result.bar == 0 and result.notes
        assert model.idled.wait(10)
    assert model.log[:2] == ["bar", "idle"]


def test_idle_waits_for_no_request_and_survives_a_failure():
    model = Idler()
    generator = PhraseGenerator(model)
    idle(generator, lambda: True)  # a request is waiting: the bar comes first
    assert model.log == []
    idle(generator, lambda: False)
    assert model.log == ["idle"]

    class Broken(FakeGenerator):
        def idle(self) -> None:
            raise RuntimeError("no")

    idle(PhraseGenerator(Broken()), lambda: False)  # the work is only deferred further; the worker goes on
    idle(PhraseGenerator(FakeGenerator()), lambda: False)  # a model with no idle: nothing to do
