"""Tests of pipeline.text.graph: each TensorFlow op gives exactly the ids of its Python twin
(zlib.crc32, features.stable_id / char_ids / ngram_ids, Vocabulary.encode), in eager and graph mode."""

import zlib

import numpy as np
import pytest
import tensorflow as tf

from pipeline.text import features, graph
from pipeline.text.vocab import Vocabulary

WORDS = [["京都", "の", "寺", "ABC", "😀x", "ｽﾏﾎ", "Ünïcødé"],
         ["新しい", "スマホ", "", "", "", "", ""],
         ["", "", "", "", "", "", ""],
         ["a", "b c", "a", "", "", "", ""]]  # repeated n-grams repeat their ids; a space inside a token


def random_strings(count: int, seed: int) -> list[str]:
    """Strings of 0-40 code points from every plane (no surrogates): 1- to 4-byte UTF-8."""
    rng = np.random.default_rng(seed)
    strings = []
    for _ in range(count):
        points = rng.choice([rng.integers(0x20, 0x7F), rng.integers(0x80, 0x800), rng.integers(0x3040, 0x9FFF),
                             rng.integers(0x10000, 0x10FFFF)], size=rng.integers(0, 41))
        strings.append("".join(chr(int(point)) for point in points))
    return strings


def test_crc32_is_zlibs():
    strings = ["", "a", "京", "c:京都の", "w:新しい スマホ", "😀" * 100, *random_strings(200, seed=0)]
    assert graph.crc32(tf.constant(strings)).numpy().tolist() == [zlib.crc32(s.encode("utf-8")) for s in strings]
    matrix = tf.constant([["京", ""], ["ア", "a"]])  # any shape
    expected = [[zlib.crc32("京".encode()), 0], [zlib.crc32("ア".encode()), zlib.crc32(b"a")]]
    assert graph.crc32(matrix).numpy().tolist() == expected
    assert graph.crc32(tf.constant([], tf.string)).shape == (0,)


def test_stable_ids_are_features_stable_id():
    strings = random_strings(100, seed=1) + ["京", "ア", "a"]
    for buckets in (1, 97, 8192):
        assert graph.stable_ids(tf.constant(strings), buckets).numpy().tolist() == \
            [features.stable_id(s, buckets) for s in strings]


def test_encode_tokens_is_vocabulary_encode_with_padding():
    vocab = Vocabulary(["<pad>", "<unk>", "京都", "の", "寺"])
    table = graph.vocabulary_table(vocab.tokens)
    tokens = [["京都", "の", "東京", "<unk>"], ["寺", "", "", ""]]
    assert graph.encode_tokens(table, tf.constant(tokens)).numpy().tolist() == [[2, 3, 1, 1], [4, 0, 0, 0]]
    assert vocab.encode(tokens[0]) == [2, 3, 1, 1]


def in_graph(function, *arguments):
    """``function`` traced once for string matrices of any shape, as a SavedModel signature runs it."""
    traced = tf.function(lambda words: function(words, *arguments),
                         input_signature=[tf.TensorSpec([None, None], tf.string)])
    return traced(tf.constant(WORDS)).numpy()


@pytest.mark.parametrize("max_chars", [1, 3, 8])
def test_char_ids_are_features_char_ids(max_chars):
    for ids in (graph.char_ids(tf.constant(WORDS), max_chars, 100).numpy(), in_graph(graph.char_ids, max_chars, 100)):
        assert ids.shape == (len(WORDS), len(WORDS[0]), max_chars) and ids.dtype == np.int32
        for row, words in zip(ids, WORDS):
            np.testing.assert_array_equal(row, features.char_ids(words, max_chars, 100))


@pytest.mark.parametrize("kind", ["char", "word", "both"])
def test_ngram_ids_are_features_ngram_ids_padded(kind):
    for ids in (graph.ngram_ids(tf.constant(WORDS), kind, 1000).numpy(), in_graph(graph.ngram_ids, kind, 1000)):
        expected = [features.ngram_ids([word for word in words if word], kind, 1000) for words in WORDS]
        assert ids.shape == (len(WORDS), max(len(bag) for bag in expected)) and ids.dtype == np.int32
        for row, bag in zip(ids, expected):
            np.testing.assert_array_equal(row[:len(bag)], bag)
            assert not row[len(bag):].any()
    empty = graph.ngram_ids(tf.constant([["", ""]]), kind, 1000).numpy()
    assert empty.tolist() == [[0]]  # at least one (padding) column, as the batches give the model


def test_pad_columns():
    padded = graph.pad_columns(tf.constant([["a"], ["b"]]), 3).numpy().tolist()
    assert padded == [[b"a", b"", b""], [b"b", b"", b""]]
