"""Service lifecycle: ``run_daemon(config)`` from start to a clean exit.

Start: log the resolved configuration, make the clock source
(:func:`affetto.daemon.clocks.make_clock`; a Link clock joins its session),
resolve the MIDI API, load the model in its worker, open the ports (and log
which backend carries the MIDI), start the scheduler, tell the clock the
daemon is ready (an internal clock starts), log one "ready" line. A timed output (native JACK) gets events
its ``lead_ns`` ahead of their deadlines and places them on their frames.
Run: the conductor, in the calling (main) thread, until SIGINT/SIGTERM. If the
JACK server goes away, the model stays loaded and the ports wait for the
server, then come back with the same names and connections (see
:mod:`affetto.daemon.jackports`); the conductor releases and starts its bars
over. Exit: release every owned note and send CC 123, stop the threads, keep a
JACK port open a few periods so those last messages go out, then close. Exit
codes: 0 after a signal, 1 on an unexpected error.
"""

from __future__ import annotations

import gc
import logging
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable

from affetto.daemon.clocks import Clock, make_clock
from affetto.daemon.conductor import Conductor
from affetto.daemon.config import DaemonConfig
from affetto.daemon.generator import GeneratorFactory
from affetto.daemon.generators import default_factory
from affetto.daemon.modes import mode_class
from affetto.daemon.notes import OwnedOutput
from affetto.daemon.ports import endpoints, open_ports, resolve_api
from affetto.daemon.scheduler import Scheduler
from affetto.daemon.status_http import open_status_page
from affetto.daemon.workers import make_worker

log = logging.getLogger("affetto.daemon")

EXIT_OK, EXIT_ERROR = 0, 1


def setup_logging(level: str) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("affetto").setLevel(level.upper())


def run_daemon(
    config: DaemonConfig,
    *,
    generator_factory: GeneratorFactory | None = None,
    on_ready: Callable[[Conductor], None] | None = None,
    install_signals: bool = True,
) -> int:
    """Run until a signal or the loss of the MIDI server; returns the exit code."""
    t0 = time.monotonic()
    setup_logging(config.log_level)
    log.info("configuration: %s", config.describe())
    sys.setswitchinterval(config.switch_interval_ms / 1000)

    # the clock first: a Link clock joins its session here, and a missing binding is one line,
    # before the model loads
    with make_clock(config) as clock:
        return _serve(config, clock, t0, generator_factory, on_ready, install_signals)


def settle_memory() -> int:
    """What start-up made (modules, the model's session, the ports, the config) is moved out of the
    cyclic garbage collector's sight for good; returns how many objects that is.

    A full collection holds the GIL, and with it the JACK process callback and the scheduler: over
    everything a daemon holds once its model is loaded it took 11.8 ms (more than two 256-frame
    periods at 48 kHz); once frozen, a full collection only looks at what was made while playing.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def _serve(
    config: DaemonConfig,
    clock: Clock,
    t0: float,
    generator_factory: GeneratorFactory | None,
    on_ready: Callable[[Conductor], None] | None,
    install_signals: bool,
) -> int:
    api = resolve_api(config.midi_api)
    log.info("MIDI API: %s (asked for %s)", api, config.midi_api)
    inbox: queue.Queue = queue.Queue(maxsize=config.queue_size)

    def deliver(result: object) -> None:
        try:
            inbox.put(result, timeout=2.0)
        except queue.Full:
            log.warning("inbox full: a generated bar was dropped")

    factory = generator_factory or default_factory(config)
    worker = make_worker(config.generator_host, factory, deliver)
    worker.start()
    log.info(
        "model: %s | ONNX Runtime provider: %s | generator in a %s",
        worker.info.get("model"),
        worker.info.get("provider"),
        worker.kind,
    )
    exit_code = EXIT_ERROR
    previous: dict = {}
    status = None
    try:
        with open_ports(
            api,
            port_name=config.port_name,
            in_port=config.in_port,
            out_port=config.out_port,
            inbox=inbox,
            drain_periods=config.drain_periods,
        ) as ports:
            port_in, port_out = endpoints(ports)
            log.info("ports: in %r, out %r", port_in.name, port_out.name)
            output = OwnedOutput(port_out)
            lead_ns = int(getattr(port_out, "lead_ns", 0)) if output.timed else 0
            log.info(
                "MIDI backend: %s; events handed over %.1f ms before their deadlines",
                ports.backend,
                lead_ns / 1e6,
            )
            scheduler = Scheduler(
                output,
                lambda: clock.state,
                lead_ns=lead_ns,
                offset_ns=round(config.output_offset_ms * 1e6),
                fifo_priority=config.fifo_priority,
            )
            conductor = Conductor(
                config,
                clock,
                scheduler,
                worker.submit,
                inbox,
                trouble_sources=(port_in.parser,),
                port_watch=lambda: (getattr(ports, "generation", 0), ports.lost),
            )
            # Our handlers stay until the ports are closed and the worker is gone: a second Ctrl-C
            # must not interrupt the final note-offs.
            previous.update(_install_signals(conductor) if install_signals else {})
            status = open_status_page(config, conductor.board, ports)  # None unless status_port is set
            with scheduler:
                # a clock that runs by itself starts now (a follower waits for its source)
                for event in clock.begin(time.monotonic_ns() + 100_000_000):
                    conductor.process(event)
                if mode_class(config.mode).routed:
                    log.info(
                        "voices: alto, tenor, bass on channels %s (lead on %d)",
                        ", ".join(str(c) for c in config.harmony_channels),
                        config.channel,
                    )
                settle_memory()
                log.info(
                    "ready in %.2f s: in %r, out %r (%s), clock %s, %s, mode %s, emotion CC %s",
                    time.monotonic() - t0,
                    port_in.name,
                    port_out.name,
                    api,
                    config.clock,
                    config.meter,
                    config.mode,
                    f"{config.valence_cc}/{config.arousal_cc} (XY)"
                    if config.xy_mode
                    else config.emotion_cc,
                )
                if on_ready is not None:
                    on_ready(conductor)
                exit_code = conductor.run()
                if scheduler.error is not None:
                    exit_code = EXIT_ERROR
            log.info(
                "stopping (%s): %d bars generated, %d missed",
                conductor.stop_reason or "done",
                conductor.bars_generated,
                conductor.bars_missed,
            )
            # The model's process goes before the ports: nothing needs it any more, and the ports
            # stay open until the last note-offs are out.
            worker.close()
    finally:
        if status is not None:
            status.close()
        worker.close()  # idempotent; here for the paths that never reached the line above
        _restore_signals(previous)
    return exit_code


def _install_signals(conductor: Conductor) -> dict:
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}

    def handler(signum: int, frame: object) -> None:
        # wake=False: this runs in the conductor's own thread, which may hold the inbox's lock
        conductor.request_stop(signal.Signals(signum).name, wake=False)

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    return previous


def _restore_signals(previous: dict) -> None:
    for sig, old in previous.items():
        signal.signal(sig, old)
