"""Tests of pipeline.seq2seq.decode: greedy decoding and beam search with length normalisation.

A fake one-step decoder with a fixed table p(next | previous) makes the right answers known:

    <s> -> A 0.6, B 0.4;   A -> X 0.5, Y 0.5;   X, Y, B -> </s> 1.0

Greedy reads "AX" (p = 0.3); beam search finds "B" (p = 0.4), the better sentence by total log
probability, and "AX" again when the score is divided by the length (log 0.3 / 3 > log 0.4 / 2).
"""

import numpy as np
import pytest

from pipeline.seq2seq.decode import Reader, max_output_length
from pipeline.text.vocab import Vocabulary

ALPHABET = Vocabulary(["<pad>", "<unk>", "<s>", "</s>", "A", "B", "X", "Y"])
TABLE = {"<s>": {"A": 0.6, "B": 0.4}, "A": {"X": 0.5, "Y": 0.5}, "B": {"</s>": 1.0}, "X": {"</s>": 1.0},
         "Y": {"</s>": 1.0}}


class FakeEncoder:
    def predict_on_batch(self, source_ids):
        count, steps = source_ids.shape
        return [np.ones((count, steps, 2), np.float32), np.ones((count, 2), np.float32), np.zeros((count, 3))]


class FakeStep:
    """p(next | previous) from TABLE; the attention row puts all weight on the first source character."""

    def predict_on_batch(self, inputs):
        previous, encoded, _, _, state = inputs
        probabilities = np.full((len(previous), 1, len(ALPHABET)), 1e-9, np.float32)
        for row, token in enumerate(previous[:, 0]):
            for name, p in TABLE[ALPHABET.tokens[token]].items():
                probabilities[row, 0, ALPHABET.index[name]] = p
        alpha = np.zeros((len(previous), 1, encoded.shape[1]), np.float32)
        alpha[:, 0, 0] = 1.0
        return [probabilities, alpha, state + 1]


def fake_reader() -> Reader:
    reader = Reader.__new__(Reader)
    reader.source_vocab = Vocabulary(["<pad>", "<unk>", "文"])
    reader.alphabet, reader.encoder, reader.step, reader.has_attention = ALPHABET, FakeEncoder(), FakeStep(), True
    return reader


def test_greedy_takes_the_most_probable_character_each_step():
    (result,) = fake_reader().read(["文"], beam_size=1)
    assert result["reading"] == "AX"
    assert result["log_probability"] == pytest.approx(np.log(0.3), abs=1e-5)
    assert result["attention"].shape == (3, 1)  # A, X and </s>, one source character


@pytest.mark.parametrize("length_penalty, reading", [(0.0, "B"), (1.0, "AX")])
def test_beam_search_finds_the_better_sentence_and_length_normalisation_changes_it(length_penalty, reading):
    results = fake_reader().read(["文", "文文"], beam_size=3, length_penalty=length_penalty)
    assert [r["reading"] for r in results] == [reading, reading]
    assert results[1]["attention"].shape == (len(reading) + 1, 2)


def test_output_length_is_bounded():
    assert max_output_length(1) >= 4 and max_output_length(10) >= 40
