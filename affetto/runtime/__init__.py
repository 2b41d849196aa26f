"""The torch-free inference runtime: everything that runs an exported model.

The daemon, ``affetto generate``, the evaluation and the benchmarks all run
models through here, the same way:

- :mod:`.session`: ONNX Runtime session and provider choice, IOBinding, the
  shared KV cache with its public API (condition, prefill, step, rewind)
- :mod:`.decode`: the decode loop under the grammar mask
- :mod:`.sampling`: ``SamplingConfig``, ``SamplingOverrides``, ``guide``, ``sample``
- :mod:`.policies`: best-of-N candidate judging, mode following, the sliding window
- :mod:`.engine`: the lead family's ``Engine`` that ties them together
- :mod:`.families`: ``load_model(path)``, which picks the runtime by the manifest's family

Importing this package does not load ONNX Runtime; ``load_model`` and
:mod:`.engine` do.
"""

from affetto.runtime.assets import default_model_path
from affetto.runtime.families import family_of, load_model, register_family
from affetto.runtime.sampling import DEFAULT_SAMPLING, SamplingConfig

__all__ = [
    "DEFAULT_SAMPLING",
    "SamplingConfig",
    "default_model_path",
    "family_of",
    "load_model",
    "register_family",
]
