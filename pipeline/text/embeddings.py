"""The embedding matrix of a vocabulary, from the static word vectors of ``ja_ginza``.

The matrix, shape ``(vocabulary size, 300)``, starts from the static
word vectors that ``ja_ginza`` ships. For each vocabulary entry the surface
form is looked up first, then its Sudachi normalised form, then its lemma (the
most frequent ones it had in the training split), so 行っ finds the vector of
行く. Entries with no vector get a small random vector (seeded) whose spread is
``unknown_vector_scale`` times that of the found vectors; the padding row is 0.
With ``unknown_init = "characters"`` such a word first tries its pieces: the mean
vector of its longest substrings that have one (湯豆腐 -> 湯 + 豆腐; the table holds
most single kanji and kana), as fastText builds a vector for an unseen word from
its character n-grams; only a word with no such piece gets a random vector.
SentencePiece pieces (``tokenize.method = "sentencepiece"``, :mod:`pipeline.text.subwords`) always take
this path, their ``▁`` dropped: a piece that is a word (京都) gets that word's vector, any other (った, に行)
the mean vector of its longest known substrings, single characters at worst.

:func:`vector_table_words` gives the table's most frequent words, for a vocabulary that holds more than the
training words (``vectorize.vector_words``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from pipeline.errors import PipelineError
from pipeline.progress import Progress
from pipeline.text.tokenize import load_nlp
from pipeline.text.vocab import PAD_ID, UNK_ID, Vocabulary


@dataclass(frozen=True)
class Coverage:
    """How much of the vocabulary found a pretrained vector."""

    entries: float  # share of vocabulary words (pad/unk excluded) with a vector
    tokens: float  # share of training tokens whose word has a vector
    by_source: dict  # words found via surface / norm / lemma
    from_characters: int = 0  # words without a vector that start from their pieces' vectors
    characters_tokens: float = 0.0  # share of training tokens whose word starts from its pieces' vectors
    random: int = 0  # entries with a random vector (<unk> and special tokens included)

    def to_dict(self) -> dict:
        return {"entries": self.entries, "tokens": self.tokens, "by_source": self.by_source,
                "from_characters": self.from_characters, "characters_tokens": self.characters_tokens,
                "random": self.random}


def character_vector(word: str, lookup) -> np.ndarray | None:
    """The mean vector of ``word``'s pieces, or None when no piece has a vector.

    Left to right, the longest substring shorter than the word that ``lookup`` knows is taken
    (greedy longest match, as dictionary segmenters do), then the search goes on after it; a
    character without any vector is skipped. 坂本龍馬 -> 坂本 + 龍馬, 撮っ -> 撮 + っ.
    """
    vectors, start = [], 0
    while start < len(word):
        longest = min(len(word) - start, len(word) - 1)  # the whole word has no vector
        for end in range(start + longest, start, -1):
            vector = lookup(word[start:end])
            if vector is not None:
                vectors.append(vector)
                start = end
                break
        else:
            start += 1
    return np.mean(vectors, axis=0) if vectors else None


def embedding_matrix(vocab: Vocabulary, forms: dict[str, tuple[str, str]], lookup, dimension: int,
                     rng: np.random.Generator, unknown_scale: float,
                     unknown_init: str = "random", progress: Progress | None = None) -> tuple[np.ndarray, Coverage]:
    """Build the ``(len(vocab), dimension)`` float32 matrix; ``lookup(word)`` returns a vector or None.

    ``unknown_init = "characters"``: a word found under none of its forms starts from
    :func:`character_vector`; special tokens (no training count, e.g. ``<s>``) stay random.
    ``progress`` counts the vocabulary entries done (with ``"characters"``, an entry without a vector
    once its pieces were tried), ``len(vocab)`` in all.
    """
    matrix = np.zeros((len(vocab), dimension), dtype=np.float32)
    found = np.zeros(len(vocab), dtype=bool)
    sources: Counter = Counter()
    characters = unknown_init == "characters"
    for index, word in enumerate(vocab.tokens):
        if index not in (PAD_ID, UNK_ID):
            norm, lemma = forms.get(word, (word, word))
            for source, key in (("surface", word), ("norm", norm), ("lemma", lemma)):
                vector = lookup(key)
                if vector is not None:
                    matrix[index], found[index] = vector, True
                    sources[source] += 1
                    break
        if progress is not None and (found[index] or not characters):
            progress.update(1)
    spread = float(matrix[found].std()) if found.any() else 0.1
    from_characters = np.zeros(len(vocab), dtype=bool)
    if characters:
        for index in np.flatnonzero(~found):
            word = vocab.tokens[index]  # <pad>, <unk> and special tokens have no count: they stay as they are
            vector = character_vector(word, lookup) if vocab.counts.get(word) else None
            if vector is not None:
                matrix[index], from_characters[index] = vector, True
            if progress is not None:
                progress.update(1)
    missing = ~(found | from_characters)
    missing[PAD_ID] = False
    matrix[missing] = rng.normal(0.0, unknown_scale * spread, size=(int(missing.sum()), dimension))
    words = len(vocab) - 2
    counts = np.array([vocab.counts.get(word, 0) for word in vocab.tokens], dtype=np.float64)
    coverage = Coverage(
        entries=float(found.sum() / words) if words else 0.0,
        tokens=float(counts[found].sum() / counts.sum()) if counts.sum() else 0.0,
        by_source=dict(sources),
        from_characters=int(from_characters.sum()),
        characters_tokens=float(counts[from_characters].sum() / counts.sum()) if counts.sum() else 0.0,
        random=int(missing.sum()),
    )
    return matrix, coverage


def vector_table_words(model: str, limit: int) -> list[str]:
    """The words owning the first ``limit`` rows of ``model``'s vector table, in row order.

    ``ja_ginza`` keeps 20,000 rows for about 480,000 words: row ``r`` is the vector of its ``r``-th most frequent
    word, and rarer words were mapped to the nearest row when the table was pruned (spaCy's ``prune_vectors``). A
    row's owner is the first word its key table lists for it: the word whose frequency rank is the row (a test
    checks this), so the first ``limit`` rows give the ``limit`` most frequent words.
    """
    vocabulary = load_nlp(model, ()).vocab
    owners: dict[int, int] = {}
    for key, row in vocabulary.vectors.key2row.items():
        if row < limit:
            owners.setdefault(int(row), key)
    return [vocabulary.strings[owners[row]] for row in sorted(owners)]


def ginza_lookup(model: str):
    """A ``word -> vector | None`` function over the static vectors of ``model``."""
    nlp = load_nlp(model, ())
    vectors_vocab = nlp.vocab
    if vectors_vocab.vectors.shape[0] == 0:
        raise PipelineError(f"spaCy model '{model}' has no word vectors; set vectorize.vectors = \"none\"")

    def lookup(word: str):
        return vectors_vocab.get_vector(word) if word and vectors_vocab.has_vector(word) else None

    return lookup, int(vectors_vocab.vectors.shape[1])
