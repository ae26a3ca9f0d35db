"""The ``vectorize`` stage: vocabulary, embedding matrix and id sequences.

The embedding matrix comes from :mod:`pipeline.text.embeddings` (the ``ja_ginza`` vectors, with fallbacks);
with ``vectorize.vector_words`` the vocabulary also takes that table's most frequent words.

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
from pipeline.text.embeddings import embedding_matrix, ginza_lookup, vector_table_words
from pipeline.text.encoded import RaggedIds
from pipeline.text.subwords import SPACE_MARK
from pipeline.text.vocab import UNK_ID, Vocabulary

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test", UNLABELED)
VOCABULARY_SPLITS = ("train", UNLABELED)  # the splits the vocabulary and the word forms are counted on

DEFAULT_EMBEDDING_DIM = 128  # without pretrained vectors


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
