"""The caption builder: sources from corpus paths and ABC headers, captions that say what the facts say."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from affetto.models.text.captions import (
    Facts,
    Source,
    caption,
    check_tokens,
    grammar_words,
    source_of,
)
from affetto.models.text.data import transposed
from affetto.music.notes import TimeSignature
from affetto.words.describe import SLOT_WORDS, WORD_SLOT, claims, contradictions, measure_arrays
from affetto.words.textmodel import Vocabulary, tokenize


def facts_of(tonic: int, minor: bool, meter=TimeSignature(3, 4), agreed=True, source=None) -> Facts:
    steps = (0, 2, 3, 5, 7, 8, 10) if minor else (0, 2, 4, 5, 7, 9, 11)
    pitch = np.array([60 + tonic + steps[i % 7] for i in (0, 1, 2, 3, 4, 2, 0, 4, 2, 0)])
    onset = np.arange(len(pitch), dtype=float)
    fields = measure_arrays(pitch, onset, np.ones(len(pitch)), np.full(len(pitch), 80), meter, 100.0)
    return Facts(fields, agreed, source or Source("bach", "bach", "chorale", "germany", ""))


def test_every_caption_names_the_key_and_the_mood_and_contradicts_nothing():
    rng = np.random.default_rng(0)
    for tonic in range(12):
        for minor in (False, True):
            facts = facts_of(tonic, minor)
            for _ in range(20):
                tokens = caption(facts, rng)
                said = claims(tokens)
                assert not contradictions(said, facts.fields), " ".join(tokens)
                assert said["tonic"] == {facts.fields.tonic} and said["mode"] == {facts.fields.mode}
                assert said["mood"] == {facts.fields.quadrant}
                assert tokens[-1] == "."


def test_captions_vary_in_phrasing():
    rng = np.random.default_rng(1)
    facts = facts_of(2, False)
    texts = {" ".join(caption(facts, rng)) for _ in range(60)}
    assert len(texts) > 50
    openings = {t.split(" in ")[0].split(",")[0] for t in texts}
    assert len(openings) > 5


def test_the_key_is_hedged_when_the_estimators_disagree():
    rng = np.random.default_rng(2)
    hedged = [caption(facts_of(0, False, agreed=False), rng) for _ in range(30)]
    assert all({"probably", "perhaps", "leaning"} & set(t) for t in hedged)
    plain = [caption(facts_of(0, False, agreed=True), rng) for _ in range(30)]
    assert not any({"probably", "perhaps", "leaning"} & set(t) for t in plain)


def test_articles_agree_with_the_next_word():
    rng = np.random.default_rng(3)
    for _ in range(200):
        tokens = caption(facts_of(9, True, source=Source("oneills1850", "", "air", "ireland", "o'neill's collection")),
                         rng)
        for word, nxt in itertools.pairwise(tokens):
            if word == "a":
                assert nxt[0] not in "aeiou" and nxt not in ("A", "E", "F", "Ab", "Eb", "F#")
            if word == "an":
                assert nxt[0] in "aeiou" or nxt in ("A", "E", "F", "Ab", "Eb", "F#")


def test_every_caption_word_is_in_the_grammar_vocabulary_and_tokenizes_as_itself():
    words = grammar_words()
    check_tokens(words)
    vocab = Vocabulary.of(words)
    rng = np.random.default_rng(4)
    sources = [Source("palestrina", "palestrina", "credo", "italy", ""),
               Source("essenFolksong", "", "song", "china", "the essen collection"),
               Source("ryansMammoth", "", "hornpipe", "america", "ryan's mammoth collection")]
    for source in sources:
        for tonic in (1, 6, 10):
            tokens = caption(facts_of(tonic, tonic % 2 == 0, meter=TimeSignature(6, 8), source=source), rng)
            assert all(t in vocab for t in tokens), [t for t in tokens if t not in vocab]
            assert tokenize(" ".join(tokens)) == tokens


def test_slot_words_name_one_value_of_one_field():
    seen: dict[str, tuple[str, str]] = {}
    for slot, values in SLOT_WORDS.items():
        for value, words in values.items():
            for word in words:
                assert word not in seen, f"{word} names {seen.get(word)} and {(slot, value)}"
                seen[word] = (slot, value)
    assert seen == WORD_SLOT


def test_transposing_moves_the_key_name_and_the_register_only():
    facts = facts_of(0, True)  # C minor around middle C
    up = transposed(facts, 4)
    assert up.fields.key == "E minor"
    assert up.fields.mean_pitch == pytest.approx(facts.fields.mean_pitch + 4)
    assert (up.fields.meter, up.fields.quadrant, up.fields.contour) == (
        facts.fields.meter, facts.fields.quadrant, facts.fields.contour)
    assert transposed(facts, -1).fields.key == "B minor"


@pytest.mark.parametrize(("name", "group", "expected"), [
    ("bach/bwv10.7.mxl", "bach", Source("bach", "bach", "chorale", "germany", "")),
    ("palestrina/Credo_03.krn", "palestrina", Source("palestrina", "palestrina", "credo", "italy", "")),
    ("ryansMammoth/AcrobatsHornpipe.abc#1", "ryansMammoth",
     Source("ryansMammoth", "", "hornpipe", "america", "ryan's mammoth collection")),
    ("miscFolk/americanfifeopus.abc#3", "miscFolk", Source("miscFolk", "", "tune", "america", "a folk tune book")),
])
def test_sources_from_corpus_paths(name, group, expected):
    assert source_of(name, group) == expected


def test_essen_tunes_take_their_region_from_the_abc_origin_header():
    pytest.importorskip("music21")
    china = source_of("essenFolksong/han1.abc#1", "essenFolksong")  # O: China, Shaanxi, Zizhou
    assert (china.region, china.genre, china.collection) == ("china", "song", "the essen collection")
    germany = source_of("essenFolksong/altdeu10.abc#1", "essenFolksong")  # O: Europa, Mitteleuropa, Deutschland
    assert germany.region == "germany"


def test_attribute_labels_index_each_fields_value_and_follow_a_transposition():
    from affetto.models.text.data import attribute_labels, transposed
    from affetto.models.text.model import ATTRIBUTES

    f = facts_of(2, minor=True)  # D minor, 3/4
    odd = facts_of(0, minor=False, meter=TimeSignature(7, 8))  # a meter the vocabulary lacks
    labels = attribute_labels([f, transposed(f, 3), odd])
    assert [ATTRIBUTES["tonic"][i] for i in labels["tonic"]] == ["D", "F", "C"]
    assert [ATTRIBUTES["mode"][i] for i in labels["mode"]] == ["minor", "minor", "major"]
    assert ATTRIBUTES["meter"][labels["meter"][0]] == "3/4" and labels["meter"][2] == -1
    assert ATTRIBUTES["mood"][labels["mood"][0]] == f.fields.quadrant
    for name, values in ATTRIBUTES.items():
        assert labels[name].dtype == np.int64 and labels[name].shape == (3,)
        assert all(-1 <= i < len(values) for i in labels[name]), name
