"""A bar's loss after less context (models/evaluation/context.py), on a tiny exported model."""

import numpy as np
import pytest
from tiny_things import export, make_checkpoint

from affetto.manifest import read_manifest
from affetto.models.evaluation.context import WHOLE, bar_losses, target_bar
from affetto.runtime.policies import bars_within
from affetto.runtime.session import open_session
from affetto.tokens.vocab import Vocabulary

pytestmark = pytest.mark.torch


def test_the_target_is_the_last_whole_bar_from_the_start_and_the_window_keeps_whole_bars():
    B = 1  # the bar token
    tokens = np.array([B, 5, 6, B, 7, 8, 9, B, 5, B, 6, 6])  # bars at 0, 3, 7, 9; the last is not closed
    assert target_bar(tokens, B, 3) == (7, 9)
    assert target_bar(tokens, B, 8) is None  # the bar at 9 has no end
    assert bars_within(tokens[:7], B, 5) == [B, 7, 8, 9]  # the context scored: 4 tokens + BOS fit in 5
    assert bars_within(tokens[:7], B, 4) == []  # no whole bar fits in 3


def test_a_context_longer_than_the_segment_scores_as_the_whole_and_a_short_one_differently(tmp_path):
    path = export(make_checkpoint(tmp_path, max_len=256), tmp_path / "tiny.onnx")
    manifest = read_manifest(path)
    vocab = Vocabulary.from_dict(manifest["vocab"])
    rng = np.random.default_rng(0)
    sequences = [np.asarray(vocab.random_walk(200, rng)[1:]) for _ in range(3)]  # [1:]: without its BOS
    sequences.append(np.asarray([vocab.bar] * 3))
    result = bar_losses(open_session(path, threads=1), manifest, sequences, [0, 1, 2, 3], bos=vocab.bos,
                        bar=vocab.bar, lengths=(16, 255), min_start=100)
    assert result["bars"] == 3  # the last sequence has no bar from token 100 on
    expected = sum(end - start for start, end in (target_bar(s, vocab.bar, 100) for s in sequences[:3]))
    assert result["tokens"] == expected
    losses = result["nats_per_token"]
    assert losses["255"] == pytest.approx(losses[WHOLE], abs=1e-6)  # the same runs
    assert abs(losses["16"] - losses[WHOLE]) > 1e-5  # less context, other logits
    assert all(0 < v < np.log(vocab.size) * 3 for v in losses.values())
