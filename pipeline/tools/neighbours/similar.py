"""Nearest words by cosine similarity, in the ``ja_ginza`` vectors or a trained run's embedding (lecture 004).

Cosine similarity of word vectors ``u`` and ``v``::

    cos(u, v) = u · v / (‖u‖ ‖v‖)

Every row of the table is divided by its norm once, ``Û = U / ‖U‖`` ``(rows, dim)``; the
similarities of a query row ``q`` with all rows are then one matrix-vector product
``Û q̂`` ``(rows,)``, and the top N come from ``argpartition``, not a loop over words.

The ``ja_ginza`` table is pruned: 480k keys share 20k rows (a removed word points to the row of
its nearest kept word, so 風邪薬 reads the vector of 薬). A row is named by its first key, the
word it was kept for; a key whose hash has no string in the vocabulary is skipped. A query found
in a shared row says so (``row_word``). A query not in the table is tried under its Sudachi
normalised form, then its lemma (すし -> 寿司), and the answer names the form used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError
from pipeline.text.vocab import PAD_ID, UNK_ID


@dataclass
class VectorTable:
    """Named rows of unit vectors; ``index`` maps every known word (aliases too) to its row."""

    row_words: list[str]  # the name of each row
    unit_vectors: np.ndarray  # (rows, dim) float32, each row divided by its norm (zero rows stay zero)
    index: dict[str, int]
    source: str  # "ja_ginza" or the run folder
    excluded_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # never neighbours
    tokenizer_model: str = "ja_ginza"  # whose tokenizer gives a missing word's norm and lemma

    @classmethod
    def from_matrix(cls, row_words: list[str], matrix: np.ndarray, index: dict[str, int], source: str,
                    excluded_rows=(), tokenizer_model: str = "ja_ginza") -> VectorTable:
        matrix = np.asarray(matrix, dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        unit = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
        return cls(row_words, unit, index, source, np.asarray(excluded_rows, dtype=np.int64), tokenizer_model)


def ginza_table(model: str = "ja_ginza") -> VectorTable:
    """The static vectors of the spaCy ``model``; rows named by their first key that has a string."""
    from pipeline.text.tokenize import load_nlp

    vocab = load_nlp(model, ()).vocab
    vectors, strings = vocab.vectors, vocab.strings
    if vectors.shape[0] == 0:
        raise PipelineError(f"spaCy model '{model}' has no word vectors; pass --model saved_models/<run>")
    index: dict[str, int] = {}
    row_words: list[str | None] = [None] * vectors.shape[0]
    for key, row in vectors.key2row.items():
        try:
            word = strings[int(key)]
        except KeyError:  # a hash without its string: it cannot be printed or asked for
            continue
        index[word] = int(row)
        if row_words[row] is None:
            row_words[row] = word
    nameless = [row for row, word in enumerate(row_words) if word is None]
    names = [word if word is not None else "" for word in row_words]
    return VectorTable.from_matrix(names, np.asarray(vectors.data), index, model, nameless, model)


def run_table(folder: str | Path) -> VectorTable:
    """The input embedding of the run in ``folder`` ``(vocabulary, dim)``, rows named by its vocabulary."""
    from pipeline.runs import load_run

    run = load_run(folder)
    matrix = embedding_weights(run.model, len(run.vocab))
    if matrix is None:
        raise PipelineError(f"{folder}: the model has no embedding of {len(run.vocab)} rows (one per vocabulary "
                            "entry); pass a classifier or generator run folder")
    tokens = run.vocab.tokens
    special = [row for row, token in enumerate(tokens) if row in (PAD_ID, UNK_ID) or token.startswith("<")]
    return VectorTable.from_matrix(list(tokens), matrix, dict(run.vocab.index), str(folder), special,
                                   run.config.tokenize.model)


def embedding_weights(model, vocabulary_size: int) -> np.ndarray | None:
    """The weights of the layer named ``embedding`` or else the first ``(vocabulary_size, dim)`` weight."""
    from pipeline.layers.embedding import PartlyFrozenEmbedding

    layers = sorted(model.layers, key=lambda layer: layer.name != "embedding")  # "embedding" first
    for layer in layers:
        if isinstance(layer, PartlyFrozenEmbedding) and layer.input_dim == vocabulary_size:  # its two parts, whole
            return layer.matrix()
        for weight in layer.weights:
            if len(weight.shape) == 2 and weight.shape[0] == vocabulary_size:
                return np.asarray(weight.numpy() if hasattr(weight, "numpy") else weight)
    return None


def find(table: VectorTable, word: str, forms=None) -> tuple[int, str, str]:
    """``(row, form used, how)``: the word itself, else its norm, else its lemma; a PipelineError if none.

    ``forms(word) -> (norm, lemma)`` is only called when the word itself is not in the table.
    """
    if word in table.index:
        return table.index[word], word, "surface"
    if forms is not None:
        norm, lemma = forms(word)
        for how, form in (("norm", norm), ("lemma", lemma)):
            if form and form in table.index:
                return table.index[form], form, how
    raise PipelineError(f"'{word}' is not in the vectors of {table.source} (nor its normalised form or lemma); "
                        "try another spelling or a single word")


def nearest(table: VectorTable, row: int, top: int, characters_only: bool = False) -> list[tuple[str, float]]:
    """The ``top`` rows most similar to ``row`` by cosine, best first; the row itself is left out."""
    similarity = table.unit_vectors @ table.unit_vectors[row]  # (rows,): cos with every row at once
    similarity[row] = -np.inf
    similarity[table.excluded_rows] = -np.inf
    if characters_only:
        lengths = np.fromiter((len(word) for word in table.row_words), dtype=np.int64, count=len(table.row_words))
        similarity[lengths != 1] = -np.inf
    top = min(top, int(np.isfinite(similarity).sum()))
    best = np.argpartition(-similarity, top - 1)[:top] if top else np.zeros(0, dtype=np.int64)
    best = best[np.argsort(-similarity[best], kind="stable")]
    return [(table.row_words[index], float(similarity[index])) for index in best]


def sudachi_forms(model: str = "ja_ginza"):
    """``word -> (norm, lemma)`` of its first token under the GiNZA tokenizer (loaded on first call)."""
    loaded = {}

    def forms(word: str) -> tuple[str, str]:
        if "nlp" not in loaded:
            from pipeline.text.tokenize import load_nlp

            loaded["nlp"] = load_nlp(model, ())
        tokens = list(loaded["nlp"](word))
        if len(tokens) != 1:  # several words: their norm and lemma say nothing about this string
            return "", ""
        return tokens[0].norm_, tokens[0].lemma_

    return forms


def similar(table: VectorTable, words: list[str], top: int = 10, characters_only: bool = False,
            forms=None) -> list[dict]:
    """One result per query: ``{"query", "found_as", "form", "row_word", "neighbours": [{word, similarity}]}``."""
    results = []
    for word in words:
        row, form, how = find(table, word, forms)
        results.append({"query": word, "found_as": how, "form": form, "row_word": table.row_words[row],
                        "neighbours": [{"word": neighbour, "similarity": round(score, 4)}
                                       for neighbour, score in nearest(table, row, top, characters_only)]})
    return results
