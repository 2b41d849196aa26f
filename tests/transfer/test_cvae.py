"""The transfer CVAE: its loss parts, shapes, export parity and the torch-free runtime, on tiny models."""

from __future__ import annotations

import math

import numpy as np
import pytest

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.errors import ConfigError, ModelFileError
from affetto.music.notes import Note, TimeSignature
from affetto.transfer.model import (
    PITCHES,
    CvaeTransfer,
    DecodeSettings,
    note_features,
    phrase_roll,
    roll_steps,
    steps_of,
    tonic_shift,
)

torch = pytest.importorskip("torch", reason="the transfer model side needs the train extra")
pytestmark = pytest.mark.torch


def tiny_model(seed: int = 0):
    from affetto.models.transfer.model import TransferConfig, TransferModel

    torch.manual_seed(seed)
    model = TransferModel(TransferConfig(d_model=32, n_head=2, enc_layers=1, dec_layers=1, z_dim=4, perf_d=16,
                                         perf_layers=1, dropout=0.0)).eval()
    with torch.no_grad():  # sparse rolls, as a trained model writes, whose cells still depend on z
        model.decoder.head.bias.fill_(-1.3)
        model.decoder.z.weight.normal_(0, 2.0)
    return model


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    from affetto.export.transfer import export_model

    path = tmp_path_factory.mktemp("transfer") / "tiny-transfer.onnx"
    result = export_model(tiny_model(), {"train": {"out": "tiny"}, "step": 0}, path)
    return path, result


def phrase(bars: int = 4, meter: TimeSignature = TimeSignature(4, 4)) -> list[Note]:
    """A melody over held chords in both hands, C major, one bar in ``meter`` after another."""
    beats = meter.beats_per_bar
    out = []
    for bar in range(bars):
        t = bar * beats
        out += [Note(p, t, beats, 60, channel=1) for p in (48, 55, 64)]
        out += [Note(72 + 2 * ((bar + i) % 4), t + i * 0.5, 0.5, 80) for i in range(int(beats * 2))]
    return out


# ---- the representation ---------------------------------------------------------------------
def test_roll_round_trip_keeps_chords_lengths_across_bar_lines_and_the_shift():
    notes = np.array([[0, 4, 60, 80], [0, 4, 64, 80], [0, 24, 48, 70], [6, 2, 67, 90], [12, 8, 72, 90]])
    roll = phrase_roll(notes, 2, 16, shift=tonic_shift(7))  # G: moved down 5 semitones
    assert roll.shape == (2, 16, 2, PITCHES)
    got = roll_steps(roll, shift=tonic_shift(7))
    want = sorted(map(tuple, notes[:, :3].tolist()))
    assert sorted(map(tuple, got.tolist())) == want
    assert tonic_shift(7) == -5 and tonic_shift(2) == 2


def test_roll_cuts_frames_at_the_phrase_end_and_drops_later_onsets():
    roll = phrase_roll(np.array([[14, 8, 60, 80], [40, 1, 62, 80]]), 1, 16)
    got = roll_steps(roll)
    assert got.tolist() == [[14, 2, 60]]


def test_note_features_by_hand():
    notes = np.array([[0, 4, 60, 80], [0, 4, 64, 80], [0, 4, 67, 80], [18, 1, 72, 80]])
    f = note_features(notes, 16, meter=2)
    assert f[:, 0].tolist() == [39, 43, 46, 51]  # pitch - 21
    assert f[:, 1].tolist() == [0, 0, 0, 2]  # step in bar
    assert f[:, 2].tolist() == [0, 0, 0, 1]  # bar
    assert f[:, 3].tolist() == [2, 2, 2, 0]  # log2 of the duration
    assert f[:, 4].tolist() == [2, 2, 2, 0]  # notes struck with it, minus one
    assert f[:, 5].tolist() == [2, 1, 0, 0]  # rank from the top
    assert set(f[:, 6].tolist()) == {2}


# ---- losses and shapes --------------------------------------------------------------------
def test_kl_matches_a_hand_computation():
    from affetto.models.transfer.model import kl_free_bits, kl_per_dim

    mean = torch.tensor([[[0.5, -1.0]], [[0.0, 2.0]]])  # (B=2, bars=1, Z=2)
    logvar = torch.tensor([[[0.0, math.log(0.25)]], [[math.log(4.0), 0.0]]])
    by_hand = [[0.5 * (0.25 + 1 - 1 - 0), 0.5 * (1 + 0.25 - 1 - math.log(0.25))],
               [0.5 * (0 + 4 - 1 - math.log(4.0)), 0.5 * (4 + 1 - 1 - 0)]]
    assert kl_per_dim(mean, logvar)[:, 0].flatten().tolist() == pytest.approx([*by_hand[0], *by_hand[1]], abs=1e-6)
    _, plain = kl_free_bits(mean, logvar, 0.0)
    assert plain.item() == pytest.approx(sum(map(sum, by_hand)) / 2, abs=1e-6)


def test_free_bits_floor_each_dimension_and_stop_its_gradient():
    from affetto.models.transfer.model import kl_free_bits

    mean = torch.tensor([[[0.1, 3.0]]], requires_grad=True)  # dim 0: KL 0.005 nats, dim 1: 4.5 nats
    logvar = torch.zeros(1, 1, 2)
    floored, plain = kl_free_bits(mean, logvar, 1.0)
    assert floored.item() == pytest.approx(1.0 + 4.5)
    assert plain.item() == pytest.approx(0.005 + 4.5)
    floored.backward()
    assert mean.grad[0, 0, 0].item() == 0.0  # below the floor: nothing to gain
    assert mean.grad[0, 0, 1].item() == pytest.approx(3.0)
    # two phrases of three latents: the floor is per dimension, averaged over phrases and latents
    mean = torch.zeros(2, 3, 2)
    mean[:, :, 1] = 2.0  # dim 1: 2 nats at every latent
    mean[0, 0, 0] = 1.2  # dim 0: 0.72 nats at one latent of six, 0.12 on average
    floored, plain = kl_free_bits(mean, torch.zeros(2, 3, 2), 0.5)
    assert floored.item() == pytest.approx(3 * (0.5 + 2.0))
    assert plain.item() == pytest.approx((0.72 + 6 * 2.0) / 2)


@pytest.mark.parametrize(("bars", "steps"), [(1, 16), (4, 12), (3, 32)])
def test_encoder_and_decoder_shapes(bars, steps):
    model = tiny_model()
    b, z = 3, model.cfg.z_dim
    roll = torch.zeros(b, bars, steps, 2, PITCHES)
    cond = torch.rand(b, 6)
    bins = torch.zeros(b, bars, dtype=torch.long)
    meter = torch.zeros(b, dtype=torch.long)
    mean, logvar = model.encoder(roll, cond, bins, bins, meter)
    assert mean.shape == logvar.shape == (b, bars, steps // 2, z)  # a latent per eighth note
    logits = model.decoder(mean, steps, cond, bins, bins, meter)
    assert logits.shape == (b, bars, steps, 2, PITCHES)
    logits2, mean2, _ = model(roll, cond, cond, bins, bins, bins, bins, meter, torch.zeros(b, bars, steps // 2, z))
    assert torch.allclose(logits2, logits) and torch.allclose(mean2, mean)


def test_active_units_counts_dimensions_that_vary():
    from affetto.models.transfer.model import active_units

    means = torch.zeros(100, 2, 4)
    means[:, :, 1] = torch.linspace(-1, 1, 100)[:, None]
    means[:, :, 3] = 0.001 * torch.linspace(-1, 1, 100)[:, None]
    assert active_units(means) == 1


# ---- export and the runtime -------------------------------------------------------------------
def test_export_parity_on_a_real_session(tiny_onnx):
    from affetto.manifest import read_manifest
    from affetto.runtime.families import load_model

    path, result = tiny_onnx
    assert result.max_abs_diff <= 1e-4
    manifest = read_manifest(path)
    assert manifest["family"] == "transfer" and manifest["model"]["z_dim"] == 4
    assert isinstance(load_model(path), CvaeTransfer)


def test_transfer_keeps_bar_lines_meter_and_is_deterministic_per_seed(tiny_onnx):
    from affetto.transfer.api import Transfer

    model = CvaeTransfer(tiny_onnx[0])
    assert isinstance(model, Transfer)
    for meter, bars in ((TimeSignature(4, 4), 4), (TimeSignature(3, 4), 3), (TimeSignature(6, 8), 6)):
        source = phrase(bars, meter)
        end = bars * meter.beats_per_bar
        out = model.transfer(source, meter, Capsule.of(Quadrant.Q3), rng=np.random.default_rng(7))
        assert out, "the tiny model writes notes"
        assert all(n.onset < end and n.end <= end + 1e-9 for n in out)
        assert {n.channel for n in out} <= {0, 1}
        steps = steps_of(out)
        assert np.allclose(steps[:, 0] / 4, [n.onset for n in out])  # on the grid
        again = model.transfer(source, meter, Capsule.of(Quadrant.Q3), rng=np.random.default_rng(7))
        assert again == out
        assert model.transfer(source, meter, Capsule.of(Quadrant.Q3)) == model.transfer(
            source, meter, Capsule.of(Quadrant.Q3))
    source = phrase(4)
    free = CvaeTransfer(tiny_onnx[0], settings=DecodeSettings(anchor=0))  # anchored, a strong bias may hide z
    draws = {tuple(free.transfer(source, TimeSignature(4, 4), Capsule.of(Quadrant.Q1),
                                 rng=np.random.default_rng(seed))) for seed in range(4)}
    assert len(draws) > 1  # the seed moves z


def test_transfer_keeps_every_note_and_a_variation_writes_the_decoders_own(tiny_onnx):
    model = CvaeTransfer(tiny_onnx[0])
    assert model.settings.anchor == 1  # export's default
    source = phrase(2)
    by_time = lambda notes: sorted(notes, key=lambda n: (n.onset, -n.pitch))  # noqa: E731
    out = model.transfer(source, TimeSignature(4, 4), Capsule.of(Quadrant.Q3), rng=np.random.default_rng(1))
    assert [(n.onset, n.duration, n.channel) for n in by_time(out)] == [
        (n.onset, n.duration, n.channel) for n in by_time(source)]
    assert max(abs(a.pitch - b.pitch) for a, b in zip(by_time(out), by_time(source))) <= 1
    varied = [model.vary(source, TimeSignature(4, 4), Capsule.of(Quadrant.Q3), rng=np.random.default_rng(seed))
              for seed in range(3)]
    assert len({tuple(v) for v in varied}) > 1  # a new z each pass
    onsets = sorted({n.onset for n in source})
    assert any(sorted({n.onset for n in v}) != onsets for v in varied)  # the decoder's own rhythm, not the loop's


def test_strength_zero_returns_the_source_and_long_phrases_go_in_chunks(tiny_onnx):
    model = CvaeTransfer(tiny_onnx[0])
    source = phrase(6)
    assert model.transfer(source, TimeSignature(4, 4), Capsule.of(Quadrant.Q2), strength=0.0) == sorted(
        source, key=lambda n: (n.onset, n.pitch, n.channel))
    out = model.transfer(source, TimeSignature(4, 4), Capsule.of(Quadrant.Q2))
    assert max(n.onset for n in out) >= 16  # bars 5 and 6 were played too
    assert all(n.end <= 24 + 1e-9 for n in out)
    assert model.transfer([], TimeSignature(4, 4), Capsule.of(Quadrant.Q2)) == []


def test_bad_input_errors(tiny_onnx, tmp_path):
    model = CvaeTransfer(tiny_onnx[0])
    with pytest.raises(ConfigError, match="meter 5/8"):
        model.transfer(phrase(1), TimeSignature(5, 8), Capsule.of(Quadrant.Q1))
    with pytest.raises(ConfigError, match="strength"):
        model.transfer(phrase(1), TimeSignature(4, 4), Capsule.of(Quadrant.Q1), strength=1.5)
    with pytest.raises(ConfigError, match="capsule"):
        model.transfer(phrase(1), TimeSignature(4, 4), "happy")  # type: ignore[arg-type]
    with pytest.raises(ModelFileError, match="no such model file"):
        CvaeTransfer(tmp_path / "missing.onnx")
    from affetto.runtime.assets import default_ensemble_path

    if default_ensemble_path().exists():
        with pytest.raises(ModelFileError, match="not a transfer model"):
            CvaeTransfer(default_ensemble_path())


def test_the_shipped_model_re_plays_a_seed_in_its_bars():
    from affetto.runtime.assets import asset_path

    if not asset_path("affetto-transfer.onnx").exists():
        pytest.skip("no transfer model shipped in this checkout")
    from affetto.models.transfer.evaluate import onset_f1, seed_sources

    model = CvaeTransfer()  # the shipped model
    source = next(s for s in seed_sources() if s.name == "lament:1")
    out = model.transfer(list(source.notes), source.meter, Capsule.of(Quadrant.Q1), rng=np.random.default_rng(0))
    end = source.bars * source.meter.beats_per_bar
    assert out and all(n.onset < end and n.end <= end + 1e-9 for n in out)
    assert onset_f1(source.notes, out) > 0.5  # a trained model keeps most of a plain line's rhythm
