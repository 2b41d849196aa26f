"""Tiny models built here, exported through the real exporter, run by real ONNX Runtime."""

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="export needs the train extra")


def make_checkpoint(folder: Path, *, max_len: int = 256, cond_dropout: float = 0.15, seed: int = 0) -> Path:
    from affetto.judge import JudgeConfig
    from affetto.models.checkpoint import save_checkpoint
    from affetto.models.train import TrainConfig
    from affetto.models.transformer import EmotionTransformer, ModelConfig
    from affetto.vocab import Vocabulary

    torch.manual_seed(seed)
    vocab = Vocabulary()
    cfg = ModelConfig(vocab_size=vocab.size, n_layer=2, n_head=2, d_model=32, d_ff=64, max_len=max_len, dropout=0.0)
    model = EmotionTransformer(cfg)
    with torch.no_grad():  # make the condition matter, as training would
        model.cond.weight.normal_(0, 0.5)
    from affetto.models.data import DataConfig

    train = TrainConfig(out=str(folder), data="nowhere", cond_dropout=cond_dropout, model=cfg,
                        data_config=DataConfig(max_tokens=max_len - 1)).to_dict()
    meta = {"vocab": vocab.to_dict(), "judge": JudgeConfig().to_dict(), "train": train, "step": 0,
            "val_loss": 5.0, "data_summary": {"source": "random weights for tests"}}
    path = folder / "last"
    save_checkpoint(path, model, meta)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tiny_checkpoint) -> Path:
    from affetto.export.export import export_checkpoint, grammar_walks
    from affetto.vocab import Vocabulary

    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_checkpoint(tiny_checkpoint, out, sequences=grammar_walks(Vocabulary(), 4, 64))
    return out
