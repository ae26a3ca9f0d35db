"""Tests of pipeline.text.features: stable hashed ids for characters and n-grams, shapes and truncation."""

import subprocess
import sys
import zlib

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import PipelineError
from pipeline.sections import ModelConfig
from pipeline.text.encoded import StoredArray
from pipeline.text.features import (
    SentenceWords,
    char_ids,
    char_ngrams,
    ngram_ids,
    read_split_words,
    sentence_inputs,
    split_inputs,
    stable_id,
    uses_subword_features,
    word_ngrams,
)

SUBWORD = ModelConfig(char_encoder="cnn", max_chars=4, char_buckets=100, ngram_features="both", ngram_buckets=1000)


# ------------------------------------------------------------------ stable ids
def test_stable_id_is_crc32_of_the_utf8_bytes_plus_one():
    # Fixed expected values: a run folder trained today must encode the same text the same way tomorrow.
    assert stable_id("京", 8192) == 2208
    assert stable_id("ア", 8192) == 4071
    assert stable_id("a", 8192) == 7748
    assert stable_id("京", 100) == zlib.crc32("京".encode()) % 100 + 1 == 76


@pytest.mark.parametrize("hash_seed", ["0", "12345"])
def test_stable_id_is_the_same_in_another_process_whatever_its_hash_seed(hash_seed):
    code = "from pipeline.text.features import stable_id; print(stable_id('京', 8192), stable_id('w:スマホ', 97))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"PYTHONHASHSEED": hash_seed, "PATH": ""})
    assert result.stdout.split() == [str(stable_id("京", 8192)), str(stable_id("w:スマホ", 97))]


def test_ids_stay_in_one_to_buckets():
    ids = [stable_id(chr(code), 7) for code in range(0x3041, 0x3100)]
    assert min(ids) == 1 and max(ids) == 7


# ------------------------------------------------------------------ characters per token
def test_char_ids_shape_padding_and_truncation():
    ids = char_ids(["京都", "に", "イノベーション"], max_chars=4, buckets=100)
    assert ids.shape == (3, 4) and ids.dtype == np.int32
    np.testing.assert_array_equal(ids[0], [stable_id("京", 100), stable_id("都", 100), 0, 0])
    np.testing.assert_array_equal(ids[1, 1:], [0, 0, 0])
    np.testing.assert_array_equal(ids[2], [stable_id(c, 100) for c in "イノベー"])  # the first 4 characters
    assert char_ids([], max_chars=4, buckets=100).shape == (0, 4)


def test_unseen_words_get_non_zero_ids_for_every_character():
    ids = char_ids(["ペロブスカイト", "Zyxwvut", "１２３"], max_chars=10, buckets=50)
    lengths = [7, 7, 3]
    for row, length in enumerate(lengths):
        assert (ids[row, :length] >= 1).all() and (ids[row, length:] == 0).all()


# ------------------------------------------------------------------ bags of n-grams
def test_char_and_word_ngrams():
    assert char_ngrams("京都へ") == ["京", "都", "へ", "京都", "都へ", "京都へ"]
    assert char_ngrams("京", (2, 3)) == []
    assert word_ngrams(["京都", "に", "行く"]) == ["京都", "に", "行く", "京都 に", "に 行く"]


def test_ngram_ids_by_kind_count_repeats_and_separate_namespaces():
    words = ["京都", "の", "京都"]
    text_length = 5  # 京都の京都
    char = ngram_ids(words, "char", 1000)
    word = ngram_ids(words, "word", 1000)
    assert len(char) == text_length + (text_length - 1) + (text_length - 2)
    assert len(word) == 3 + 2
    np.testing.assert_array_equal(ngram_ids(words, "both", 1000), np.concatenate([char, word]))
    assert word[0] == word[2]  # a repeated word repeats its id: the mean weighs it by count
    # the character 京 and the one-character word 京 are different features
    assert ngram_ids(["京"], "char", 1000)[0] == stable_id("c:京", 1000) != stable_id("w:京", 1000)
    assert ngram_ids(["京"], "word", 1000)[0] == stable_id("w:京", 1000)
    assert ngram_ids([], "both", 1000).shape == (0,)


# ------------------------------------------------------------------ inputs of a model
def test_sentence_inputs_when_off_and_on():
    assert not uses_subword_features(ModelConfig())
    assert sentence_inputs(ModelConfig(), [["京都"]], 10) == {"token_inputs": {}, "bag_inputs": {}}
    only_ngrams = sentence_inputs(ModelConfig(ngram_features="word"), [["京都"]], 10)
    assert list(only_ngrams["token_inputs"]) == [] and list(only_ngrams["bag_inputs"]) == ["ngram_ids"]
    inputs = sentence_inputs(SUBWORD, [["京都", "に"], ["雨"]], 10)
    assert [ids.shape for ids in inputs["token_inputs"]["char_ids"]] == [(2, 4), (1, 4)]
    assert [ids.shape for ids in inputs["bag_inputs"]["ngram_ids"]] == [(3 + 2 + 1 + 3,), (1 + 1,)]


def test_sentence_inputs_keep_only_the_first_max_length_tokens():
    words = ["京都", "に", "行っ", "た"]
    inputs = sentence_inputs(SUBWORD, [words], max_length=2)
    np.testing.assert_array_equal(inputs["token_inputs"]["char_ids"][0], char_ids(words[:2], 4, 100))
    np.testing.assert_array_equal(inputs["bag_inputs"]["ngram_ids"][0], ngram_ids(words[:2], "both", 1000))


def write_tokens(path, rows):
    pd.DataFrame(rows, columns=["split", "surface"]).to_parquet(path)
    return path


def test_split_inputs_read_the_tokens_of_each_split_in_order(tmp_path):
    tokens = write_tokens(tmp_path / "tokens.parquet", [("train", ["京都", "に"]), ("test", ["雨"]),
                                                        ("train", ["スマホ"])])
    ids = {"train": [np.array([2, 3]), np.array([4])], "test": [np.array([5])]}
    inputs = split_inputs(SUBWORD, tokens, ids, 10)
    np.testing.assert_array_equal(inputs["train"]["token_inputs"]["char_ids"][1], char_ids(["スマホ"], 4, 100))
    np.testing.assert_array_equal(inputs["test"]["bag_inputs"]["ngram_ids"][0], ngram_ids(["雨"], "both", 1000))


def test_read_split_words_codes_words_as_a_scan_of_the_wanted_rows_in_file_order_would(tmp_path, monkeypatch):
    """Arrow's per-batch dictionary of words, mapped to codes: the same forms, in the same first-seen order, and
    the same codes as SentenceWords.of over the wanted splits' sentences read one by one; across read batches,
    with words of unwanted rows left out, empty sentences and a split with no rows."""
    from pipeline.text import vectors

    monkeypatch.setattr(vectors, "TOKEN_BATCH_ROWS", 3)
    rows = [("train", ["京都", "に"]), ("test", ["雨", "京都"]), ("validation", ["に", "雪"]), ("train", []),
            ("train", ["スマホ", "京都", "京都"]), ("test", ["試合"]), ("validation", ["スマホ"]), ("train", ["雪"])]
    tokens = write_tokens(tmp_path / "tokens.parquet", rows)
    words = read_split_words(tokens, ["train", "validation", "unlabeled"])
    scanned = SentenceWords.of([sentence for split, sentence in rows if split in ("train", "validation")])
    assert words["train"].forms == scanned.forms == ["京都", "に", "雪", "スマホ"]  # no test-only word
    for split in ("train", "validation"):
        assert [list(sentence) for sentence in words[split]] == [sentence for name, sentence in rows if name == split]
    assert [list(words["train"].codes[i]) for i in range(4)] == [[0, 1], [], [3, 0, 0], [2]]
    assert len(words["unlabeled"]) == 0


def test_split_inputs_make_per_batch_exactly_what_sentence_inputs_gives(tmp_path):
    """Rows made per batch from the compact words (CharRows, NgramRows) equal char_ids / ngram_ids of the words,
    over several read batches of the file (TOKEN_BATCH_ROWS rows each), repeated and unseen words, truncation."""
    from pipeline.text import vectors
    from pipeline.text.batches import SequenceBatches

    rng = np.random.default_rng(5)
    vocabulary = ["京都", "に", "行っ", "た", "スマホ", "の", "バッテリー", "ｶﾀｶﾅ", "2024", "絵文字😀", "a"]
    rows = [(("train", "validation")[int(rng.random() < 0.3)],
             [vocabulary[i] for i in rng.integers(0, len(vocabulary), size=rng.integers(0, 9))]) for _ in range(300)]
    tokens = write_tokens(tmp_path / "tokens.parquet", rows)
    ids = {split: [np.arange(len(words), dtype=np.int32) + 2 for kept, words in rows if kept == split]
           for split in ("train", "validation")}
    old_batch_rows = vectors.TOKEN_BATCH_ROWS
    vectors.TOKEN_BATCH_ROWS = 64  # several batches of rows
    try:
        inputs = split_inputs(SUBWORD, tokens, ids, 5)
    finally:
        vectors.TOKEN_BATCH_ROWS = old_batch_rows
    for split in ids:
        words = [words for kept, words in rows if kept == split]
        expected = {"token_inputs": {"char_ids": [char_ids(each[:5], 4, 100) for each in words]},
                    "bag_inputs": {"ngram_ids": [ngram_ids(each[:5], "both", 1000) for each in words]}}
        chars, bags = inputs[split]["token_inputs"]["char_ids"], inputs[split]["bag_inputs"]["ngram_ids"]
        assert len(chars) == len(bags) == len(words)
        assert isinstance(chars.codes.flat, StoredArray)  # the codes are read from a file, not held
        assert not [path for path in tmp_path.iterdir() if path.name.startswith(".codes-")]  # unnamed
        for row in range(len(words)):
            np.testing.assert_array_equal(chars[row], expected["token_inputs"]["char_ids"][row])
            np.testing.assert_array_equal(bags[row], expected["bag_inputs"]["ngram_ids"][row])
        np.testing.assert_array_equal(bags.lengths(), [len(bag) for bag in expected["bag_inputs"]["ngram_ids"]])
        some = np.arange(len(words))[::3]  # the counts of a few rows alone: what a sample of the split costs
        np.testing.assert_array_equal(bags.lengths(some), bags.lengths()[some])
        np.testing.assert_array_equal(chars.codes.lengths(some), [len(words[row]) for row in some])
        # the batches pad both kinds alike
        ours = SequenceBatches(ids[split], None, 16, 5, **inputs[split])
        theirs = SequenceBatches(ids[split], None, 16, 5, **expected)
        for index in range(len(ours)):
            for name, value in ours[index][0].items():
                np.testing.assert_array_equal(value, theirs[index][0][name])


def test_split_inputs_do_not_read_the_tokens_when_off(tmp_path):
    inputs = split_inputs(ModelConfig(), tmp_path / "missing.parquet", {"train": [np.array([2])]}, 10)
    assert inputs == {"train": {"token_inputs": {}, "bag_inputs": {}}}


def test_split_inputs_out_of_step_with_the_ids_is_a_user_error(tmp_path):
    tokens = write_tokens(tmp_path / "tokens.parquet", [("train", ["京都", "に"])])
    with pytest.raises(PipelineError, match="vectorize --force"):
        split_inputs(SUBWORD, tokens, {"train": [np.array([2, 3, 4])]}, 10)
    with pytest.raises(PipelineError, match="pipeline tokenize"):
        split_inputs(SUBWORD, tmp_path / "missing.parquet", {"train": [np.array([2])]}, 10)
