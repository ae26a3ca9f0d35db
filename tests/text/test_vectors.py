"""Tests of pipeline.text.vectors: embedding matrix fallbacks and coverage, ja_ginza lookup, word forms, vectorize."""

import os
import re
import zipfile
from collections import Counter
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.sections import ModelConfig, VectorizeConfig
from pipeline.text import vectors
from pipeline.text.embeddings import (
    character_vector,
    embedding_matrix,
    ginza_lookup,
    vector_table_words,
)
from pipeline.text.vectors import (
    DEFAULT_EMBEDDING_DIM,
    EncodedSplits,
    NpyAppender,
    WordForms,
    vectorize,
)
from pipeline.text.vocab import PAD, UNK, Vocabulary

VECTORS = {
    "京都": np.array([1.0, 0.0, 0.0, 2.0], dtype=np.float32),
    "スマホ": np.array([0.0, 1.0, 0.0, 0.0], dtype=np.float32),
    "スマートフォン": np.array([9.0, 9.0, 9.0, 9.0], dtype=np.float32),
    "行く": np.array([0.0, 0.0, 1.0, -1.0], dtype=np.float32),
    "食べる": np.array([-1.0, 1.0, 0.0, 0.0], dtype=np.float32),
}
FORMS = {  # word -> (norm, lemma), as fallback_forms finds them
    "京都": ("京都", "京都"),
    "スマホ": ("スマートフォン", "スマホ"),  # surface found first: its own vector, not the norm's
    "行っ": ("行く", "行く"),  # found via norm
    "食べ": ("喰べる", "食べる"),  # norm missing, found via lemma
}
COUNTS = {"京都": 5, "謎": 4, "行っ": 3, "スマホ": 2, "食べ": 1}


def fake_lookup(word):
    return VECTORS.get(word)


def small_vocab() -> Vocabulary:
    return Vocabulary([PAD, UNK, "京都", "謎", "行っ", "スマホ", "食べ"], COUNTS)


def test_embedding_matrix_surface_norm_lemma_fallback_and_coverage():
    matrix, coverage = embedding_matrix(small_vocab(), FORMS, fake_lookup, 4, np.random.default_rng(0), 0.5)
    assert matrix.shape == (7, 4) and matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix[0], np.zeros(4))  # padding
    np.testing.assert_array_equal(matrix[2], VECTORS["京都"])  # surface
    np.testing.assert_array_equal(matrix[4], VECTORS["行く"])  # norm
    np.testing.assert_array_equal(matrix[5], VECTORS["スマホ"])  # surface before norm
    np.testing.assert_array_equal(matrix[6], VECTORS["食べる"])  # lemma
    assert coverage.by_source == {"surface": 2, "norm": 1, "lemma": 1}
    assert coverage.entries == pytest.approx(4 / 5)  # 謎 has no vector; pad and unk not counted
    assert coverage.tokens == pytest.approx((5 + 3 + 2 + 1) / 15)
    assert coverage.to_dict() == {"entries": coverage.entries, "tokens": coverage.tokens,
                                  "by_source": coverage.by_source, "from_characters": 0,
                                  "characters_tokens": 0.0, "random": 2}  # <unk> and 謎


def test_unknown_rows_are_seeded_random_with_a_scaled_spread():
    matrix, _ = embedding_matrix(small_vocab(), FORMS, fake_lookup, 4, np.random.default_rng(0), 0.5)
    # Found rows: 京都, 行く, スマホ, 食べる; 16 values with sum 4 and sum of squares 10:
    # std = sqrt(10/16 - (4/16)**2) = 3/4.
    found_rows = np.stack([VECTORS["京都"], VECTORS["行く"], VECTORS["スマホ"], VECTORS["食べる"]])
    spread = 0.75
    assert found_rows.std() == pytest.approx(spread)
    expected = np.random.default_rng(0).normal(0.0, 0.5 * spread, size=(2, 4)).astype(np.float32)
    np.testing.assert_allclose(matrix[[1, 3]], expected, rtol=1e-6)  # unk and 謎, in id order
    again, _ = embedding_matrix(small_vocab(), FORMS, fake_lookup, 4, np.random.default_rng(0), 0.5)
    np.testing.assert_array_equal(matrix, again)
    other, _ = embedding_matrix(small_vocab(), FORMS, fake_lookup, 4, np.random.default_rng(1), 0.5)
    assert not np.array_equal(matrix[[1, 3]], other[[1, 3]])
    np.testing.assert_array_equal(matrix[[0, 2, 4, 5, 6]], other[[0, 2, 4, 5, 6]])


def test_unknown_spread_follows_unknown_scale_on_many_rows():
    generator = np.random.default_rng(5)
    known = {f"k{i}": generator.normal(0.0, 2.0, size=16).astype(np.float32) for i in range(50)}
    words = list(known) + [f"u{i}" for i in range(2000)]
    vocab = Vocabulary([PAD, UNK, *words], {word: 1 for word in words})
    matrix, coverage = embedding_matrix(vocab, {}, known.get, 16, np.random.default_rng(0), 0.25)
    spread = np.stack(list(known.values())).std()
    assert matrix[2 + 50:].std() == pytest.approx(0.25 * spread, rel=0.02)
    assert coverage.entries == pytest.approx(50 / 2050)
    assert coverage.tokens == pytest.approx(50 / 2050)


def test_no_vectors_found_uses_a_default_spread():
    vocab = Vocabulary([PAD, UNK, "a", "b"], {"a": 1, "b": 1})
    matrix, coverage = embedding_matrix(vocab, {}, lambda word: None, 8, np.random.default_rng(0), 1.0)
    np.testing.assert_array_equal(matrix[0], np.zeros(8))
    expected = np.random.default_rng(0).normal(0.0, 0.1, size=(3, 8)).astype(np.float32)
    np.testing.assert_allclose(matrix[1:], expected, rtol=1e-6)
    assert (coverage.entries, coverage.tokens, coverage.by_source) == (0.0, 0.0, {})


# ------------------------------------------------------------------ words without a vector: from their characters
PIECES = {"京都": np.array([2.0, 0.0]), "京": np.array([0.0, 4.0]), "都": np.array([4.0, 4.0]),
          "駅": np.array([0.0, -2.0]), "湯": np.array([1.0, 1.0]), "豆腐": np.array([3.0, -1.0])}


@pytest.mark.parametrize("word, pieces", [
    ("京都駅", ["京都", "駅"]),  # the longest known piece first, not 京 + 都
    ("湯豆腐", ["湯", "豆腐"]),
    ("駅京都X", ["駅", "京都"]),  # a character without any vector is skipped
    ("京都", ["京", "都"]),  # never the whole word itself
])
def test_character_vector_is_the_mean_of_the_longest_known_pieces(word, pieces):
    np.testing.assert_array_equal(character_vector(word, PIECES.get), np.mean([PIECES[p] for p in pieces], axis=0))


@pytest.mark.parametrize("word", ["X", "XY", "京", ""])
def test_character_vector_without_a_known_piece_is_none(word):
    assert character_vector(word, PIECES.get) is None


def test_unknown_init_characters_starts_unknown_words_from_their_pieces_and_the_rest_random():
    words = {"京都": 5, "京都駅": 3, "謎": 2, "湯豆腐": 1}
    vocab = Vocabulary([PAD, UNK, "<s>", *words], words)  # <s>: a special token, no count
    random_matrix, _ = embedding_matrix(vocab, {}, PIECES.get, 2, np.random.default_rng(0), 0.5)
    matrix, coverage = embedding_matrix(vocab, {}, PIECES.get, 2, np.random.default_rng(0), 0.5, "characters")
    np.testing.assert_array_equal(matrix[3], PIECES["京都"])  # its own vector, as before
    np.testing.assert_allclose(matrix[4], (PIECES["京都"] + PIECES["駅"]) / 2)
    np.testing.assert_allclose(matrix[6], (PIECES["湯"] + PIECES["豆腐"]) / 2)
    # <unk>, <s> and 謎 stay random: the first three draws of the seeded generator, in id order
    spread = 0.5 * float(np.std(PIECES["京都"]))
    expected = np.random.default_rng(0).normal(0.0, spread, size=(3, 2)).astype(np.float32)
    np.testing.assert_allclose(matrix[[1, 2, 5]], expected, rtol=1e-6)
    np.testing.assert_array_equal(random_matrix[[0, 3]], matrix[[0, 3]])
    assert (coverage.from_characters, coverage.random) == (2, 3)
    assert coverage.characters_tokens == pytest.approx((3 + 1) / 11)
    assert coverage.entries == pytest.approx(1 / 5)  # a found vector: only 京都 of <s> and the four words


def test_word_forms_take_the_most_frequent_pair_and_count_the_words():
    surface = [["行っ", "た"], ["行っ", "た"], ["行っ", "て"]]
    norm = [["行く", "た"], ["いく", "た"], ["行く", "て"]]
    lemma = [["行く", "た"], ["行く", "た"], ["行く", "て"]]
    by_surface, by_norm = WordForms(), WordForms()
    for words, norms, lemmas in zip(surface, norm, lemma, strict=True):
        by_surface.add(words, norms, lemmas)
        by_norm.add(norms, norms, lemmas)
    assert by_surface.most_frequent() == {"行っ": ("行く", "行く"), "た": ("た", "た"), "て": ("て", "て")}
    assert by_surface.counts() == {"行っ": 3, "た": 2, "て": 1}
    assert by_norm.most_frequent()["いく"] == ("いく", "行く")


@pytest.fixture(scope="module")
def ginza():
    return ginza_lookup("ja_ginza")


def test_ginza_lookup_finds_kyoto(ginza):
    lookup, dimension = ginza
    assert dimension == 300
    kyoto = lookup("京都")
    assert kyoto is not None and kyoto.shape == (300,) and np.abs(kyoto).sum() > 0
    assert lookup("行く") is not None
    assert lookup("") is None
    assert lookup("ｑｚｑｚｑｚ未知語ｑｚ") is None
    # Related words are closer than unrelated ones.
    def cosine(a, b):
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert cosine(kyoto, lookup("大阪")) > cosine(kyoto, lookup("電池"))


def tokens_table() -> pd.DataFrame:
    rows = [
        (["猫", "が", "鳴く"], "animal", "train"),
        (["犬", "が", "走る"], "animal", "train"),
        (["電車", "が", "走る"], "vehicle", "train"),
        (["猫", "と", "電車"], "vehicle", "validation"),
        (["鳥", "が", "飛ぶ"], "animal", "test"),
    ]
    return pd.DataFrame({
        "surface": [r[0] for r in rows], "norm": [r[0] for r in rows], "lemma": [r[0] for r in rows],
        "label": [r[1] for r in rows], "split": [r[2] for r in rows],
    })


def test_vectorize_without_vectors_writes_vocabulary_matrix_and_ids(tmp_path):
    config = Config(seed=3, vectorize=VectorizeConfig(vectors="none"), model=ModelConfig(embedding_dim=6))
    paths = tmp_path / "vocab.json", tmp_path / "embeddings.npy", tmp_path / "ids.npz"
    result = vectorize(config, tokens_table(), *paths)
    # training words: が 3, 走る 2, then 犬 猫 電車 鳴く once each (code points 72AC < 732B < 96FB < 9CF4)
    vocab = Vocabulary.load(paths[0])
    assert vocab.tokens == [PAD, UNK, "が", "走る", "犬", "猫", "電車", "鳴く"]
    assert result["vocabulary_size"] == 8 and result["embedding_dim"] == 6
    matrix = np.load(paths[1])
    assert matrix.shape == (8, 6)
    np.testing.assert_array_equal(matrix[0], np.zeros(6))
    splits = EncodedSplits.load(paths[2])
    assert splits.labels == ["animal", "vehicle"]
    assert [s.tolist() for s in splits.sequences["train"]] == [[5, 2, 7], [4, 2, 3], [6, 2, 3]]
    assert [s.tolist() for s in splits.sequences["validation"]] == [[5, 1, 6]]
    assert [s.tolist() for s in splits.sequences["test"]] == [[1, 2, 1]]
    assert splits.targets["train"].tolist() == [0, 0, 1]
    assert splits.targets["validation"].tolist() == [1] and splits.targets["test"].tolist() == [0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["embeddings.npy", "ids.npz", "vocab.json"]
    # The same seed gives the same matrix.
    vectorize(config, tokens_table(), *paths)
    np.testing.assert_array_equal(np.load(paths[1]), matrix)


def test_vectorize_without_vectors_default_dimension(tmp_path):
    config = Config(vectorize=VectorizeConfig(vectors="none"))
    result = vectorize(config, tokens_table(), tmp_path / "v.json", tmp_path / "e.npy", tmp_path / "i.npz")
    assert result["embedding_dim"] == DEFAULT_EMBEDDING_DIM


def test_vectorize_with_ginza_vectors(tmp_path, ginza):
    config = Config()
    result = vectorize(config, tokens_table(), tmp_path / "v.json", tmp_path / "e.npy", tmp_path / "i.npz")
    assert result["embedding_dim"] == 300
    matrix = np.load(tmp_path / "e.npy")
    lookup, _ = ginza
    vocab = Vocabulary.load(tmp_path / "v.json")
    np.testing.assert_array_equal(matrix[vocab.index["猫"]], lookup("猫"))
    assert result["coverage"]["entries"] == pytest.approx(1.0)
    assert result["coverage"]["from_characters"] == 0
    with pytest.raises(PipelineError, match="model.embedding_dim = 64 but the ja_ginza vectors have 300"):
        vectorize(replace(config, model=ModelConfig(embedding_dim=64)), tokens_table(),
                  tmp_path / "v.json", tmp_path / "e.npy", tmp_path / "i.npz")


def test_vectorize_with_ginza_vectors_and_character_init_logs_the_fallbacks(tmp_path, ginza, caplog):
    table = tokens_table()
    table.loc[0, "surface"] = table.loc[0, "norm"] = table.loc[0, "lemma"] = ["湯豆腐", "が", "鳴く"]
    config = Config(vectorize=VectorizeConfig(unknown_init="characters"))
    lookup, _ = ginza
    assert lookup("湯豆腐") is None and lookup("湯") is not None and lookup("豆腐") is not None
    with caplog.at_level("INFO", logger="pipeline.text.vectors"):
        result = vectorize(config, table, tmp_path / "v.json", tmp_path / "e.npy", tmp_path / "i.npz")
    vocab = Vocabulary.load(tmp_path / "v.json")
    np.testing.assert_allclose(np.load(tmp_path / "e.npy")[vocab.index["湯豆腐"]], (lookup("湯") + lookup("豆腐")) / 2)
    assert result["coverage"]["from_characters"] == 1 and result["coverage"]["random"] == 1  # <unk>
    assert "words without a vector: 1 start from their characters' vectors (11.1% of training tokens)" in caplog.text


def test_vector_table_words_own_their_rows():
    """Each word of vector_table_words is a key of its row of ja_ginza's pruned table, in row order, and the word of
    that frequency rank: the first rows are the most frequent words."""
    from pipeline.text.tokenize import load_nlp

    words = vector_table_words("ja_ginza", 300)
    vocabulary = load_nlp("ja_ginza", ()).vocab
    assert len(words) == len(set(words)) == 300
    assert [vocabulary.vectors.key2row[vocabulary.strings[word]] for word in words] == list(range(300))
    assert [vocabulary[word].rank for word in words] == list(range(300)) and words[:2] == ["の", "、"]
    np.testing.assert_array_equal(vocabulary.get_vector(words[299]), vocabulary.vectors.data[299])
    assert len(vector_table_words("ja_ginza", 10**9)) == vocabulary.vectors.shape[0]  # every row


def test_vector_words_join_the_vocabulary_after_the_training_words(tmp_path, ginza):
    """vectorize.vector_words: a test word that training never saw gets its own id and its vector (not <unk>)."""
    lookup, _ = ginza
    table = tokens_table()
    extra = vector_table_words("ja_ginza", 400)
    unseen = next(word for word in reversed(extra) if word not in {"が", "走る", "犬", "猫", "電車", "鳴く"})
    table.at[4, "surface"] = ["鳥", "が", unseen]
    config = Config(vectorize=VectorizeConfig(vector_words=400))
    result = vectorize(config, table, tmp_path / "v.json", tmp_path / "e.npy", tmp_path / "i.npz")
    vocab = Vocabulary.load(tmp_path / "v.json")
    training = [PAD, UNK, "が", "走る", "犬", "猫", "電車", "鳴く"]
    assert vocab.tokens[:8] == training and vocab.tokens[8:] == [word for word in extra if word not in training]
    assert result["vocabulary_size"] == len(vocab) and vocab.counts.get(unseen) is None
    test_ids = EncodedSplits.load(tmp_path / "i.npz").sequences["test"][0].tolist()
    assert test_ids[2] == vocab.index[unseen] != 1
    np.testing.assert_array_equal(np.load(tmp_path / "e.npy")[vocab.index[unseen]], lookup(unseen))
    with pytest.raises(PipelineError, match="vectorize.vector_words"):
        VectorizeConfig(vectors="none", vector_words=5).validate()
    with pytest.raises(PipelineError, match="vectorize.vector_words = 400: a vocabulary of pieces"):
        vectorize(replace(config, tokenize=replace(config.tokenize, method="sentencepiece")), table,
                  tmp_path / "v.json", tmp_path / "e.npy", tmp_path / "i.npz")


def test_form_fallback_encodes_an_unknown_word_as_its_norm_then_its_lemma(tmp_path):
    """vectorize.form_fallback: a validation or test word outside the vocabulary gets the id of its norm, else of
    its lemma (the other fields than token_field), else <unk>."""
    table = tokens_table()
    table.at[3, "surface"], table.at[3, "norm"], table.at[3, "lemma"] = ["猫ちゃん", "と"], ["猫", "と"], ["x", "と"]
    table.at[4, "surface"], table.at[4, "norm"], table.at[4, "lemma"] = ["走っ", "鳥"], ["走っ", "鳥"], ["走る", "鳥"]
    config = Config(vectorize=VectorizeConfig(vectors="none", form_fallback=True), model=ModelConfig(embedding_dim=4))
    vectorize(config, table, tmp_path / "v.json", tmp_path / "e.npy", tmp_path / "i.npz")
    vocab, splits = Vocabulary.load(tmp_path / "v.json"), EncodedSplits.load(tmp_path / "i.npz")
    assert splits.sequences["validation"][0].tolist() == [vocab.index["猫"], 1]  # と: not a training word
    assert splits.sequences["test"][0].tolist() == [vocab.index["走る"], 1]
    assert VectorizeConfig(form_fallback=True, token_field="lemma").fallback_fields == ("norm",)
    vectorize(replace(config, vectorize=VectorizeConfig(vectors="none")), table, tmp_path / "v.json",
              tmp_path / "e.npy", tmp_path / "i.npz")
    assert EncodedSplits.load(tmp_path / "i.npz").sequences["test"][0].tolist() == [1, 1]  # off: <unk>


def test_vectorize_with_an_empty_training_vocabulary(tmp_path):
    config = Config(vectorize=VectorizeConfig(vectors="none", min_count=10))
    with pytest.raises(PipelineError, match="the training split has no words"):
        vectorize(config, tokens_table(), tmp_path / "v.json", tmp_path / "e.npy", tmp_path / "i.npz")


def test_encoded_splits_missing_file(tmp_path):
    with pytest.raises(PipelineError, match="run `pipeline vectorize` first"):
        EncodedSplits.load(tmp_path / "ids.npz")


def test_unlabeled_text_adds_words_and_its_own_id_split_but_no_label(tmp_path):
    unlabeled = pd.DataFrame({"surface": [["鳥", "が", "鳴く"], ["鳥", "と", "猫"]], "label": ["", ""],
                              "split": ["unlabeled", "unlabeled"]})
    unlabeled["norm"] = unlabeled["lemma"] = unlabeled["surface"]
    tokens = pd.concat([tokens_table(), unlabeled], ignore_index=True)
    config = Config(seed=3, vectorize=VectorizeConfig(vectors="none"), model=ModelConfig(embedding_dim=6))
    paths = tmp_path / "vocab.json", tmp_path / "embeddings.npy", tmp_path / "ids.npz"
    vectorize(config, tokens, *paths)
    vocab = Vocabulary.load(paths[0])
    assert "鳥" in vocab.index and "と" in vocab.index  # learned from the unlabelled text
    assert "飛ぶ" not in vocab.index  # never from the test split
    splits = EncodedSplits.load(paths[2])
    assert splits.labels == ["animal", "vehicle"]
    unlabeled_words = [vocab.decode(s.tolist()) for s in splits.sequences["unlabeled"]]
    assert unlabeled_words == [["鳥", "が", "鳴く"], ["鳥", "と", "猫"]]
    assert splits.targets["unlabeled"].tolist() == [-1, -1]


def progress_counts(caplog, description: str, unit: str) -> list[tuple[int, int]]:
    """(done, total) of each ``<description>: done/total <unit>`` progress line."""
    line = re.compile(rf"{re.escape(description)}: (\d+)/(\d+) {unit} \(\d+%\)")
    found = [line.match(record.getMessage()) for record in caplog.records]
    return [(int(match[1]), int(match[2])) for match in found if match]


@pytest.mark.parametrize("unknown_init", ["random", "characters"])
def test_vectorize_logs_progress_of_each_step(tmp_path, progress_log, unknown_init, monkeypatch):
    """Off a terminal: counting and ids over the 5 sentences a batch (of 2) at a time, vectors over the 8 entries."""
    monkeypatch.setattr(vectors, "TOKEN_BATCH_ROWS", 2)
    config = Config(vectorize=VectorizeConfig(vectors="none", unknown_init=unknown_init))
    vectorize(config, tokens_table(), tmp_path / "v.json", tmp_path / "e.npy", tmp_path / "i.npz")
    assert progress_counts(progress_log, "vectorize: counting words", "sentences") == [(2, 5), (4, 5), (5, 5)]
    assert progress_counts(progress_log, "vectorize: word vectors", "words") == [(n, 8) for n in range(1, 9)]
    assert progress_counts(progress_log, "vectorize: ids", "sentences") == [(2, 5), (4, 5), (5, 5)]


def test_embedding_matrix_counts_every_entry_once():
    counted = []

    class Counting:
        def update(self, count):
            counted.append(count)

    for unknown_init in ("random", "characters"):
        counted.clear()
        embedding_matrix(small_vocab(), FORMS, fake_lookup, 4, np.random.default_rng(0), 0.5, unknown_init,
                         Counting())
        assert sum(counted) == len(small_vocab())


def test_vectorize_quiet_shows_no_progress(tmp_path, quiet_terminal, caplog):
    """pipeline --quiet (level WARNING): no progress lines and no bar, even on a terminal."""
    vectorize(Config(vectorize=VectorizeConfig(vectors="none")), tokens_table(),
              tmp_path / "v.json", tmp_path / "e.npy", tmp_path / "i.npz")
    assert caplog.records == [] and quiet_terminal.getvalue() == ""


def test_vectorize_reads_a_parquet_file_a_batch_at_a_time_as_it_reads_the_table(tmp_path, monkeypatch):
    """tokens.parquet in row groups of 2 rows, read 3 rows at a time: the same vocabulary, vectors and ids as the
    table in memory; ids.npz is stored uncompressed, so its id arrays are memory-mapped back."""
    config = Config(seed=3, vectorize=VectorizeConfig(vectors="none"), model=ModelConfig(embedding_dim=6))
    tokens_table().to_parquet(tmp_path / "tokens.parquet", row_group_size=2)
    assert pq.ParquetFile(tmp_path / "tokens.parquet").num_row_groups == 3
    monkeypatch.setattr(vectors, "TOKEN_BATCH_ROWS", 3)
    whole, streamed = tmp_path / "whole", tmp_path / "streamed"
    vectorize(config, tokens_table(), whole / "v.json", whole / "e.npy", whole / "i.npz")
    vectorize(config, tmp_path / "tokens.parquet", streamed / "v.json", streamed / "e.npy", streamed / "i.npz")
    for name in ("v.json", "e.npy"):
        assert (whole / name).read_bytes() == (streamed / name).read_bytes()
    with np.load(whole / "i.npz") as expected, np.load(streamed / "i.npz") as found:
        assert expected.files == found.files
        for name in expected.files:
            assert expected[name].dtype == found[name].dtype and np.array_equal(expected[name], found[name]), name
    with zipfile.ZipFile(streamed / "i.npz") as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
    assert sorted(path.name for path in streamed.iterdir()) == ["e.npy", "i.npz", "v.json"]  # no temporary left


def test_vectorize_gives_what_the_whole_table_gives_on_the_shipped_corpus(small_work_dir):
    """The shipped corpus (tests/configs/small.toml's front end): vocabulary, word forms and ids equal those
    computed from the whole table in memory as vectorize did before it streamed."""
    tokens = pd.read_parquet(small_work_dir / "knb_blog" / "tokens.parquet")
    field = Config().vectorize.token_field
    train = tokens[tokens["split"].isin(("train", "unlabeled"))]
    expected_vocab = Vocabulary.build(train[field], Config().vectorize.min_count, Config().vectorize.max_size)
    vocab = Vocabulary.load(small_work_dir / "knb_blog" / "vocab.json")
    assert vocab.tokens == expected_vocab.tokens and vocab.counts == expected_vocab.counts
    pairs = {}  # the forms as the whole-table loop found them: word -> Counter of (norm, lemma), in row order
    for words, norms, lemmas in zip(train[field], train["norm"], train["lemma"], strict=True):
        for word, norm, lemma in zip(words, norms, lemmas, strict=True):
            pairs.setdefault(word, Counter())[(norm, lemma)] += 1
    forms = vectors.count_tokens(small_work_dir / "knb_blog" / "tokens.parquet", field).forms
    assert forms.most_frequent() == {word: counter.most_common(1)[0][0] for word, counter in pairs.items()}
    splits = EncodedSplits.load(small_work_dir / "knb_blog" / "ids.npz")
    labels = sorted(tokens["label"].unique())
    assert splits.labels == labels
    for split in ("train", "validation", "test"):
        part = tokens[tokens["split"] == split]
        assert [ids.tolist() for ids in splits.sequences[split]] == [vocab.encode(words) for words in part[field]]
        assert splits.targets[split].tolist() == [labels.index(label) for label in part["label"]]


def resident_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_an_appended_npy_file_is_what_np_save_writes_and_stays_out_of_resident_memory(tmp_path):
    values = np.arange(10, dtype=np.int64) * 7
    appender = NpyAppender(tmp_path / "a.npy", np.int64, 10)
    for start in range(0, 10, 3):
        appender.append(values[start:start + 3].tolist())
    appender.close()
    np.save(tmp_path / "b.npy", values)
    assert (tmp_path / "a.npy").read_bytes() == (tmp_path / "b.npy").read_bytes()
    # 64 MiB written a MiB at a time: the pages are the page cache's (a memory map's would be this process's)
    chunk = np.ones(1 << 18, dtype=np.int32)
    before = resident_bytes()
    big = NpyAppender(tmp_path / "big.npy", np.int32, 64 * len(chunk))
    for _ in range(64):
        big.append(chunk)
    big.close()
    assert resident_bytes() - before < 16 << 20
    assert np.load(tmp_path / "big.npy", mmap_mode="r").shape == (64 * len(chunk),)


def test_an_appended_npy_file_short_of_its_header_is_a_user_error(tmp_path):
    appender = NpyAppender(tmp_path / "a.npy", np.int32, 5)
    appender.append([1, 2])
    with pytest.raises(PipelineError, match="vectorize --force"):
        appender.close()
