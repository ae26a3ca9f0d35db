"""Tests of pipeline.language_model.ngram_stream: the padded id stream and the k-gram keys, by hand."""

import numpy as np
import pytest

from pipeline.language_model.ngram_counts import GramIndex
from pipeline.language_model.ngram_stream import BOS_ID, IdStream, gram_keys, id_stream

# <s> = 0, then the vocabulary; <unk> = 1, </s> = 2
IDS = {"<s>": BOS_ID, "<unk>": 1, "</s>": 2, "a": 3, "b": 4}


def test_id_stream_pads_each_sentence_and_marks_the_predicted_tokens():
    stream = id_stream([["a", "b"], ["x"]], IDS, order=3, unk_id=1, eos_id=2)
    # <s> <s> a b </s> | <s> <s> <unk> </s>
    np.testing.assert_array_equal(stream.ids, [0, 0, 3, 4, 2, 0, 0, 1, 2])
    np.testing.assert_array_equal(stream.offsets, [0, 1, 2, 3, 4, 0, 1, 2, 3])
    np.testing.assert_array_equal(stream.predicted, [2, 3, 4, 7, 8])


def test_id_stream_maps_a_literal_bos_to_unk_and_cuts_at_max_tokens():
    stream = id_stream([["<s>", "a", "b", "a"], []], IDS, order=2, unk_id=1, eos_id=2, max_tokens=2)
    # the first sentence keeps its first two predicted tokens (<unk> a, no </s>); the empty one keeps </s>
    np.testing.assert_array_equal(stream.ids, [0, 1, 3, 0, 2])
    np.testing.assert_array_equal(stream.predicted, [1, 2, 4])


def test_gram_keys_join_the_previous_gram_id_and_the_token():
    stream = id_stream([["a", "b"]], IDS, order=2, unk_id=1, eos_id=2)  # <s> a b </s>
    index = GramIndex(["<s>", "<unk>", "</s>", "a", "b"], [np.zeros(1, dtype=np.int64), np.arange(14)])
    keys, valid = gram_keys(stream, np.zeros(4, dtype=np.int64), 1, index)
    np.testing.assert_array_equal(keys, [0, 3, 4, 2])  # unigrams: the empty prefix (id 0) * 5 + token
    assert valid.all()
    # bigrams from unigram ids 10..13 at each position: the pad's offset 0 has no bigram
    keys, valid = gram_keys(stream, np.array([10, 11, 12, 13]), 2, index)
    np.testing.assert_array_equal(valid, [False, True, True, True])
    np.testing.assert_array_equal(keys, [10 * 5 + 3, 11 * 5 + 4, 12 * 5 + 2])
    # an unknown prefix (-1) gives no key
    _, valid = gram_keys(stream, np.array([10, -1, 12, 13]), 2, index)
    np.testing.assert_array_equal(valid, [False, True, False, True])


def test_gram_keys_refuse_tables_that_would_overflow_int64():
    index = GramIndex(["<s>", "a"], [np.zeros(1, dtype=np.int64), np.arange(4, dtype=np.int64)])
    index.base = 2**61  # 4 unigrams x 2**61 ids reach 2**63
    stream = IdStream(np.zeros(2, dtype=np.int64), np.arange(2, dtype=np.int64), np.array([1]))
    with pytest.raises(ValueError, match="overflow"):
        gram_keys(stream, np.zeros(2, dtype=np.int64), 2, index)
