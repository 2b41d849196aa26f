"""Small things the tests build for real: tiny checkpoints and models, MIDI folders with plain emotions.

Imported by the conftests of several test folders (tests/conftest.py puts this folder on sys.path).
"""

from pathlib import Path

import numpy as np

from affetto.music.midifile import write_midi
from affetto.music.notes import Note, TimeSignature


def make_checkpoint(folder: Path, *, max_len: int = 256, data: str = "nowhere", seed: int = 0,
                    segment_bars: int = 16, cond_layers: bool = False, vocab_config=None, n_kv_head: int = 0,
                    n_head: int = 2) -> Path:
    """A 2-layer, width-32 checkpoint with random weights, saved as training saves them (``n_kv_head`` 1:
    one key/value head for its ``n_head`` query heads)."""
    import torch

    from affetto.analysis.judge import JudgeConfig
    from affetto.models.checkpoint import save_checkpoint
    from affetto.models.data import DataConfig
    from affetto.models.train import TrainConfig
    from affetto.models.transformer import EmotionTransformer, ModelConfig
    from affetto.tokens.vocab import VocabConfig, Vocabulary

    torch.manual_seed(seed)
    vocab = Vocabulary(vocab_config or VocabConfig())
    cfg = ModelConfig(vocab_size=vocab.size, n_layer=2, n_head=n_head, d_model=32, d_ff=64, max_len=max_len,
                      dropout=0.0, cond_layers=cond_layers, n_kv_head=n_kv_head)
    model = EmotionTransformer(cfg)
    with torch.no_grad():  # make the condition matter, as training would
        model.cond.weight.normal_(0, 0.5)
        if cond_layers:
            model.cond_layers.normal_(0, 0.5)
    train = TrainConfig(out=str(folder), data=data, model=cfg,
                        data_config=DataConfig(max_tokens=max_len - 1, segment_bars=segment_bars,
                                               hop_bars=segment_bars // 2), vocab=vocab.config).to_dict()
    meta = {"vocab": vocab.to_dict(), "judge": JudgeConfig().to_dict(), "train": train, "step": 0,
            "val_loss": 5.0, "data_summary": {"source": "random weights for tests"}}
    path = folder / "last"
    save_checkpoint(path, model, meta)
    return path


def make_distilled_checkpoint(folder: Path, *, max_scale: float = 5.0, max_len: int = 256) -> Path:
    """A guidance-distilled checkpoint as ``affetto distill`` saves one: the tiny teacher's network with the
    guidance channel, here given random embeddings (the scale then changes what the model writes)."""
    import torch

    from affetto.models.checkpoint import load_checkpoint, save_checkpoint
    from affetto.models.distill import student_of

    teacher, meta = load_checkpoint(make_checkpoint(folder / "teacher", cond_layers=True, max_len=max_len))
    student = student_of(teacher)
    with torch.no_grad():
        student.cond.weight[:, -1].normal_(0, 2.0)
        student.cond_layers[:, -1].normal_(0, 2.0)
    channel = {"index": teacher.cfg.n_cond, "meaning": "guidance scale s as (s - 1) / (max_scale - 1)",
               "max_scale": max_scale}
    meta = {**meta, "distill": {"channel": channel, "teacher": str(folder / "teacher")}}
    meta.pop("model", None)
    path = folder / "student"
    save_checkpoint(path, student, meta)
    return path


def export(checkpoint: Path, out: Path) -> Path:
    """The checkpoint through the real exporter (parity checked on grammar walks)."""
    from affetto.export.export import export_checkpoint, grammar_walks
    from affetto.models.checkpoint import read_meta
    from affetto.tokens.vocab import Vocabulary

    vocab = Vocabulary.from_dict(read_meta(checkpoint)["vocab"])
    export_checkpoint(checkpoint, out, sequences=grammar_walks(vocab, 4, 64))
    return out


def make_midi_folder(folder: Path, count: int, seed: int = 0, bars: int = 8) -> list[Path]:
    """``count`` MIDI files whose emotion is plain: major/minor, busy and loud or sparse and soft.

    File i is in quadrant i % 4 as the feature judge hears it (a melody on one
    scale over a tonic bass); meters alternate between 4/4 and 3/4.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        quadrant = i % 4
        major = quadrant in (0, 3)
        busy = quadrant in (0, 1)
        meter = TimeSignature(4, 4) if i % 2 else TimeSignature(3, 4)
        scale = [0, 2, 4, 5, 7, 9, 11] if major else [0, 2, 3, 5, 7, 8, 10]
        tonic = 57 + int(rng.integers(0, 8))
        step, velocity = (0.25, 110) if busy else (1.0, 45)
        notes, t = [], 0.0
        while t < bars * meter.beats_per_bar:
            degree = int(rng.choice([0, 0, 2, 4, 1, 3, 5, 6]))  # tonic triad weighted, so the key is clear
            notes.append(Note(tonic + scale[degree], t, step, velocity))
            if t % meter.beats_per_bar == 0:
                notes.append(Note(tonic - 12, t, meter.beats_per_bar, velocity))
            t += step
        path = folder / f"piece{i:03d}.mid"
        write_midi(path, notes, meter=meter, bpm=100)
        paths.append(path)
    return paths


def assert_cache_read_as_drawn(cache, start: int, runs: list[list[int]]) -> None:
    """The cache and logits a :class:`~affetto.runtime.session.CachedSession` holds now are those of its context
    rewound to ``start`` and read again in ``runs`` (the tokens of each run of the model, as they were drawn).

    Through an int8 cache a run's tokens attend each other in fp32 and earlier runs' tokens in int8, so a context
    read at once differs from one read as it was drawn: reading it again run by run must give the same int8
    cache exactly and the same logits."""
    kept = [b[:, :, : cache.cached].copy() for b in cache.host_buffers()]
    logits = cache.logits.copy()
    cache.rewind(start)
    for run in runs:
        cache.feed(run)
    assert cache.cached == cache.length == start + sum(map(len, runs))
    for a, b in zip(kept, cache.host_buffers()):
        np.testing.assert_array_equal(a, b[:, :, : cache.cached])
    np.testing.assert_allclose(logits, cache.logits, atol=1e-4)
