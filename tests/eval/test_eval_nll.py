"""Held-out bits per note through ONNX Runtime equal the PyTorch model's cross-entropy on the same tokens."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from affetto.models.checkpoint import load_checkpoint
from affetto.models.evaluation.nll import heldout_nll
from affetto.music.notes import Note, TimeSignature
from affetto.runtime.engine import Engine
from affetto.tokens.vocab import Vocabulary

VOCAB = Vocabulary()


def sequences():
    rng = np.random.default_rng(0)
    out = []
    for k in range(3):
        notes = [Note(int(rng.integers(48, 84)), 0.5 * i, 0.5, int(rng.integers(30, 120)))
                 for i in range(10 + 7 * k)]
        out.append(np.array(VOCAB.encode(notes, TimeSignature(4, 4), bos=False)))
    return out


def test_bits_per_note_match_pytorch(tiny_model, tiny_checkpoint):
    engine = Engine(tiny_model)
    seqs, labels = sequences(), [0, 2, -1]  # -1: unconditioned
    got = heldout_nll(engine.session, engine.manifest, seqs, labels, bos=VOCAB.bos,
                      pitch_range=(VOCAB.pitch0, VOCAB.vel0 - 1))
    model, _ = load_checkpoint(tiny_checkpoint)
    bits, notes = 0.0, 0
    with torch.no_grad():
        for seq, q in zip(seqs, labels, strict=True):
            full = torch.tensor([[VOCAB.bos, *seq.tolist()]])
            cond = torch.zeros(1, 4)
            if q >= 0:
                cond[0, q] = 1.0
            logits, _ = model(full[:, :-1], cond)
            bits += float(F.cross_entropy(logits[0], full[0, 1:], reduction="sum")) / math.log(2)
            notes += int(((seq >= VOCAB.pitch0) & (seq < VOCAB.vel0)).sum())
    assert got["notes"] == notes == sum(10 + 7 * k for k in range(3))
    assert got["tokens"] == sum(len(s) for s in seqs)
    assert got["bits_per_note"] == pytest.approx(bits / notes, rel=1e-4)
    assert got["bits_per_token"] == pytest.approx(bits / got["tokens"], rel=1e-4)
    # A random-weight model is near uniform: about log2(vocabulary) bits per token.
    assert 0.5 * math.log2(VOCAB.size) < got["bits_per_token"] < 1.5 * math.log2(VOCAB.size)
