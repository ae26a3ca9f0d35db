"""Subword inputs of the classifier: hashed character ids per token and a hashed bag of n-grams.

Real short texts are full of names, products, katakana loanwords, numbers and English words that
neither the vocabulary nor the ``ja_ginza`` vectors know. Two signals reach them:

* **characters per token** (Ling et al. 2015; Lample et al. 2016): ``char_ids``
  ``(timesteps, max_chars)``, the first ``model.max_chars`` characters of each token's surface
  form, read by a character encoder (:mod:`pipeline.layers.char_encoder`);
* **a bag of n-grams** (fastText, Joulin et al. 2017): ``ngram_ids`` ``(n,)``, character 1–3-grams
  of the sentence and/or word uni- and bigrams, averaged by the wide head of the classifier.

Every string is mapped to an id by a stable hash, ``crc32(UTF-8 bytes) % buckets + 1`` (0 is
padding), never Python's salted ``hash()``: the ids are the same in every process, so a run folder
encodes any text, words never seen in training included, with no extra vocabulary file.

The sentence's characters are its tokens' surface forms joined (whitespace dropped), cut after the
first ``train.max_length`` tokens: the tokenizer's filters and the truncation apply to the
character n-grams exactly as they apply to the words, at training and at classify time alike.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError
from pipeline.sections import ModelConfig

CHAR_ORDERS = (1, 2, 3)  # character n-gram lengths of the bag (the TF-IDF char 1-3-gram baseline's)
WORD_FIELD = "surface"  # the characters a token is written with, whatever vectorize.token_field says


def uses_subword_features(settings: ModelConfig) -> bool:
    """Whether the classifier takes ``char_ids`` and/or ``ngram_ids`` besides ``token_ids``."""
    return settings.char_encoder != "none" or settings.ngram_features != "none"


def stable_id(piece: str, buckets: int) -> int:
    """``piece``'s id in ``[1, buckets]``: crc32 of its UTF-8 bytes, the same in every process."""
    return zlib.crc32(piece.encode("utf-8")) % buckets + 1


def char_ids(words: Sequence[str], max_chars: int, buckets: int) -> np.ndarray:
    """Hashed ids of the first ``max_chars`` characters of each word, int32 ``(len(words), max_chars)``.

    Shorter words are right-padded with 0; every real character gets an id >= 1, so a row is
    padding exactly when its word is.
    """
    ids = np.zeros((len(words), max_chars), dtype=np.int32)
    for row, word in enumerate(words):
        kept = word[:max_chars]
        ids[row, :len(kept)] = [stable_id(char, buckets) for char in kept]
    return ids


def char_ngrams(text: str, orders: Sequence[int] = CHAR_ORDERS) -> list[str]:
    """Every character n-gram of ``text`` for each length in ``orders``, in order of position."""
    return [text[start:start + order] for order in orders for start in range(len(text) - order + 1)]


def word_ngrams(words: Sequence[str]) -> list[str]:
    """Word unigrams and bigrams (a bigram is the two words joined by a space)."""
    return [*words, *(f"{first} {second}" for first, second in zip(words, words[1:]))]


def ngram_ids(words: Sequence[str], kind: str, buckets: int) -> np.ndarray:
    """Hashed ids of the bag of n-grams ``kind`` (``char``, ``word`` or ``both``), int32 ``(n,)``.

    Character and word n-grams are hashed in separate namespaces (``c:`` and ``w:`` prefixes), so
    the character 京 and the word 京 are different features. Repeated n-grams repeat their id: the
    bag's mean weighs them by count, as fastText does.
    """
    pieces = []
    if kind in ("char", "both"):
        pieces += ["c:" + gram for gram in char_ngrams("".join(words))]
    if kind in ("word", "both"):
        pieces += ["w:" + gram for gram in word_ngrams(words)]
    return np.fromiter((stable_id(piece, buckets) for piece in pieces), dtype=np.int32, count=len(pieces))


def sentence_inputs(settings: ModelConfig, sentences: Sequence[Sequence[str]], max_length: int) -> dict:
    """The extra inputs of :class:`pipeline.text.batches.SequenceBatches` for tokenized ``sentences``.

    Returns ``{"token_inputs": {...}, "bag_inputs": {...}}``: ``char_ids`` (one
    ``(timesteps, max_chars)`` array per sentence) when ``model.char_encoder`` is on and
    ``ngram_ids`` (one ``(n,)`` array per sentence) when ``model.ngram_features`` is on; only the
    first ``max_length`` tokens of a sentence count. Both dicts are empty when both are off.
    """
    token_inputs, bag_inputs = {}, {}
    kept = [list(words[:max_length]) for words in sentences]
    if settings.char_encoder != "none":
        token_inputs["char_ids"] = [char_ids(words, settings.max_chars, settings.char_buckets) for words in kept]
    if settings.ngram_features != "none":
        bag_inputs["ngram_ids"] = [ngram_ids(words, settings.ngram_features, settings.ngram_buckets)
                                   for words in kept]
    return {"token_inputs": token_inputs, "bag_inputs": bag_inputs}


def split_inputs(settings: ModelConfig, tokens_path: Path, sequences: dict[str, list[np.ndarray]],
                 max_length: int) -> dict[str, dict]:
    """:func:`sentence_inputs` for each split of ``sequences`` (its token ids, as ``vectorize`` wrote them).

    The words come from ``work/<corpus>/tokens.parquet`` (read only when a subword feature is on),
    in the order ``vectorize`` encoded them; a sentence whose word count differs from its id count
    means the two files are out of step.
    """
    if not uses_subword_features(settings):
        return {split: sentence_inputs(settings, [], max_length) for split in sequences}
    import pandas as pd

    if not tokens_path.is_file():
        raise PipelineError(f"{tokens_path}: not found; run `pipeline tokenize` first")
    tokens = pd.read_parquet(tokens_path, columns=["split", WORD_FIELD])
    result = {}
    for split, ids in sequences.items():
        words = tokens.loc[tokens["split"] == split, WORD_FIELD].tolist()
        if len(words) != len(ids) or any(len(w) != len(i) for w, i in zip(words, ids)):
            raise PipelineError(f"{tokens_path}: the {split} split does not match the vectorized ids; "
                                "run `pipeline vectorize --force`")
        result[split] = sentence_inputs(settings, words, max_length)
    return result
