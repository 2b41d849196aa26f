"""The performance decoder (velocity per note from notes and emotion), and reading MAESTRO's layout."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_things import make_midi_folder

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.errors import DatasetError
from affetto.transfer.model import note_features

torch = pytest.importorskip("torch", reason="the transfer model side needs the train extra")
pytestmark = pytest.mark.torch


def tiny_performer(seed: int = 0):
    from affetto.models.transfer.model import Performer, TransferConfig

    torch.manual_seed(seed)
    return Performer(TransferConfig(d_model=16, n_head=2, perf_d=16, perf_layers=1, dropout=0.0))


def test_padding_does_not_change_the_real_notes():
    model = tiny_performer().eval()
    notes = np.array([[0, 4, 60, 80], [0, 4, 64, 80], [4, 2, 67, 80], [8, 8, 72, 80]])
    feats = torch.from_numpy(note_features(notes, 16, 2))[None]
    cap = torch.tensor([Capsule.of(Quadrant.Q2).weights], dtype=torch.float32)
    with torch.no_grad():
        alone = model(feats, torch.ones(1, 4), cap)
        padded = model(torch.cat([feats, torch.zeros(1, 3, 7, dtype=torch.long)], 1),
                       torch.tensor([[1.0] * 4 + [0.0] * 3]), cap)
    assert alone.shape == (1, 4)
    assert torch.allclose(alone, padded[:, :4], atol=1e-6)
    assert ((alone > 0) & (alone < 1)).all()


def test_the_performer_learns_loud_happy_and_soft_sad_from_labelled_clips(tmp_path):
    """EMOPIA-style clips of the same notes, the happy ones played loud and the sad ones soft: after a short
    training the same notes come out louder asked happy than asked sad (only the label tells them apart)."""
    from affetto.models.transfer.data import PhraseConfig, build_phrases, sample_perf_batch
    from affetto.models.userdata import load_emopia
    from affetto.music.midifile import write_midi
    from affetto.music.notes import Note, TimeSignature

    (tmp_path / "e").mkdir()
    for i in range(8):
        happy = i % 2 == 0
        notes = [Note(60 + (3 * k) % 12, 0.5 * k, 0.5, 110 if happy else 40) for k in range(32)]
        write_midi(tmp_path / "e" / f"Q{1 if happy else 3}_s{i}_0.mid", notes, meter=TimeSignature(4, 4))
    data = load_emopia(tmp_path / "e")
    phrases = build_phrases(data.pieces, PhraseConfig(), labels=data.labels)["train"]
    model = tiny_performer()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    rng = np.random.default_rng(0)
    for _ in range(80):
        b = {k: torch.from_numpy(v) for k, v in sample_perf_batch(phrases, 8, rng).items()}
        pred = model(b["notes"], b["note_mask"], b["perf_cond"])
        loss = ((pred - b["velocity"]) ** 2 * b["note_mask"]).sum() / b["note_mask"].sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    notes = np.array([[s, 2, 60 + (3 * s) % 12, 80] for s in range(0, 16, 2)])
    feats = torch.from_numpy(note_features(notes, 16, 2))[None].repeat(2, 1, 1)
    caps = torch.tensor([Capsule.of(Quadrant.Q1).weights, Capsule.of(Quadrant.Q3).weights], dtype=torch.float32)
    with torch.no_grad():
        happy, sad = (127 * model(feats, torch.ones(2, len(notes)), caps)).mean(1).tolist()
    assert happy - sad > 30, (happy, sad)


def test_maestro_layout_reads_the_csv_keeps_songs_together_and_skips_missing_files(tmp_path):
    from affetto.models.userdata import detect_layout, load_maestro

    paths = make_midi_folder(tmp_path / "made", 3, bars=2)
    folder = tmp_path / "m"
    (folder / "2018").mkdir(parents=True)
    rows = ["canonical_composer,canonical_title,split,year,midi_filename,audio_filename,duration"]
    for i, path in enumerate(paths):
        path.rename(folder / "2018" / f"p{i}.midi")
        rows.append(f"Chopin,Ballade {i // 2},train,2018,2018/p{i}.midi,2018/p{i}.wav,5")
    rows.append("Chopin,Gone,test,2018,2018/gone.midi,2018/gone.wav,5")
    (folder / "maestro-v3.0.0.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert detect_layout(folder) == "maestro"
    data = load_maestro(folder)
    assert [p.name for p in data.pieces] == ["2018/p0.midi", "2018/p1.midi", "2018/p2.midi"]
    assert data.pieces[0].song == data.pieces[1].song != data.pieces[2].song
    assert data.skipped == [("2018/gone.midi", "listed in the CSV but not in the folder")]
    assert len(load_maestro(folder, limit=2).pieces) == 2


def test_layouts_are_told_apart_and_a_bad_csv_is_refused(tmp_path):
    from affetto.models.userdata import detect_layout, load_maestro

    make_midi_folder(tmp_path / "plain", 2, bars=1)
    assert detect_layout(tmp_path / "plain") == "folder"
    (tmp_path / "em" / "midis").mkdir(parents=True)
    assert detect_layout(tmp_path / "em") == "emopia"
    (tmp_path / "plain" / "maestro-v2.0.0.csv").write_text("x,y\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="midi_filename"):
        load_maestro(tmp_path / "plain")
