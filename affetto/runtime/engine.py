"""The lead model's engine: one bar at a time, in a given emotion, with no torch.

Life of a bar::

    prime(seed)                        context = BOS + the seed's bars (not run yet)
    generate_bar(capsule, ...)         1. mode following may move the context to its parallel mode
                                       2. if the rows' capsules changed, the cache is stale: re-run
                                          the context as one prefill (the capsule is part of every
                                          position, so a new emotion re-reads the phrase in it)
                                       3. feed BAR and the header tokens the plan leaves no choice
                                          for (one run), then sample token by token under the grammar
                                          mask until the model closes the bar (samples BAR); with
                                          candidates, draw them side by side (one run per step
                                          feeds every candidate still drawing) and keep the best
                                          judged, whose keys are already in the cache
                                       4. decode the bar's tokens to notes relative to the bar
    regenerate_from(beat, capsule)     the last bar's rest again from ``beat``, in a new capsule

The pieces live beside this file: :mod:`.session` (ONNX Runtime, IOBinding,
the shared KV cache, forks of candidates), :mod:`.decode` (the grammar-masked
loop), :mod:`.sampling` and :mod:`.policies` (best-of-N, mode following, the
sliding window). Guidance runs the conditioned and the unconditioned row
together (the graph always runs both), and mixes their logits; a
guidance-distilled model (``affetto distill``) runs one row whose capsule
carries the guidance scale in one more channel, and mixes nothing. A change
of that scale is then a change of capsule: the context is read again in it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from affetto.analysis.attributes import heard_key_class
from affetto.analysis.emotion import Capsule
from affetto.analysis.judge import JudgeConfig
from affetto.errors import ConfigError, ModelFileError
from affetto.manifest import read_manifest
from affetto.music.notes import Note, TimeSignature
from affetto.ratelimit import RateLimitedLog
from affetto.runtime.assets import default_model_path
from affetto.runtime.decode import BarDecoder
from affetto.runtime.families import family_of
from affetto.runtime.plan import PHRASE_BARS, Baseline, EmotionPlan, Levers, model_sampling, plan_bar
from affetto.runtime.policies import JUDGED_BARS, CandidateJudge, ModeFollower, bars_within, best_of, recent_bars
from affetto.runtime.sampling import NO_OVERRIDES, SamplingConfig, SamplingOverrides
from affetto.runtime.session import (
    UNCONDITIONED,
    CachedSession,
    Rows,
    cache_shape,
    guidance_rows,
    guidance_value,
    open_session,
)
from affetto.runtime.window import MIN_WINDOW, WINDOW, ReadAhead
from affetto.tokens.grammar import plan_header
from affetto.tokens.vocab import Vocabulary

log = logging.getLogger(__name__)

MAX_NOTES_PER_BAR = 48
LOG_PERIOD_S = 60.0  # a warning a re-prime repeats goes out once a minute at most


class Engine:
    """Generates bars with an affetto ``.onnx`` model of the lead family; a daemon BarGenerator."""

    family = "lead"

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        meter: TimeSignature = TimeSignature(4, 4),
        threads: int | None = 1,
        provider: str = "auto",
        max_notes_per_bar: int = MAX_NOTES_PER_BAR,
        follow_mode: bool = True,
        levers: Levers = Levers(),
        manifest: dict | None = None,
        window: int | None = WINDOW,
    ) -> None:
        self.model_path = Path(path) if path is not None else default_model_path(provider=provider)
        threads = 1 if threads is None else threads  # one thread leaves a core to the scheduler
        if not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"threads must be an int >= 1, got {threads!r}")
        t0 = time.perf_counter()
        self.manifest = manifest if manifest is not None else read_manifest(self.model_path)
        if family_of(self.manifest) != self.family:
            raise ModelFileError(f"{self.model_path}: a {family_of(self.manifest)!r} model, not a {self.family!r} one "
                                 "(load_model picks the runtime of its family)")
        try:
            self.vocab = Vocabulary.from_dict(self.manifest["vocab"])
            model = self.manifest["model"]
            layout = cache_shape(model)
            self.max_len = int(model["max_len"])
            if int(model["vocab_size"]) != self.vocab.size:
                raise ValueError(f"model has {model['vocab_size']} tokens, its vocabulary {self.vocab.size}")
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFileError(f"{self.model_path}: manifest does not describe a usable model ({err})") from err
        if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < MIN_WINDOW):
            raise ConfigError(f"window must be an int >= {MIN_WINDOW} (tokens), or None for the model's whole "
                              f"context, got {window!r}")
        self.context_window = min(window, self.max_len) if window is not None else self.max_len
        self.guidance_ready = bool((self.manifest.get("conditioning") or {}).get("guidance_ready", False))
        # a guidance-distilled model's largest scale (its one row takes the scale in a capsule channel; read by
        # _check_rows); None: a model of two rows, mixed
        self._max_scale: float | None = None
        self.meter = meter
        self.bar_steps = self.vocab.grid.steps_per_bar(meter)
        if self.bar_steps > self.vocab.config.max_bar_steps:
            raise ConfigError(
                f"meter {meter} is longer than this model's bars ({self.vocab.config.max_bar_steps} steps)"
            )
        if self.vocab.meters:
            self.vocab.meter(meter)  # raises when the model cannot write in this meter
        self.max_notes_per_bar = max_notes_per_bar
        judge_config = JudgeConfig(**self.manifest.get("judge", {}))
        trained = (self.manifest.get("training") or {}).get("config") or {}  # the run's TrainConfig, as exported
        data_config = trained.get("data_config") or {}
        label_tempo = float(data_config.get("label_tempo", judge_config.tempo_ref))

        self.stats: dict = {"bars": 0, "tokens": 0, "prefills": 0, "prefill_tokens": 0, "slides": 0,
                            "last_ms": 0.0, "mode_changes": 0, "partial_bars": 0, "read_ahead_tokens": 0}
        self.session = open_session(self.model_path, threads=threads, provider=provider)

        def new_cache() -> CachedSession:
            return CachedSession(self.session, **layout,
                                 max_len=self.max_len, vocab_size=self.vocab.size, bos=self.vocab.bos, stats=self.stats)

        try:
            self.cache = new_cache()
        except ModelFileError as err:
            raise ModelFileError(f"{self.model_path}: {err}") from err
        self._check_rows()
        self.provider = self.cache.provider
        self.device = self.cache.device
        self.decoder = BarDecoder(self.cache, self.vocab, self.bar_steps, max_notes_per_bar)
        self.max_bar_tokens = self.decoder.room
        self.window = ReadAhead(new_cache, bar=self.vocab.bar, bos=self.vocab.bos, max_len=self.max_len,
                                room=self.max_bar_tokens, window=self.context_window)
        self.judge = CandidateJudge(self.vocab, meter, judge_config, label_tempo)
        self.mode = ModeFollower(self.vocab, meter, self.bar_steps, enabled=follow_mode)
        self.levers = levers
        self.baseline = Baseline()  # what the seed sounds like (set by prime)
        self.bars_since_prime = 0  # where the next bar falls in its 4-bar phrase
        self._limited_log = RateLimitedLog(log, period_s=LOG_PERIOD_S)
        self.load_seconds = time.perf_counter() - t0

    @property
    def follow_mode(self) -> bool:
        return self.mode.enabled

    # ---- the daemon's interface ---------------------------------------------------------
    def prime(self, seed: Sequence[Note], bars: int | None = None) -> None:
        """Start afresh from ``seed`` (onsets in beats from its first bar line; may be empty).

        Pitches outside the model's range are folded by octaves (with a
        warning); ``bars`` pads the seed with empty bars up to that length.
        """
        cfg = self.vocab.config
        outside = sum(1 for n in seed if not cfg.pitch_min <= n.pitch <= cfg.pitch_max)
        if outside:  # a re-prime repeats it for every seed: rate-limited
            self._limited_log.warning("seed-octaves", "%d seed notes outside the model's range %d..%d were moved "
                                      "by octaves", outside, cfg.pitch_min, cfg.pitch_max)
        steps = self.vocab.notes_to_steps(seed)
        if bars is not None and len(steps):
            steps = steps[steps[:, 0] < bars * self.bar_steps]
        self.baseline = Baseline.measure(steps, self.bar_steps, cfg.steps_per_beat, cfg.density_edges,
                                         cfg.polyphony_edges)
        key = heard_key_class(steps, cfg.steps_per_beat, cfg.key_clarity) if self.vocab.header else None
        body = self.vocab.encode_steps(steps, self.bar_steps, n_bars=bars, meter=self.meter, key=key).tolist()
        budget = min(self.context_window, self.max_len // 2)  # a seed fills the window, half the positions at most
        if len(body) > budget - 1:
            body = bars_within(body, self.vocab.bar, budget)  # the latest whole bars
        self.cache.reset([self.vocab.bos, *body])
        self.mode.reset()
        self.bars_since_prime = 0

    def generate_bar(
        self,
        capsule: Capsule,
        sampling: SamplingOverrides | SamplingConfig = NO_OVERRIDES,
        *,
        rng: np.random.Generator | None = None,
    ) -> list[Note]:
        """The next bar's notes, onsets relative to the bar (``0 <= onset < bar length``).

        Overrides apply over :meth:`sampling_for` the capsule; a complete
        :class:`SamplingConfig` is used as it is. The emotion plan
        (:mod:`affetto.runtime.plan`) decides every lever the capsule pulls.
        """
        plan = self.plan(capsule, sampling)
        tokens = self.generate_plan_tokens(plan, rng or np.random.default_rng())
        return plan.perform(self.vocab.decode(tokens, self.meter))

    def revise(self, from_beat: float, capsule: Capsule, sampling: SamplingOverrides | SamplingConfig = NO_OVERRIDES,
               *, rng: np.random.Generator | None = None, drop_bars: int = 0) -> list[Note]:
        """A knob turn while a bar sounds: that bar's notes from ``from_beat`` on, drawn again in ``capsule``
        under its emotion plan (loudness included); the ``drop_bars`` bars generated after it (the engine
        works ahead) are forgotten first. See :meth:`regenerate_from`."""
        if drop_bars:
            bars = [i for i, t in enumerate(self.cache.context) if t == self.vocab.bar]
            if len(bars) <= drop_bars:
                raise ConfigError(f"cannot drop {drop_bars} bars of a context with {len(bars)}")
            self.cache.rewind(bars[-drop_bars])
            self.bars_since_prime = max(0, self.bars_since_prime - drop_bars)
            self.window.drop()
        plan = self.plan(capsule, sampling)
        notes = self.regenerate_from(from_beat, capsule, plan.sampling, rng=rng)
        return plan.perform([n for n in notes if n.onset >= from_beat - 1e-9])

    def plan(self, capsule: Capsule, sampling: SamplingOverrides | SamplingConfig = NO_OVERRIDES) -> EmotionPlan:
        """The emotion plan for the next bar, from the capsule, the settings asked and the seed's baseline."""
        return plan_bar(capsule, sampling, self.baseline, model_spec=self.manifest.get("sampling"),
                        guidance_ready=self.guidance_ready, controls=bool(self.vocab.n_keys), levers=self.levers,
                        phrase_bar=self.bars_since_prime % PHRASE_BARS)

    def generate_bar_tokens(self, capsule: Capsule, config: SamplingConfig, rng: np.random.Generator) -> list[int]:
        """The next bar as tokens (BAR first), left in the context."""
        return self.generate_plan_tokens(self.plan(capsule, config), rng)

    def generate_plan_tokens(self, plan: EmotionPlan, rng: np.random.Generator) -> list[int]:
        """The next bar as tokens (BAR first) under ``plan``, left in the context."""
        t0 = time.perf_counter()
        config, capsule = plan.sampling, plan.capsule
        self.match_mode(plan)
        self.cache.condition(self.rows_for(plan))
        room = self.window.slid(self.cache.context)
        if room is not None:
            ahead = self.window.take(self.cache)  # the window read over the bars before, if it was
            if ahead is not None:
                self.cache = self.decoder.cache = ahead
            else:
                self.cache.reset(room)
            self.stats["slides"] += 1
        self.cache.prefill()
        header = self.header_for(plan)
        # Every bar opens with BAR and the header tokens it leaves no choice for: fed in one run, once,
        # however many candidates follow (they branch after them).
        forced = self.decoder.forced(header)
        self.cache.feed([self.vocab.bar, *forced])
        draw = self.decoder.draw(config.candidates if plan.judged else 1, config, rng, guided=self._mixes(plan),
                                 header=header, prefix=forced)
        best = 0
        if plan.judged:
            recent = recent_bars(self.cache.context, self.vocab.bar, JUDGED_BARS)  # the bars before, this BAR on
            valence, arousal = capsule.valence, capsule.arousal
            best = best_of(draw.tokens, self.judge.scorer(recent, valence, arousal))
        body = [*forced, *draw.keep(best)]
        self.window.advance(self.cache, 1 + len(body))
        self.stats["bars"] += 1
        self.bars_since_prime += 1
        self.stats["last_ms"] = (time.perf_counter() - t0) * 1000
        return [self.vocab.bar, *body]

    def regenerate_from(
        self,
        beat: float,
        capsule: Capsule,
        sampling: SamplingOverrides | SamplingConfig = NO_OVERRIDES,
        *,
        rng: np.random.Generator | None = None,
        opens: bool = True,
    ) -> list[Note]:
        """The last bar again from ``beat`` on, in ``capsule``: its notes (onsets relative to the bar).

        The bar's tokens before the first onset at or after ``beat`` (rounded
        up to the grid) are kept as they were played; the model continues
        them in the new capsule and the new rest replaces the old one in the
        context. One draw, no candidates (the rest of a bar is wanted within
        that bar), and no re-reading of the context: only the new tokens (and
        the last kept one, run again for the logits the first new one is drawn
        from) take the new capsule; the next :meth:`generate_bar` re-reads the
        context under its capsule, as any change of emotion at a bar line does.
        With ``opens`` (the default) the new rest begins with a note on
        ``beat`` (rounded up to the grid) itself, so a knob turn is heard
        there even when the new emotion would start with a rest.
        """
        length = self.meter.beats_per_bar
        if not 0 <= beat < length:
            raise ConfigError(f"beat must be >= 0 and < {length} (the bar's length in beats), got {beat!r}")
        plan = self.plan(capsule, sampling)
        context = self.cache.context
        bar = max((i for i, t in enumerate(context) if t == self.vocab.bar), default=None)
        if bar is None:
            raise ConfigError("there is no bar to regenerate: generate one first")
        first_step = math.ceil(round(beat * self.vocab.config.steps_per_beat, 6))
        vocab = self.vocab
        cut = next((i for i in range(bar + 1, len(context))
                    if vocab.pos0 <= context[i] < vocab.pitch0 and context[i] - vocab.pos0 >= first_step),
                   len(context))
        self.cache.rewind(cut)
        self.cache.condition(self.rows_for(plan), reread=False)  # the last kept token runs again in it
        draw = self.decoder.draw(1, plan.sampling.replace(candidates=1), rng or np.random.default_rng(),
                                 guided=self._mixes(plan), prefix=context[bar + 1 : cut],
                                 first_step=first_step,
                                 opens=opens and first_step < round(length * vocab.config.steps_per_beat))
        draw.keep(0)
        self.stats["partial_bars"] += 1
        return vocab.decode(self.cache.context[bar:], self.meter)

    def rows_for(self, plan: EmotionPlan) -> Rows:
        """The capsules of the graph's rows: the plan's, then the unconditioned one guidance mixes with; a
        guidance-distilled model's one row, the plan's capsule with its guidance scale (1, none, unguided)."""
        top = self._max_scale
        if top is None:
            return guidance_rows(plan.capsule.weights, 2)
        scale = plan.sampling.guidance if plan.guided else 1.0
        if not 1.0 <= scale <= top:  # a guidance CC reaches 1..5; a config or command line may ask for more
            self._limited_log.warning("guidance-range", "this model learnt guidance scales 1 to %g: %g is played "
                                      "as %g", top, scale, min(top, max(1.0, scale)))
        return guidance_rows((*plan.capsule.weights, guidance_value(scale, top)), 1)

    def _mixes(self, plan: EmotionPlan) -> bool:
        """Whether the decoder mixes two rows' logits for ``plan`` (guidance a distilled model's row holds,
        it does not)."""
        return plan.guided and self._max_scale is None

    def _check_rows(self) -> None:
        """The graph's rows and capsule width are those its manifest's conditioning says."""
        channel = (self.manifest.get("conditioning") or {}).get("guidance_channel")
        width = self.cache.capsule_width
        try:
            if channel is None:
                expected = (2, len(UNCONDITIONED))
            else:
                expected = (1, int(channel["index"]) + 1)
                self._max_scale = float(channel["max_scale"])
                if not self._max_scale > 1.0:
                    raise ValueError(f"guidance channel's max_scale must be above 1, got {channel['max_scale']}")
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFileError(f"{self.model_path}: the manifest's guidance channel is not usable ({err})") from err
        if (self.cache.rows, width) != expected:
            raise ModelFileError(f"{self.model_path}: the graph runs {self.cache.rows} rows of {width} capsule "
                                 f"weights, its manifest says {expected[0]} of {expected[1]}")

    def header_for(self, plan: EmotionPlan) -> dict[int, np.ndarray]:
        """What the next bar's header may say (models whose vocabulary writes meter and controls).

        The meter is the engine's; the key, density and polyphony are the plan's
        (None: the model chooses, following the bars before and the capsule).
        """
        if not self.vocab.header:
            return {}
        try:
            return plan_header(self.vocab, self.cache.context, self.meter, plan.minor, density=plan.density,
                               polyphony=plan.polyphony, anchor=plan.anchor, leading=plan.leading)
        except ValueError as err:
            raise ConfigError(str(err)) from err

    def match_mode(self, plan: EmotionPlan) -> bool:
        """Move the context to its parallel mode when the plan asks; True when it moved."""
        moved = self.mode.moved(self.cache.context, plan.capsule, plan.minor)
        if moved is None:
            return False
        context, key = moved
        self.cache.reset(context)
        self.stats["mode_changes"] += 1
        log.debug("context moved from %s to the parallel mode for %s", key, plan.capsule)
        return True

    def sampling_for(self, capsule: Capsule) -> SamplingConfig:
        """The model's own sampling settings for a capsule (see :func:`affetto.runtime.plan.model_sampling`)."""
        return model_sampling(self.manifest.get("sampling"), capsule)
