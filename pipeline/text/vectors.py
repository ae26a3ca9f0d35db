"""The ``vectorize`` stage: vocabulary, embedding matrix and id sequences.

The embedding matrix, shape ``(vocabulary size, 300)``, starts from the static
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
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import io as artifact_io
from pipeline import seeds
from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.progress import Progress
from pipeline.text.corpora import UNLABELED
from pipeline.text.subwords import SPACE_MARK
from pipeline.text.tokenize import load_nlp
from pipeline.text.vocab import PAD_ID, UNK_ID, Vocabulary

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test", UNLABELED)

DEFAULT_EMBEDDING_DIM = 128  # without pretrained vectors


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


def fallback_forms(table: pd.DataFrame, field: str, progress: Progress | None = None) -> dict[str, tuple[str, str]]:
    """For each word of ``field``, its most frequent (norm, lemma) pair in ``table``; ``progress`` counts rows."""
    pairs: dict[str, Counter] = defaultdict(Counter)
    for words, norms, lemmas in zip(table[field], table["norm"], table["lemma"], strict=False):
        for word, norm, lemma in zip(words, norms, lemmas, strict=False):
            pairs[word][(norm, lemma)] += 1
        if progress is not None:
            progress.update(1)
    return {word: counter.most_common(1)[0][0] for word, counter in pairs.items()}


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


def ginza_lookup(model: str):
    """A ``word -> vector | None`` function over the static vectors of ``model``."""
    nlp = load_nlp(model, ())
    vectors_vocab = nlp.vocab
    if vectors_vocab.vectors.shape[0] == 0:
        raise PipelineError(f"spaCy model '{model}' has no word vectors; set vectorize.vectors = \"none\"")

    def lookup(word: str):
        return vectors_vocab.get_vector(word) if word and vectors_vocab.has_vector(word) else None

    return lookup, int(vectors_vocab.vectors.shape[1])


def pack(sequences: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged id lists -> (flat int32 ids, int64 offsets of length n + 1)."""
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    flat = np.fromiter((i for s in sequences for i in s), dtype=np.int32, count=int(offsets[-1]))
    return flat, offsets


def unpack(flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [flat[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def vectorize(config: Config, tokens: pd.DataFrame, vocab_path: Path, embeddings_path: Path,
              ids_path: Path, specials: tuple[str, ...] = ()) -> dict:
    """Build the vocabulary, embedding matrix and id arrays; write them atomically.

    The vocabulary comes from the training split and the unlabelled text (``corpus.unlabeled_path``,
    split ``unlabeled``), never from validation or test sentences.
    """
    settings = config.vectorize
    field = settings.token_field
    train = tokens[tokens["split"].isin(("train", UNLABELED))]
    vocab = Vocabulary.build(train[field], settings.min_count, settings.max_size, specials)
    if len(vocab) <= 2 + len(specials):
        raise PipelineError(f"{ids_path.parent}: the training split has no words (vectorize.min_count = "
                            f"{settings.min_count}); lower min_count or check the corpus")
    if settings.vectors == "ja_ginza":
        lookup, dimension = ginza_lookup(config.tokenize.model)
        if config.model.embedding_dim not in (0, dimension):
            raise PipelineError(f"model.embedding_dim = {config.model.embedding_dim} but the ja_ginza vectors have "
                                f"{dimension} dimensions; set it to 0 or {dimension}, or vectorize.vectors = \"none\"")
    else:
        lookup, dimension = (lambda word: None), config.model.embedding_dim or DEFAULT_EMBEDDING_DIM
    unknown_init = settings.unknown_init
    if config.tokenize.method == "sentencepiece" and settings.vectors == "ja_ginza":  # pieces: from characters
        word_lookup, unknown_init = lookup, "characters"

        def lookup(piece: str):
            return word_lookup(piece.replace(SPACE_MARK, ""))
    with Progress(len(train), "vectorize: word forms", "sentences", log) as progress:
        forms = fallback_forms(train, field, progress)
    with Progress(len(vocab), "vectorize: word vectors", "words", log) as progress:
        matrix, coverage = embedding_matrix(vocab, forms, lookup, dimension, seeds.rng(config.seed, "unknown_vectors"),
                                            settings.unknown_vector_scale, unknown_init, progress)
    if settings.vectors == "ja_ginza":
        log.info("vector coverage: %.1f%% of %d vocabulary entries, %.1f%% of training tokens (%s)",
                 100 * coverage.entries, len(vocab) - 2, 100 * coverage.tokens, coverage.by_source)
    if unknown_init == "characters":
        log.info("words without a vector: %d start from their characters' vectors (%.1f%% of training tokens), "
                 "%d entries random (<unk> and special tokens included)", coverage.from_characters,
                 100 * coverage.characters_tokens, coverage.random)
    labels = sorted(label for label in tokens.loc[tokens["split"] != UNLABELED, "label"].unique())
    label_index = {label: i for i, label in enumerate(labels)}
    arrays = {"labels": np.array(labels, dtype=str)}
    with Progress(int(tokens["split"].isin(SPLITS).sum()), "vectorize: ids", "sentences", log) as progress:
        for split in SPLITS:
            part = tokens[tokens["split"] == split]
            sequences = []
            for words in part[field]:
                sequences.append(vocab.encode(words))
                progress.update(1)
            arrays[f"{split}_ids"], arrays[f"{split}_offsets"] = pack(sequences)
            arrays[f"{split}_labels"] = part["label"].map(label_index).fillna(-1).to_numpy(dtype=np.int32)
    vocab.save(vocab_path)
    with artifact_io.atomic_path(embeddings_path, suffix=".npy") as temporary:
        np.save(temporary, matrix)
    with artifact_io.atomic_path(ids_path, suffix=".npz") as temporary:
        np.savez(temporary, **arrays)
    return {"vocabulary_size": len(vocab), "embedding_dim": dimension, "coverage": coverage.to_dict()}


@dataclass
class EncodedSplits:
    """What ``vectorize`` wrote, read back: id sequences and label ids per split."""

    labels: list[str]
    sequences: dict[str, list[np.ndarray]]  # train, validation, test and unlabeled (label id -1)
    targets: dict[str, np.ndarray]

    @classmethod
    def load(cls, path: Path) -> EncodedSplits:
        if not path.is_file():
            raise PipelineError(f"{path}: not found; run `pipeline vectorize` first")
        with np.load(path, allow_pickle=False) as data:
            splits = [split for split in SPLITS if f"{split}_ids" in data]
            return cls(
                labels=[str(label) for label in data["labels"]],
                sequences={s: unpack(data[f"{s}_ids"], data[f"{s}_offsets"]) for s in splits},
                targets={s: data[f"{s}_labels"] for s in splits},
            )
