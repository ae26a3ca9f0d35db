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

``tokens.parquet`` is read twice, a batch of rows at a time (any number of row groups): once to count the words
and their forms (:func:`count_tokens`), once to write the ids (:func:`encode_splits`) into an uncompressed
``ids.npz`` that training memory-maps (:mod:`pipeline.text.encoded`). Memory holds the counts and one batch.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import io as artifact_io
from pipeline import seeds
from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.progress import Progress
from pipeline.text import encoded
from pipeline.text.corpora import UNLABELED
from pipeline.text.encoded import RaggedIds
from pipeline.text.subwords import SPACE_MARK
from pipeline.text.tokenize import load_nlp
from pipeline.text.vocab import PAD_ID, UNK_ID, Vocabulary

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test", UNLABELED)
VOCABULARY_SPLITS = ("train", UNLABELED)  # the splits the vocabulary and the word forms are counted on

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


class WordForms:
    """Per word of the vocabulary's field, how often each (norm, lemma) pair went with it, counted a sentence
    at a time: the word counts the vocabulary keeps and the forms a word without a vector falls back on."""

    def __init__(self) -> None:
        self.pairs: dict[str, Counter] = defaultdict(Counter)

    def add(self, words: Sequence[str], norms: Sequence[str], lemmas: Sequence[str]) -> None:
        """Count one sentence's tokens: ``words`` of the field, with their norms and lemmas."""
        pairs = self.pairs
        for word, norm, lemma in zip(words, norms, lemmas, strict=False):
            pairs[word][(norm, lemma)] += 1

    def counts(self) -> Counter:
        """How often each word occurred."""
        return Counter({word: sum(counter.values()) for word, counter in self.pairs.items()})

    def most_frequent(self) -> dict[str, tuple[str, str]]:
        """Each word's most frequent (norm, lemma) pair (ties: the one seen first)."""
        return {word: counter.most_common(1)[0][0] for word, counter in self.pairs.items()}


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


TOKEN_BATCH_ROWS = 8192  # rows of tokens.parquet read at a time


def token_batches(tokens: Path | pd.DataFrame, columns: Sequence[str]) -> Iterator[pa.RecordBatch]:
    """``columns`` of the tokens table, at most :data:`TOKEN_BATCH_ROWS` rows at a time.

    ``tokens`` is ``tokens.parquet`` (read a batch at a time, however many row groups it has) or the same
    table in memory.
    """
    if isinstance(tokens, pd.DataFrame):
        yield from pa.Table.from_pandas(tokens[list(columns)], preserve_index=False).to_batches(TOKEN_BATCH_ROWS)
    else:
        yield from artifact_io.parquet_file(tokens).iter_batches(batch_size=TOKEN_BATCH_ROWS, columns=list(columns))


@dataclass
class TokenCounts:
    """What the first pass over the tokens table finds.

    Attributes:
        forms: the vocabulary splits' (train, unlabeled) words and their forms.
        labels: the labels of every split but ``unlabeled``, sorted.
        rows: sentences per split of :data:`SPLITS`.
        tokens: tokens per split of :data:`SPLITS`.
    """

    forms: WordForms
    labels: list[str]
    rows: dict[str, int]
    tokens: dict[str, int]


def count_tokens(tokens: Path | pd.DataFrame, field: str, progress: Progress | None = None) -> TokenCounts:
    """Read the tokens table once, a batch at a time; ``progress`` counts its rows."""
    forms, labels = WordForms(), set()
    rows, token_counts = dict.fromkeys(SPLITS, 0), dict.fromkeys(SPLITS, 0)
    for batch in token_batches(tokens, list(dict.fromkeys([field, "norm", "lemma", "label", "split"]))):
        splits = batch.column("split").to_pylist()
        lengths = pc.list_value_length(batch.column(field)).to_pylist()
        for split, length in zip(splits, lengths, strict=True):
            if split in rows:
                rows[split] += 1
                token_counts[split] += length or 0
        labels.update(label for label, split in zip(batch.column("label").to_pylist(), splits, strict=True)
                      if split != UNLABELED)
        vocabulary_rows = pc.is_in(batch.column("split"), pa.array(VOCABULARY_SPLITS))
        if pc.any(vocabulary_rows).as_py():
            part = batch.filter(vocabulary_rows)
            for words, norms, lemmas in zip(*(part.column(name).to_pylist() for name in (field, "norm", "lemma")),
                                            strict=True):
                forms.add(words, norms, lemmas)
        if progress is not None:
            progress.update(batch.num_rows)
    return TokenCounts(forms, sorted(labels), rows, token_counts)


class NpyAppender:
    """An ``.npy`` file of ``length`` items of ``dtype``, written front to back by :meth:`append`.

    Plain writes, not a memory map: the pages a memory map writes count in the process's resident memory until
    the map is dropped (``vectorize`` on 5M sentences grew by the 524 MB of its ids), the pages of a plain
    write belong to the page cache. The header is the one ``np.save`` writes for the whole array.
    """

    def __init__(self, path: Path, dtype: Any, length: int) -> None:
        self.path, self.dtype, self.length, self.written = path, np.dtype(dtype), length, 0
        self.handle = open(path, "wb")
        np.lib.format.write_array_header_1_0(self.handle, {"descr": np.lib.format.dtype_to_descr(self.dtype),
                                                           "fortran_order": False, "shape": (length,)})

    def append(self, values: Any) -> None:
        """Write ``values`` after what is written."""
        values = np.ascontiguousarray(values, dtype=self.dtype)
        self.handle.write(values.tobytes())
        self.written += len(values)

    def close(self) -> None:
        """Close the file; every item the header promises must be written."""
        self.handle.close()
        if self.written != self.length:
            raise PipelineError(f"{self.path}: wrote {self.written} of {self.length} items; the tokens table "
                                "changed while it was read; run `pipeline vectorize --force`")


def encode_splits(tokens: Path | pd.DataFrame, field: str, vocab: Vocabulary, counts: TokenCounts, ids_path: Path,
                  progress: Progress | None = None, fallbacks: tuple[str, ...] = ()) -> None:
    """Write ``ids_path`` (:mod:`pipeline.text.encoded`) in a second pass over the tokens table, a batch at a time.

    Per split of :data:`SPLITS`: ``<split>_ids`` (int32, every sentence's ids one after the other),
    ``<split>_offsets`` (int64, sentences + 1) and ``<split>_labels`` (int32 label ids, -1 for none); and
    ``labels`` (the label names). The arrays are appended to ``.npy`` files next to ``ids_path``
    (:class:`NpyAppender`, sized by the first pass), which then go into the archive: memory holds one batch.
    ``fallbacks``: the fields a word outside the vocabulary is looked up under next
    (:meth:`Vocabulary.encode_forms`, ``vectorize.form_fallback``).
    """
    label_index = {label: index for index, label in enumerate(counts.labels)}
    index = vocab.index
    ids_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{ids_path.name}.", dir=ids_path.parent) as folder:
        members = {"labels": Path(folder) / "labels.npy"}
        np.save(members["labels"], np.array(counts.labels, dtype=str))
        files, written = {}, {}
        try:
            for split in SPLITS:
                for name, dtype, length in (("ids", np.int32, counts.tokens[split]),
                                            ("offsets", np.int64, counts.rows[split] + 1),
                                            ("labels", np.int32, counts.rows[split])):
                    members[f"{split}_{name}"] = Path(folder) / f"{split}_{name}.npy"
                    files[split, name] = NpyAppender(members[f"{split}_{name}"], dtype, length)
                files[split, "offsets"].append([0])
                written[split] = 0  # tokens written
            for batch in token_batches(tokens, list(dict.fromkeys([field, *fallbacks, "label", "split"]))):
                for split in SPLITS:
                    rows = pc.equal(batch.column("split"), split)
                    if not pc.any(rows).as_py():
                        continue
                    words = pc.filter(batch.column(field), rows)
                    lengths = pc.list_value_length(words).fill_null(0).to_numpy()
                    flat = pc.list_flatten(words).to_pylist()
                    if fallbacks:  # norm, then lemma, for a word outside the vocabulary
                        others = [pc.list_flatten(pc.filter(batch.column(name), rows)).to_pylist()
                                  for name in fallbacks]
                        files[split, "ids"].append(np.array(vocab.encode_forms(flat, *others), dtype=np.int32))
                    else:
                        files[split, "ids"].append(np.fromiter(map(index.get, flat, repeat(UNK_ID)),
                                                               dtype=np.int32, count=len(flat)))
                    files[split, "offsets"].append(written[split] + np.cumsum(lengths))
                    files[split, "labels"].append([label_index.get(label, -1) for label in
                                                   pc.filter(batch.column("label"), rows).to_pylist()])
                    written[split] += len(flat)
                if progress is not None:
                    progress.update(batch.num_rows)
        finally:
            for appender in files.values():
                appender.handle.close()
        for appender in files.values():
            appender.close()
        encoded.write_npz(ids_path, members)


def vectorize(config: Config, tokens: Path | pd.DataFrame, vocab_path: Path, embeddings_path: Path,
              ids_path: Path, specials: tuple[str, ...] = ()) -> dict:
    """Build the vocabulary, embedding matrix and id arrays of ``tokens`` (``tokens.parquet``, or its table in
    memory); write them atomically.

    The vocabulary comes from the training split and the unlabelled text (``corpus.unlabeled_path``,
    split ``unlabeled``), never from validation or test sentences. Two passes over the table, a batch of rows
    at a time (:func:`count_tokens`, :func:`encode_splits`): memory holds the word counts and one batch,
    whatever the corpus's size.
    """
    settings = config.vectorize
    field = settings.token_field
    rows = len(tokens) if isinstance(tokens, pd.DataFrame) else pq.ParquetFile(tokens).metadata.num_rows
    with Progress(rows, "vectorize: counting words", "sentences", log) as progress:
        counts = count_tokens(tokens, field, progress)
    vocab = Vocabulary.from_counts(counts.forms.counts(), settings.min_count, settings.max_size, specials)
    if len(vocab) <= 2 + len(specials):
        raise PipelineError(f"{ids_path.parent}: the training split has no words (vectorize.min_count = "
                            f"{settings.min_count}); lower min_count or check the corpus")
    if settings.vector_words:  # words training never saw keep their vectors at test and classify time
        if config.tokenize.method == "sentencepiece":
            raise PipelineError(f"vectorize.vector_words = {settings.vector_words}: a vocabulary of pieces takes no "
                                'words; set it to 0 or tokenize.method = "ginza"')
        size = len(vocab)
        vocab = vocab.extended(vector_table_words(config.tokenize.model, settings.vector_words))
        log.info("vocabulary: %d words of the training split, %d more from the %s vector table "
                 "(vectorize.vector_words)", size - 2 - len(specials), len(vocab) - size, config.tokenize.model)
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
    with Progress(len(vocab), "vectorize: word vectors", "words", log) as progress:
        matrix, coverage = embedding_matrix(vocab, counts.forms.most_frequent(), lookup, dimension,
                                            seeds.rng(config.seed, "unknown_vectors"), settings.unknown_vector_scale,
                                            unknown_init, progress)
    if settings.vectors == "ja_ginza":
        log.info("vector coverage: %.1f%% of %d vocabulary entries, %.1f%% of training tokens (%s)",
                 100 * coverage.entries, len(vocab) - 2, 100 * coverage.tokens, coverage.by_source)
    if unknown_init == "characters":
        log.info("words without a vector: %d start from their characters' vectors (%.1f%% of training tokens), "
                 "%d entries random (<unk> and special tokens included)", coverage.from_characters,
                 100 * coverage.characters_tokens, coverage.random)
    with Progress(sum(counts.rows.values()), "vectorize: ids", "sentences", log) as progress:
        encode_splits(tokens, field, vocab, counts, ids_path, progress, settings.fallback_fields)
    vocab.save(vocab_path)
    with artifact_io.atomic_path(embeddings_path, suffix=".npy") as temporary:
        np.save(temporary, matrix)
    return {"vocabulary_size": len(vocab), "embedding_dim": dimension, "coverage": coverage.to_dict()}


@dataclass
class EncodedSplits:
    """What ``vectorize`` wrote, read back: id sequences and label ids per split.

    ``sequences[split]`` is a :class:`RaggedIds` view over the ids in ``ids.npz``: indexing reads one sentence's
    ids from the file (:class:`~pipeline.text.encoded.StoredArray`), and nothing is read until a batch asks for
    it, so the ids never take memory of their own (the offsets, 8 bytes a sentence, are mapped).
    """

    labels: list[str]
    sequences: dict[str, RaggedIds]  # train, validation, test and unlabeled (label id -1)
    targets: dict[str, np.ndarray]

    @classmethod
    def load(cls, path: Path) -> EncodedSplits:
        if not path.is_file():
            raise PipelineError(f"{path}: not found; run `pipeline vectorize` first")
        data = encoded.load_npz(path, read_on_demand=lambda name: name.endswith("_ids"))
        splits = [split for split in SPLITS if f"{split}_ids" in data]
        return cls(
            labels=[str(label) for label in data["labels"]],
            sequences={s: RaggedIds(data[f"{s}_ids"], data[f"{s}_offsets"]) for s in splits},
            targets={s: data[f"{s}_labels"] for s in splits},
        )
