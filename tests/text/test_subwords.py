"""Tests of pipeline.text.subwords: a SentencePiece vocabulary learned from the training split only, the same bytes
twice, pieces that join back into the text, the config keys, piece vectors from characters."""

import logging

import numpy as np
import pandas as pd
import pytest
import sentencepiece
from helpers import REPOSITORY

from pipeline import config as config_module
from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.sections import TokenizeConfig, VectorizeConfig
from pipeline.text.corpora import normalize, read_knb
from pipeline.text.embeddings import ginza_lookup
from pipeline.text.subwords import (
    SPACE_MARK,
    SubwordTokenizer,
    detokenize,
    model_path,
    train_model,
    training_texts,
    write_model,
)
from pipeline.text.tokenize import make_tokenizer
from pipeline.text.vectors import vectorize
from pipeline.text.vocab import Vocabulary

SETTINGS = TokenizeConfig(method="sentencepiece", sp_vocab_size=2000)
ONLY_IN_TEST = "薔薇檸檬鸚鵡"  # characters the shipped corpus never uses, repeated in many test rows


@pytest.fixture(scope="module")
def table():
    """The shipped corpus, normalised, every fifth sentence in test; the test split also holds ONLY_IN_TEST."""
    texts = [normalize(text) for text in read_knb(REPOSITORY / "corpora" / "knb_blog")["text"]]
    splits = ["test" if index % 5 == 0 else "train" for index in range(len(texts))]
    extra = [f"{ONLY_IN_TEST}が{ONLY_IN_TEST}を見た。"] * 50
    return pd.DataFrame({"text": texts + extra, "split": splits + ["test"] * len(extra)})


@pytest.fixture(scope="module")
def model_file(table, tmp_path_factory):
    return write_model(table, SETTINGS, 42, model_path(tmp_path_factory.mktemp("sp")))


def pieces_of(model: bytes) -> set[str]:
    processor = sentencepiece.SentencePieceProcessor(model_proto=model)
    return {processor.id_to_piece(index) for index in range(processor.get_piece_size())}


def test_only_the_training_split_teaches_pieces(table, model_file):
    assert not any(character in text for text in training_texts(table, SETTINGS) for character in ONLY_IN_TEST)
    learned = pieces_of(model_file.read_bytes())
    assert not any(character in piece for piece in learned for character in ONLY_IN_TEST)
    # the check can fail: the same rows as training text give pieces of those characters
    as_training = table.assign(split="train")
    learned_from_all = pieces_of(train_model(training_texts(as_training, SETTINGS), SETTINGS, 42))
    assert any(character in piece for piece in learned_from_all for character in ONLY_IN_TEST)
    # and a test sentence's characters reach the vocabulary as unknown pieces only
    tokens = SubwordTokenizer(SETTINGS, model_file).tokenize([ONLY_IN_TEST])[0]["surface"]
    assert not set(tokens) & learned


def test_the_same_corpus_and_options_give_the_same_bytes(table, model_file, tmp_path):
    again = write_model(table, SETTINGS, 42, tmp_path / "again.model")
    assert again.read_bytes() == model_file.read_bytes()


@pytest.mark.parametrize("text", ["京都に行って湯豆腐を食べました。", "iPhone 15 Pro を買った!", "  二つの  空白  ",
                                  "鸚鵡と薔薇", ""])
def test_pieces_join_into_the_normalised_text(model_file, text):
    tokens = make_tokenizer(TokenizeConfig(method="sentencepiece", sp_model=str(model_file))).tokenize([text])[0]
    assert detokenize(tokens["surface"]) == text
    assert tokens["lemma"] == tokens["norm"] == tokens["surface"]
    assert tokens["pos"] == ["X"] * len(tokens["surface"])
    assert not tokens["surface"] or not tokens["surface"][0].startswith(SPACE_MARK) or text.startswith(" ")


def test_bpe_learns_a_different_model(table, model_file):
    bpe = TokenizeConfig(method="sentencepiece", sp_model_type="bpe", sp_vocab_size=2000)
    model = train_model(training_texts(table, bpe), bpe, 42)
    assert model != model_file.read_bytes()
    assert sentencepiece.SentencePieceProcessor(model_proto=model).get_piece_size() == 2000


def test_a_vocabulary_larger_than_the_corpus_allows_learns_the_most_it_can(caplog):
    settings = TokenizeConfig(method="sentencepiece", sp_vocab_size=8000)
    with caplog.at_level(logging.WARNING, logger="pipeline.text.subwords"):
        model = train_model(["京都に行った。", "東京で猫を見た。"] * 3, settings, 42)
    size = sentencepiece.SentencePieceProcessor(model_proto=model).get_piece_size()
    assert 4 < size < 8000
    assert f"tokenize.sp_vocab_size = 8000 is more than the training split allows; learning {size} pieces" \
        in caplog.text


def test_a_vocabulary_smaller_than_the_characters_names_the_key_and_the_minimum(table):
    with pytest.raises(PipelineError, match=r"tokenize.sp_vocab_size = 300 is smaller than the \d+ pieces"):
        train_model(training_texts(table, SETTINGS), TokenizeConfig(method="sentencepiece", sp_vocab_size=300), 42)


def test_no_training_text_and_no_model_file_are_one_line_errors(tmp_path):
    with pytest.raises(PipelineError, match="the training split has no text"):
        train_model(["", " "], SETTINGS, 42)
    with pytest.raises(PipelineError, match="tokenize.sp_model = .*: no such file"):
        write_model(pd.DataFrame({"text": [], "split": []}),
                    TokenizeConfig(method="sentencepiece", sp_model=str(tmp_path / "missing.model")), 42,
                    tmp_path / "out.model")
    with pytest.raises(PipelineError, match="run `pipeline tokenize`"):
        make_tokenizer(TokenizeConfig(method="sentencepiece"))


@pytest.mark.parametrize(("key", "value", "fragment"), [
    ("sp_model_type", "unigrm", "did you mean 'unigram'"),
    ("sp_model_type", "wordpiece", "one of 'unigram', 'bpe'"),
    ("sp_vocab_size", 1, ">= 2"),
])
def test_bad_subword_settings_name_the_key(key, value, fragment):
    data = {"tokenize": {"method": "sentencepiece", key: value}}
    with pytest.raises(PipelineError, match=f"tokenize.{key}") as caught:
        config_module.from_dict(data).validate()
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_piece_vectors_come_from_the_word_or_the_characters(tmp_path):
    """A piece that is a word keeps the word's vector (▁ dropped); any other piece is the mean of its parts."""
    lookup, _ = ginza_lookup("ja_ginza")
    pieces = ["京都", f"{SPACE_MARK}京都", "に行", "った"]
    tokens = pd.DataFrame({"surface": [pieces], "lemma": [pieces], "norm": [pieces], "pos": [["X"] * 4],
                           "split": ["train"], "label": ["a"]})
    config = Config(tokenize=TokenizeConfig(method="sentencepiece"),
                    vectorize=VectorizeConfig(unknown_init="random"))  # pieces use their characters regardless
    vectorize(config, tokens, tmp_path / "v.json", tmp_path / "e.npy", tmp_path / "i.npz")
    vocab, matrix = Vocabulary.load(tmp_path / "v.json"), np.load(tmp_path / "e.npy")
    row = {piece: matrix[vocab.index[piece]] for piece in pieces}
    np.testing.assert_allclose(row["京都"], lookup("京都"))
    np.testing.assert_allclose(row[f"{SPACE_MARK}京都"], lookup("京都"))
    np.testing.assert_allclose(row["に行"], (lookup("に") + lookup("行")) / 2, rtol=1e-6)
    np.testing.assert_allclose(row["った"], (lookup("っ") + lookup("た")) / 2, rtol=1e-6)
