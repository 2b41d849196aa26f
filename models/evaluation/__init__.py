"""``affetto eval``: does the emotion knob work, and is the music good?

The protocol, in the order it runs:

1. Material. The model's manifest names its training data and data config;
   that data is loaded again and split as training split it, and its held-out
   ("test") pieces are cut into labelled 4-bar phrases (see
   :mod:`.data`). They are the seeds, the judges'
   ceilings and the reference for the music metrics.
2. Judges. The feature judge (:mod:`affetto.analysis.judge`, at the tempo labels use)
   and a learned judge (:mod:`affetto.models.emotion_classifier`) trained on
   phrases of the training split; both are scored on the held-out phrases.
3. Generation. For every condition (each quadrant at the daemon's default
   sampling, blends of neighbouring quadrants, guidance scales, temperatures)
   phrase i continues held-out seed i, so conditions differ only in the
   condition. Every generated phrase of ``phrase_bars`` bars is judged by both
   judges, measured by the music metrics, and its key compared with its seed's.
4. Likelihood. Bits per note of held-out segments under the ONNX model.

:func:`run_eval` returns a JSON-ready dict; :mod:`.report` writes it out.

Modules: :mod:`.config` (what is asked), :mod:`.data` (phrases from pieces),
:mod:`.material`, :mod:`.generation` (through :mod:`affetto.runtime`),
:mod:`.scoring`, :mod:`.stats`, :mod:`.nll`, :mod:`.run` and :mod:`.report`.
"""

from affetto.models.evaluation.config import BLENDS, EvalConfig, Generated
from affetto.models.evaluation.generation import generate_condition
from affetto.models.evaluation.material import resolve_material
from affetto.models.evaluation.run import run_eval
from affetto.models.evaluation.scoring import coherence, key_kept, real_key_kept, score

__all__ = [
    "BLENDS",
    "EvalConfig",
    "Generated",
    "coherence",
    "generate_condition",
    "key_kept",
    "real_key_kept",
    "resolve_material",
    "run_eval",
    "score",
]
