"""``transfer`` and ``variation`` modes: the player's loop played back in the knob's emotion.

The player loops a phrase of 1, 2, 4 or 8 bars. The loop is learned and
followed exactly as in ``harmonise`` mode (:class:`~affetto.daemon.modes.
harmonise.HarmoniseMode`: learned on its first pass, joined in the second
pass's second bar, given up inside a bar when the player stops or changes
it); what is asked for each bar is different:

- ``transfer`` (:class:`TransferMode`): the bar of the loop re-played in the
  knob's emotion by a transfer method (:mod:`affetto.transfer`), on the output
  channel. The whole loop is transferred at once (its key is heard over all
  its bars) and kept per emotion, so each bar is cut from one transfer;
- ``variation`` (:class:`VariationMode`): each pass of the loop is a new
  variation near the source, in the knob's emotion: for the rule method, the
  loop with small seeded changes drawn afresh each pass
  (:func:`affetto.transfer.variation.vary`), then transferred; for a model, its own ``vary`` when
  it has one (the CVAE: z drawn near the loop's, the decoder's own notes), else a transfer at a lower
  strength with a fresh random state.

Bars are asked one bar ahead at each bar line with the knob's capsule, and a
knob turn redoes the sounding bar from its next reachable half beat
(``revisable``), so a turn is heard within the bar it is made in, or the
next. The player's notes are never echoed as they are: mute your own track
to hear only the transfer, or keep it to hear both.

:class:`TransferGenerator` serves both modes' requests
(``GENERATORS["transfer"]``); the method is chosen by the config's
``transfer_method`` (``auto``: the CVAE when its model is shipped, else the
rule), and the generator says which in its description (the daemon logs it).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from typing import ClassVar

import numpy as np

from affetto.daemon.config import DaemonConfig
from affetto.daemon.generator import BarRequest, GeneratorFactory
from affetto.daemon.modes.harmonise import HarmoniseMode
from affetto.errors import ConfigError
from affetto.music.notes import Note, TimeSignature
from affetto.transfer.api import Transfer

VARIATION_STRENGTH = 0.6  # a model's variation: each pass moves the condition this share of the strength
CACHE = 16  # transferred loops kept (per emotion, per pass in variation mode)


class TransferMode(HarmoniseMode):
    """Loop-follow (as harmonise), asking for each bar of the loop re-played in the knob's emotion."""

    name = "transfer"
    task = "transfer"
    generator = "transfer"
    routed = False  # one line, on the output channel
    lead = True
    repeat_on_miss = False  # the last bar belongs to another place in the loop
    revisable = True  # a knob turn redoes the sounding bar from its next half beat
    plays = "transferred bars"


class VariationMode(TransferMode):
    """Loop-follow, asking for a new variation of the loop each pass, in the knob's emotion."""

    name = "variation"
    task = "variation"
    plays = "variations"


class TransferGenerator:
    """Serves ``transfer`` and ``variation`` requests: bar ``position`` of the loop the request carries,
    from the loop re-played by ``method`` (kept per emotion, and per pass for variations)."""

    tasks: ClassVar[tuple[str, ...]] = ("transfer", "variation")

    def __init__(self, method: Transfer, meter: TimeSignature, *, strength: float = 1.0, rng_seed: int = 0,
                 said: str = "") -> None:
        if not 0.0 <= strength <= 1.0:
            raise ConfigError(f"strength must be in range 0..1, got {strength!r}")
        self.method = method
        self.meter = meter
        self.strength = strength
        self.rng_seed = rng_seed
        self.model_path = said or f"transfer method: {method.name}"
        self.provider = "CPUExecutionProvider" if method.name != "rule" else "numpy"
        self._loops: OrderedDict[tuple, list[Note]] = OrderedDict()

    def serve(self, req: BarRequest) -> list[Note]:
        if req.seed is None or req.loop_bars < 1:  # BarRequest refuses these already
            raise ConfigError(f"a {req.task} request carries the loop as its seed")
        length = self.meter.beats_per_bar
        first = req.position % req.loop_bars * length
        return [Note(n.pitch, n.onset - first, n.duration, n.velocity, 0) for n in self.loop(req)
                if first + req.from_beat - 1e-9 <= n.onset < first + length - 1e-9]

    def loop(self, req: BarRequest) -> list[Note]:
        """The whole loop as this request's pass plays it."""
        assert req.seed is not None
        ahead = req.position // req.loop_bars if req.task == "variation" else 0  # which pass
        key = (req.task, req.seed, req.loop_bars, req.capsule.weights, ahead)
        if key in self._loops:
            self._loops.move_to_end(key)
            return self._loops[key]
        source = list(req.seed)
        rng = np.random.default_rng([self.rng_seed, ahead])
        if req.task == "transfer":
            out = self.method.transfer(source, self.meter, req.capsule, strength=self.strength, rng=rng)
        elif self.method.name == "rule":
            from affetto.transfer.variation import vary

            varied = vary(source, self.meter, rng)  # in the source's own scale, then into the emotion's
            out = self.method.transfer(varied, self.meter, req.capsule, strength=self.strength)
        elif callable(getattr(self.method, "vary", None)):
            out = self.method.vary(source, self.meter, req.capsule, rng=rng,  # type: ignore[attr-defined]
                                   strength=self.strength * VARIATION_STRENGTH)
        else:
            out = self.method.transfer(source, self.meter, req.capsule, strength=self.strength * VARIATION_STRENGTH,
                                       rng=rng)
        self._loops[key] = list(out)
        while len(self._loops) > CACHE:
            self._loops.popitem(last=False)
        return self._loops[key]


def _transfer_generator(method: str, meter: TimeSignature, threads: int | None, rng_seed: int,
                        strength: float) -> TransferGenerator:
    from affetto.transfer.methods import load_method

    chosen, said = load_method(method, threads=threads or 1)
    return TransferGenerator(chosen, meter, strength=strength, rng_seed=rng_seed, said=said)


def transfer_factory(config: DaemonConfig) -> GeneratorFactory:
    """The transfer method of ``config.transfer_method`` re-playing the player's loop."""
    return functools.partial(_transfer_generator, config.transfer_method, config.meter, config.threads,
                             config.rng_seed or 0, config.transfer_strength)
