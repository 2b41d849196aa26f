"""The text model at run time: export parity of a tiny model, decoding, and words the lexicon lacks."""

from __future__ import annotations

import numpy as np
import pytest

from affetto.analysis import lexicon
from affetto.analysis.emotion import parse_emotion
from affetto.errors import EmotionError, ModelFileError
from affetto.manifest import read_manifest
from affetto.music.notes import TimeSignature
from affetto.words import textmodel
from affetto.words.textmodel import PROBE, TextModel, music_windows, note_steps, tokenize

torch = pytest.importorskip("torch", reason="the tiny model is built with the train extra")


def test_export_writes_three_graphs_with_one_manifest_and_matches_pytorch(tiny_text):
    model, path = tiny_text
    manifests = {part: read_manifest(path.with_name(name)) for part, name in read_manifest(path)["parts"].items()}
    assert {m["part"] for m in manifests.values()} == {"music", "encoder", "decoder"}
    assert all(m["family"] == "text" and m["vocabulary"][:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
               for m in manifests.values())
    assert all(m["parity"]["max_abs_diff"] <= 1e-4 for m in manifests.values())

    runtime = TextModel(path)
    rng = np.random.default_rng(0)
    steps = np.stack([np.sort(rng.integers(0, 70, 30)), rng.integers(1, 6, 30), rng.integers(50, 80, 30)], 1)
    notes, glob = music_windows(steps, TimeSignature(4, 4), 100.0)
    assert len(notes) == 2  # 70 steps of 16: two 4-bar windows
    z_music, z_aligned = runtime.encode_music(notes, glob)
    with torch.no_grad():
        ref_music = model.music(torch.from_numpy(notes), torch.from_numpy(glob))
        ref_aligned = model.align(ref_music)
    np.testing.assert_allclose(z_music, ref_music.numpy(), atol=1e-5)
    np.testing.assert_allclose(z_aligned, ref_aligned.numpy(), atol=1e-5)

    captions = [["a", "calm", "chorale", ",", "in", "D", "major", "."], ["a", "tense", "reel", "."]]
    tokens = torch.from_numpy(textmodel.pad_batch([runtime.vocab.encode(c) for c in captions]))
    with torch.no_grad():
        np.testing.assert_allclose(runtime.encode_text(captions), model.text(tokens).numpy(), atol=1e-5)
        latent = ref_aligned[:2]
        np.testing.assert_allclose(runtime.logits(latent.numpy(), tokens.numpy()),
                                   model.decoder(latent, tokens).numpy(), atol=1e-4)


def test_step_by_step_decoding_matches_the_full_sequence_and_beam_keeps_bans(tiny_text):
    model, path = tiny_text
    runtime = TextModel(path)
    latent = (np.ones(model.cfg.latent) / np.sqrt(model.cfg.latent)).astype(np.float32)
    with torch.no_grad():
        greedy = model.greedy(torch.from_numpy(latent)[None], max_len=12)[0].tolist()
    beam1 = runtime.beam(latent, width=1, max_len=12)[0][0]
    assert beam1 == runtime.vocab.decode(greedy[1:])  # width 1 is greedy, in ONNX as in PyTorch
    banned = np.zeros(len(runtime.vocab), dtype=bool)
    banned[[runtime.vocab.index[w] for w in set(beam1) if w not in (".", ",")]] = True
    if banned.any():
        for tokens, _ in runtime.beam(latent, width=3, banned=banned, max_len=12):
            assert not any(banned[runtime.vocab.index[t]] for t in tokens)


def test_a_model_file_of_another_family_is_refused(tmp_path):
    from affetto.runtime.assets import default_model_path

    with pytest.raises(ModelFileError, match="not a text model"):
        TextModel(default_model_path())


def test_word_point_is_the_weighted_mean_of_the_nearest_known_words(tiny_text):
    _, path = tiny_text
    runtime = TextModel(path)
    known = {w: lexicon.LEXICON[w] for w in ("sad", "calm", "happy", "tense", "gloomy", "serene")}
    z = runtime.encode_text([[w if t == "{word}" else t for t in PROBE] for w in ["doleful", *known]])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    sims = z[1:] @ z[0]
    order = np.argsort(sims)[::-1][:3]
    names = list(known)
    found = runtime.word_point("doleful", known)
    if sims[order[0]] < textmodel.WORD_SIMILARITY:
        assert found is None
        return
    assert found is not None
    v, a, near = found
    w = sims[order]
    assert [n for n, _ in near] == [names[i] for i in order]
    assert v == pytest.approx(float(np.dot(w, [known[names[i]][0] for i in order]) / w.sum()))
    assert a == pytest.approx(float(np.dot(w, [known[names[i]][1] for i in order]) / w.sum()))


def test_a_word_the_text_model_never_saw_is_not_placed(tiny_text):
    _, path = tiny_text
    assert TextModel(path).word_point("zzyzx", lexicon.LEXICON) is None


def test_the_lexicon_asks_the_text_model_about_words_it_lacks(tiny_text, monkeypatch):
    _, path = tiny_text
    runtime = TextModel(path)
    monkeypatch.setitem(textmodel._SHIPPED, "model", runtime)
    monkeypatch.setattr(textmodel, "WORD_SIMILARITY", -1.0)  # the tiny model's space is random: accept any
    assert "doleful" not in lexicon.LEXICON
    v, a = lexicon.mood_point("doleful")
    expected = runtime.word_point("doleful", lexicon.LEXICON)
    assert expected is not None and (v, a) == pytest.approx(expected[:2])
    assert parse_emotion("doleful").weights == pytest.approx(lexicon.mood_point("doleful") and
                                                             parse_emotion(f"{v},{a}").weights)
    with pytest.raises(EmotionError, match="unknown mood word 'sadd'.*did you mean sad"):
        lexicon.mood_point("sadd")  # nothing understands it: one line with close words it knows


def test_without_a_text_model_an_unknown_word_is_refused_as_before(monkeypatch, tmp_path):
    monkeypatch.setattr(textmodel, "default_text_model_path", lambda: tmp_path / "absent.onnx")
    monkeypatch.setattr(textmodel, "_SHIPPED", {})
    with pytest.raises(EmotionError, match="unknown mood word 'doleful'"):
        lexicon.mood_point("doleful")


def test_note_steps_and_tokenize():
    steps = note_steps(np.array([60, 64]), np.array([0.0, 1.5]), np.array([1.0, 0.1]))
    assert steps.tolist() == [[0, 4, 60], [6, 1, 64]]
    assert tokenize("a doleful air in F# minor, 6/8.") == ["a", "doleful", "air", "in", "F#", "minor", ",", "6/8", "."]


def test_the_shipped_model_places_mood_words_the_lexicon_lacks_by_their_music():
    """The trained text space: words the captions used for sad, tense, happy and calm phrases, which the
    lexicon lacks, land on the side of the plane of the lexicon words they were used with (valence of the
    low-arousal words is the weak part, see the README)."""
    try:
        runtime = textmodel.shipped_model()
    except ModelFileError:
        pytest.skip("no text model shipped in affetto/assets")
    placed = {w: runtime.word_point(w, lexicon.LEXICON) for w in ("jubilant", "turbulent", "doleful", "lulling")}
    assert all(p is not None for p in placed.values())
    v, a = placed["jubilant"][:2]  # type: ignore[index]
    assert v > 0 and a > 0
    v, a = placed["turbulent"][:2]  # type: ignore[index]
    assert v < 0 and a > 0
    assert placed["doleful"][1] < 0 and placed["lulling"][1] < 0  # type: ignore[index]
    assert runtime.word_point("reel", lexicon.LEXICON) is None  # a genre word has no mood


def test_the_text_family_is_in_the_three_registries(tiny_text, tmp_path):
    from affetto.export.families import get_family as export_family
    from affetto.models.checkpoint import load_checkpoint, save_checkpoint
    from affetto.models.families import get_family as model_family
    from affetto.runtime.families import load_model

    model, path = tiny_text
    assert isinstance(load_model(path), TextModel)
    assert export_family("text").name == "text"
    save_checkpoint(tmp_path / "ckpt", model, {"vocabulary": ["x"]})
    loaded, meta = load_checkpoint(tmp_path / "ckpt")
    assert meta["family"] == "text" and isinstance(loaded, model_family("text").module)
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name


def test_the_bag_variant_exports_with_parity(tmp_path):
    from affetto.export.text import export_model
    from affetto.models.text.model import MusicTextModel, TextModelConfig
    from affetto.models.text.train import vocabulary

    torch.manual_seed(1)
    model = MusicTextModel(TextModelConfig(vocab_size=len(vocabulary()), d_model=16, n_head=2, n_layer=1, d_ff=32,
                                           latent=8, bag=True)).eval()
    done = export_model(model, {"vocabulary": list(vocabulary().words)}, tmp_path / "bag.onnx")
    assert max(done.parity.values()) <= 1e-4
    assert read_manifest(tmp_path / "bag.onnx")["model"]["bag"] is True


def test_a_model_with_attribute_heads_decodes_from_the_fields_it_hears(tiny_text_fields):
    from affetto.models.text.model import N_VALUES, by_field

    model, path = tiny_text_fields
    runtime = TextModel(path)
    assert read_manifest(path)["parity"]["max_abs_diff"] <= 1e-4
    rng = np.random.default_rng(1)
    steps = np.stack([np.sort(rng.integers(0, 70, 30)), rng.integers(1, 6, 30), rng.integers(50, 80, 30)], 1)
    notes, glob = music_windows(steps, TimeSignature(4, 4), 100.0)
    point = runtime.phrase_latent(steps, TimeSignature(4, 4), 100.0)
    with torch.no_grad():
        ref = model.describe_point(torch.from_numpy(notes), torch.from_numpy(glob))
        heard = by_field(model.music.encode(torch.from_numpy(notes), torch.from_numpy(glob))[1])
    assert point.shape == (model.cfg.latent + N_VALUES,)
    np.testing.assert_allclose(point, ref.numpy().mean(axis=0), atol=1e-5)
    # beside the latent, each field's distribution as the music heads hear it (a window's sums to one)
    tonic = ref[0, model.cfg.latent : model.cfg.latent + 12].numpy()
    np.testing.assert_allclose(tonic, torch.softmax(heard["tonic"][0], -1).numpy(), atol=1e-5)
    assert tonic.sum() == pytest.approx(1.0, abs=1e-5)
    # the decoder reads them: other fields beside the same latent give other words' odds
    tokens = torch.from_numpy(textmodel.pad_batch([runtime.vocab.encode(["in", "the", "key", "of"])]))
    other = ref[:1].clone()
    other[0, model.cfg.latent :] = torch.roll(other[0, model.cfg.latent :], 3)
    with torch.no_grad():
        a, b = model.decoder(ref[:1], tokens), model.decoder(other, tokens)
    np.testing.assert_allclose(runtime.logits(ref[:1].numpy(), tokens.numpy()), a.numpy(), atol=1e-4)
    assert not torch.allclose(a, b)
