"""Checkpoint -> one self-describing ``.onnx``: graph, manifest, checks.

``export_checkpoint`` writes the graph (see :mod:`affetto.export.graph`),
runs ``onnx.checker`` and the parity checks on real token sequences from the
checkpoint's own validation data, optionally quantises the weights to int8
(activation scales calibrated on validation sequences, :mod:`affetto.export.quantize`,
for CPU) and measures its agreement with fp32,
optionally keeps the KV cache in int8 (scales per channel calibrated on
validation sequences; agreement measured decoding through the engine's
cache), then stores the manifest with a hash of the final graph in the
model's metadata.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import onnx

from affetto.analysis.emotion import Quadrant
from affetto.errors import ConfigError, ModelFileError
from affetto.export.families import get_family
from affetto.export.graph import ROWS
from affetto.export.parity import FP32_ATOL, ParityReport
from affetto.manifest import METADATA_KEY, graph_hash, read_manifest
from affetto.models.checkpoint import load_checkpoint
from affetto.tokens.vocab import Vocabulary

log = logging.getLogger(__name__)


class _TokenConfig(Protocol):
    @property
    def vocab_size(self) -> int: ...


@runtime_checkable
class TokenModel(Protocol):
    """What ``export_checkpoint`` asks of a family's model: the config it was built from, which sizes its
    vocabulary (checked against the checkpoint's)."""

    @property
    def cfg(self) -> _TokenConfig: ...


@dataclass
class ExportResult:
    path: Path
    size_bytes: int
    parity: ParityReport | None
    int8: dict[str, float] | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    kv_int8: dict[str, float] | None = None

    def report(self) -> str:
        lines = [f"wrote {self.path} ({self.size_bytes / 1e6:.2f} MB, {self.manifest.get('dtype')})"]
        if self.parity is not None:
            verdict = "pass" if self.parity.passed() else "FAIL"
            lines.append(f"parity vs PyTorch (fp32, atol {FP32_ATOL:g}): {verdict}: {self.parity}")
        if self.int8 is not None:
            lines.append(
                f"int8 vs fp32 on {self.int8['tokens']} real tokens: top-1 agreement "
                f"{100 * self.int8['top1_agreement']:.2f}%, max logit difference {self.int8['max_logit_diff']:.3f}"
            )
        if self.kv_int8 is not None:
            kv = self.kv_int8
            lines.append(f"int8 KV cache vs fp32, decoding {kv['tokens']} rows x tokens: top-1 agreement "
                         f"{100 * kv['top1_agreement']:.2f}%, max logit difference {kv['max_logit_diff']:.3f}, "
                         f"mean KL {kv['mean_kl']:.2e} nats")
        return "\n".join(lines)


def sample_sequences(meta: dict, vocab: Vocabulary, count: int = 8, length: int = 192,
                     seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Token sequences (with BOS) and their capsules from the checkpoint's validation pieces.

    Falls back to random walks through the grammar (logged) when the
    training data is not on this machine.
    """
    from affetto.models.data import DataConfig, assign_splits, build_examples

    try:
        train = meta["train"]  # the training config the checkpoint carries (TrainConfig.to_dict)
        data, limit = train.get("data", "corpus"), train.get("limit")
        if data == "corpus":
            from affetto.models.corpus import DEFAULT_GROUPS, load_corpus

            groups = tuple(train.get("groups") or DEFAULT_GROUPS)
            pieces = load_corpus(groups, grid=vocab.grid, progress=False, limit=limit)
            labels = None
        else:
            from affetto.models.userdata import load_emopia, load_midi_folder

            loaded = (load_emopia(data) if train.get("emopia")
                      else load_midi_folder(data, train.get("labels"), grid=vocab.grid))
            pieces, labels = loaded.pieces, loaded.labels
        splits = assign_splits(pieces)
        chosen = [i for i, s in enumerate(splits) if s == "valid"][: 4 * count]
        chosen = chosen or list(range(min(len(pieces), 4 * count)))
        subset = [pieces[i] for i in chosen]
        sub_labels = {j: labels[i] for j, i in enumerate(chosen) if labels and i in labels}
        examples = build_examples(subset, vocab, DataConfig(), labels=sub_labels, augment=False)
        if examples:
            rng = np.random.default_rng(seed)
            picks = rng.choice(len(examples), size=min(count, len(examples)), replace=False)
            seqs = [np.concatenate([[vocab.bos], examples[i].tokens[: length - 1]]).astype(np.int64) for i in picks]
            cond = np.zeros((len(seqs), 4), np.float32)
            for row, i in enumerate(picks):
                cond[row, examples[i].quadrant] = 1.0
            return seqs, cond
    except Exception as err:  # the check must still run on a machine without the data
        log.warning("training data not available (%s); checking on grammar walks instead", err)
    return grammar_walks(vocab, count, length, seed)


def grammar_walks(
    vocab: Vocabulary, count: int, length: int, seed: int = 0
) -> tuple[list[np.ndarray], np.ndarray]:
    """Random valid token streams and random one-hot capsules, for checks without data."""
    rng = np.random.default_rng(seed)
    seqs = [np.array(vocab.random_walk(length, rng), np.int64) for _ in range(count)]
    cond = np.eye(4, dtype=np.float32)[rng.integers(0, 4, count)]
    return seqs, cond


def with_guidance(sequences: tuple[list[np.ndarray], np.ndarray],
                  channel: dict | None) -> tuple[list[np.ndarray], np.ndarray]:
    """Checks' sequences with capsules as a guidance-distilled model takes them: the quadrants' weights and
    the guidance channel at the default scale (``channel`` None, or capsules that already have it: as
    they are)."""
    seqs, cond = sequences
    if channel is None or cond.shape[1] > int(channel["index"]):
        return sequences
    from affetto.runtime.sampling import DEFAULT_SAMPLING
    from affetto.runtime.session import guidance_value

    value = guidance_value(DEFAULT_SAMPLING.guidance, float(channel["max_scale"]))
    return seqs, np.concatenate([cond, np.full((len(cond), 1), value, np.float32)], axis=1)


def with_manifest(model: onnx.ModelProto, manifest: dict) -> onnx.ModelProto:
    """Store ``manifest`` in the model's metadata, stamped with the hash of its graph as it is now."""
    manifest = dict(manifest, content_hash=graph_hash(model.graph.SerializeToString()))
    for prop in [p for p in model.metadata_props if p.key == METADATA_KEY]:
        model.metadata_props.remove(prop)
    entry = onnx.StringStringEntryProto(key=METADATA_KEY, value=json.dumps(manifest, sort_keys=True))
    model.metadata_props.append(entry)
    return model


KV_MARGIN = 1.1  # scales leave room above the largest magnitude calibration saw (longer contexts, other pieces)


def calibrate_kv(model_bytes: bytes, model: Any, sequences: list[np.ndarray], cond: np.ndarray,
                 margin: float = KV_MARGIN, *, rows: int = ROWS) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per layer, the key and the value scale of GroupQueryAttention's int8 cache: each channel's largest
    magnitude over the ``sequences`` (read whole as the engine runs them: with two ``rows``, the capsule in
    one and none in the other), times ``margin``, over 127. ``model_bytes`` is the fp32 graph with that op."""
    from affetto.export.parity import calibration_feeds, session

    cfg = model.cfg
    sess = session(model_bytes)
    amax: list[np.ndarray] = []
    for feeds in calibration_feeds(model, sequences, cond, attention="gqa", rows=rows):
        presents = sess.run(None, feeds)[1:]  # (1, R*KV, T, hs), key and value
        seen = [np.abs(p).max(axis=(0, 2)) for p in presents]  # (R*KV, hs) per tensor
        amax = seen if not amax else [np.maximum(a, b) for a, b in zip(amax, seen)]
    scales = [np.maximum(a * margin, 1e-6).reshape(-1).astype(np.float32) / 127.0 for a in amax]
    return [(scales[2 * i], scales[2 * i + 1]) for i in range(cfg.n_layer)]


def calibrate_int8_cache(fp32: onnx.ModelProto, model: Any, sequences: list[np.ndarray], cond: np.ndarray,
                         margin: float = KV_MARGIN, *, rows: int = ROWS) -> list[Any]:
    """Per layer, the MatMul attention's :class:`affetto.export.graph.Int8Cache`, from the largest magnitudes
    of keys, values and queries over the ``sequences`` read whole (as :func:`calibrate_kv`) by ``fp32``, the
    graph with the MatMul attention."""
    from affetto.export.graph import int8_cache
    from affetto.export.parity import calibration_feeds, session

    n_layer = model.cfg.n_layer
    probe = onnx.ModelProto()
    probe.CopyFrom(fp32)
    queries = [f"blocks.{i}.attn.q_rows_out" for i in range(n_layer)]  # (N, S*G, hs), as the products read them
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(q, onnx.TensorProto.FLOAT, None) for q in queries)
    sess = session(probe.SerializeToString())
    amax: list[np.ndarray] = []
    for feeds in calibration_feeds(model, sequences, cond, attention="matmul", rows=rows):
        present, *q = sess.run(["present", *queries], feeds)  # present: (2 L N, S, hs), layer i's keys, its values
        seen = [*np.abs(present).max(axis=1).reshape(2 * n_layer, -1, present.shape[-1]),
                *(np.abs(x).max(axis=1) for x in q)]
        amax = seen if not amax else [np.maximum(a, b) for a, b in zip(amax, seen)]
    return [int8_cache(amax[2 * i], amax[2 * i + 1], amax[2 * n_layer + i], margin) for i in range(n_layer)]


CALIBRATION_SEQUENCES = 16  # validation sequences the int8 activation scales are calibrated on (not checked on)
CALIBRATION_LENGTH = 384  # their tokens, at most


def quantize_int8(fp32: onnx.ModelProto, feeds: Iterable[dict[str, np.ndarray]] | None = None) -> onnx.ModelProto:
    """int8 weights: with calibration ``feeds``, activation scales fixed at export (every row quantised alone,
    :mod:`affetto.export.quantize`); without, ONNX Runtime's dynamic quantisation (one scale per run)."""
    if feeds is not None:
        from affetto.export.quantize import quantize_int8 as calibrated

        return calibrated(fp32, feeds)
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(fp32, src)
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        return onnx.load(dst)


def _check_sampling(sampling: dict) -> None:
    from affetto.runtime.sampling import SamplingConfig  # torch-free core: the same checks as the runtime's

    allowed = {"default", *(q.name for q in Quadrant)}
    for key, values in sampling.items():
        if key not in allowed:
            raise ValueError(f"sampling keys are 'default' and Q1..Q4, got {key!r}")
        if not isinstance(values, dict) or set(values) - {"temperature", "top_k", "top_p", "guidance"}:
            raise ValueError(f"sampling[{key!r}] takes temperature, top_k, top_p and guidance, got {values!r}")
        SamplingConfig(**values)  # validates the values


def export_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    *,
    int8: bool = False,
    check: bool = True,
    sequences: tuple[list[np.ndarray], np.ndarray] | None = None,
    sampling: dict[str, dict] | None = None,
    kv_int8: bool = False,
    attention: str | None = None,
) -> ExportResult:
    """Export a checkpoint to ``out``; raises when fp32 parity fails.

    ``kv_int8`` keeps the KV cache in int8 (the lead family's graph only): its
    scales are calibrated on validation sequences of the model's whole length
    and its agreement with the fp32 cache is measured and stored in the manifest.

    ``attention`` picks the lead graph's attention (:data:`affetto.export.graph.ATTENTIONS`): ``matmul``
    by default (with ``kv_int8``, its int8 cache: scales per channel shared by the heads, read by
    ``MatMulIntegerToFloat``), or ``gqa`` (GroupQueryAttention, whose int8 cache has scales per head).

    ``sampling`` stores the model's own sampling settings in the manifest
    (``{"default": {...}, "Q3": {...}}``), which the engine uses where the
    user sets none; keys and values are checked here.
    """
    if sampling is not None:
        _check_sampling(sampling)
    model, meta = load_checkpoint(checkpoint)
    family = get_family(str(meta.get("family", "lead")))
    if not isinstance(model, TokenModel):
        raise ModelFileError(f"{checkpoint}: a {family.name} model carries no cfg naming its vocabulary")
    vocab = Vocabulary.from_dict(meta["vocab"])
    if vocab.size != model.cfg.vocab_size:
        raise ModelFileError(
            f"{checkpoint}: vocabulary of {vocab.size} tokens but the model has {model.cfg.vocab_size}"
        )
    from affetto.export.graph import ATTENTIONS
    from affetto.export.manifest import checkpoint_rows, guidance_channel

    if attention is not None and attention not in ATTENTIONS:
        raise ConfigError(f"attention must be one of {', '.join(ATTENTIONS)}, got {attention!r}")

    channel = guidance_channel(meta)  # a guidance-distilled model: one row, guidance in its capsule
    rows = checkpoint_rows(meta)
    lead_options: dict[str, Any] = {} if attention is None else {"attention": attention}  # other families take none
    if rows != ROWS:
        lead_options["rows"] = rows

    def sample(**options: Any) -> tuple[list[np.ndarray], np.ndarray]:
        return with_guidance(sample_sequences(meta, vocab, **options), channel)

    if sequences is not None:
        sequences = with_guidance(sequences, channel)
    fp32 = family.graph(model, **lead_options)
    onnx.checker.check_model(fp32, full_check=True)
    fp32_bytes = fp32.SerializeToString()
    matmul_kv8 = kv_int8 and attention in (None, "matmul")  # the int8 cache's scales are in the graph's weights
    parity = None
    if check:
        sequences = sequences or sample()
        seqs, cond = sequences
        width = min(len(s) for s in seqs)
        batch = np.stack([s[:width] for s in seqs[:2]])
        parity = family.parity(fp32_bytes, model, batch, cond[:2])
        log.info("parity: %s", parity)
        if not parity.passed():
            raise ModelFileError(f"{checkpoint}: exported graph disagrees with PyTorch: {parity}")
    manifest = {**family.manifest(model, meta, "int8" if int8 else "fp32"), "family": family.name}
    if attention == "gqa":
        from affetto.export.manifest import GQA_LAYOUT

        manifest["kv_cache"] = {**manifest.get("kv_cache", {}), "layout": GQA_LAYOUT,
                                "op": "com.microsoft.GroupQueryAttention"}
    result_int8 = None
    final = fp32
    kv_scales = None
    if kv_int8:
        max_len = int(model.cfg.max_len)  # type: ignore[attr-defined]  # the lead family's config has it
        long_seqs, long_cond = sample(length=max_len, seed=1)
        if matmul_kv8:
            caches = calibrate_int8_cache(fp32, model, long_seqs, long_cond, rows=rows)
            final = family.graph(model, **lead_options, kv_scales=caches)
        else:
            kv_scales = calibrate_kv(fp32_bytes, model, long_seqs, long_cond, rows=rows)
    if int8:
        sequences = sequences or sample()  # drawn once: the check's when it ran
        if family.calibration is not None:
            from affetto.export.quantize import METHOD

            length = min(model.cfg.max_len, CALIBRATION_LENGTH)  # type: ignore[attr-defined]  # the lead's config
            calibration = sample(count=CALIBRATION_SEQUENCES, length=length, seed=3)
            cache = {"kv_dtype": np.int8} if matmul_kv8 else {}  # what the calibration runs feed the graph's cache
            final = quantize_int8(final, family.calibration(model, *calibration, **lead_options, **cache))
            method = f"{METHOD}; calibrated on {len(calibration[0])} validation sequences"
        else:
            final = quantize_int8(final)
            method = "onnxruntime dynamic, int8 weights, MatMul"
        result_int8 = family.agreement(fp32_bytes, final.SerializeToString(), model, *sequences)
        manifest["quantization"] = {"method": method, **result_int8}
    result_kv = None
    if kv_int8:
        from affetto.export.graph import with_int8_kv
        from affetto.export.parity import decode_agreement

        if kv_scales is not None:  # GroupQueryAttention's: the op quantises what it writes
            final = with_int8_kv(final, kv_scales)
        check_seqs, check_cond = sample(count=2, length=max_len, seed=2)  # not calibrated on
        result_kv = decode_agreement(fp32_bytes, final.SerializeToString(), model, check_seqs, check_cond)
        scales = ("per channel shared by the heads, 7 bits; queries at a scale calibrated with them, attention "
                  "weights over their largest, uint8" if matmul_kv8 else "per channel")
        manifest["kv_cache"] = {**manifest.get("kv_cache", {}), "dtype": "int8",
                                "scales": f"{scales}, calibrated on {len(long_seqs)} validation sequences "
                                          f"(x{KV_MARGIN} margin)", **result_kv}
    if parity is not None:
        manifest["parity"] = parity.to_dict()
    if sampling:
        manifest["sampling"] = sampling
    final = with_manifest(final, manifest)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    onnx.save(final, tmp)
    tmp.replace(out)
    written = read_manifest(out)  # proves the file reads back and its hash holds
    return ExportResult(out, out.stat().st_size, parity, result_int8, written, result_kv)
