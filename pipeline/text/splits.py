"""The train/validation/test split: drawn by document (:class:`DocumentTally`, :func:`assign_splits`), or the
corpus's own: split names in a column or in file names, and its checks.

``prepare`` draws the split when the corpus brings none: each document goes whole to one split, stratified by
its main label, from counts of sentences per document that a corpus read a chunk at a time can gather
(:class:`DocumentTally`), so that the rows themselves need not be in memory.

A user who already has a test set keeps it: a table corpus names each row's split in a column
(``corpus.split_column``), or ``corpus.path`` is a folder with one table per split
(``train.csv``, ``dev.tsv``, ``news_test.jsonl``); a plain-text folder names its files the same way
(``ptb.train.txt``, ``ptb.valid.txt``, ``ptb.test.txt``). ``prepare`` then keeps every row in the
split it was given: duplicates are dropped only within a split, and a validation or test sentence
that repeats a training sentence stays (with a warning), so ``evaluate`` scores exactly the user's
test rows. :func:`check_splits` rejects a split the pipeline cannot use.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.errors import PipelineError

log = logging.getLogger(__name__)

# how users write a split's name (compared lower-cased) -> the pipeline's name
SPLIT_NAMES = {"train": "train", "valid": "validation", "validation": "validation", "dev": "validation",
               "test": "test"}
SPLIT_CHOICES = "train, validation (or valid, dev) or test"


def split_name(value: str) -> str | None:
    """``train``/``validation``/``test`` for a split name as users write it (``Train``, ``dev``, ...), else None."""
    return SPLIT_NAMES.get(value.strip().lower())


def predefined_split(path: Path) -> str | None:
    """The split a file name gives: ``ptb.train.txt``, ``valid.txt``, ``news-dev.jsonl``, ``test.csv``; else None.

    The name is cut at ``.``, ``-`` and ``_``; the first piece that names a split wins.
    """
    parts = path.stem.lower().replace("-", ".").replace("_", ".").split(".")
    return next((split for split in map(split_name, parts) if split), None)


def split_files(files: list[Path]) -> dict[Path, str]:
    """The files among ``files`` whose names give a split, with that split; the others are left out."""
    found = {path: predefined_split(path) for path in files}
    return {path: split for path, split in found.items() if split}


def deduplicate_within_splits(table: pd.DataFrame) -> pd.DataFrame:
    """Drop repeated texts inside each split (the first stays); warn about sentences shared across splits.

    A validation or test row that repeats a training sentence is kept: the user's test set is scored
    as given, but a model that memorised the training text looks better on those rows.
    """
    table = table.drop_duplicates(subset=["split", "text"], keep="first")
    training_texts = set(table.loc[table["split"] == "train", "text"])
    for split in ("validation", "test"):
        repeated = int((table["split"].eq(split) & table["text"].isin(training_texts)).sum())
        if repeated:
            log.warning("%d %s row(s) repeat a training sentence; kept in %s as the corpus splits them",
                        repeated, split, split)
    return table


def check_splits(table: pd.DataFrame, where: str, how: str) -> None:
    """Errors for a given split the pipeline cannot use: no training rows, no test rows, a label unseen in training.

    Args:
        table: cleaned rows with ``text``, ``label``, ``doc_id``, ``split`` and optionally ``source``
            (``file:line`` of each row, named in the error).
        where: the corpus path, for errors about the whole corpus.
        how: how the rows got their split, e.g. ``"column 'split' (corpus.split_column)"``.
    """
    counts = table["split"].value_counts()
    if not counts.get("train"):
        raise PipelineError(f"{where}: no training rows ({how}); give the training rows the split 'train'")
    if not counts.get("test"):
        raise PipelineError(f"{where}: no test rows ({how}); `pipeline evaluate` scores exactly the test rows, "
                            "so give some rows the split 'test'")
    training_labels = set(table.loc[table["split"] == "train", "label"])
    unseen = table[~table["label"].isin(training_labels)]
    if len(unseen):
        first = unseen.iloc[0]
        place = first["source"] if "source" in unseen.columns else f"{where}: document {first['doc_id']}"
        raise PipelineError(f"{place}: label '{first['label']}' of this {first['split']} row never occurs in the "
                            f"training rows ({len(unseen)} such row(s)); add training rows with that label or "
                            "remove those rows")
    log.info("keeping the corpus's own split (%s): %s", how, counts.to_dict())


def _documents_to_take(sizes: np.ndarray, target: float) -> int:
    """How many documents (in order) bring the running total of sentences nearest ``target``."""
    totals = np.concatenate([[0], np.cumsum(sizes)])
    return int(np.argmin(np.abs(totals - target)))


SPLIT_NAMES_BY_CODE = np.array(["train", "validation", "test"], dtype=object)  # a drawn split's code -> name
PAIR_RECORD = np.dtype([("document", "u8"), ("label", "i4"), ("sentences", "i8"), ("first_row", "i8")])
MERGE_RECORDS = 1 << 16  # pair records gathered before the tally first merges equal ones


def document_hashes(doc_ids: Iterable[str]) -> np.ndarray:
    """The 64-bit hash (uint64, ``pandas.util.hash_array``: the same in every process) of each document id."""
    return pd.util.hash_array(np.asarray(doc_ids, dtype=object))


class DocumentTally:
    """Sentences per (document, label), counted a chunk of rows at a time: what the document-grouped split
    (:meth:`splits`) needs, without the rows.

    A document's main label is its most frequent one (ties: the one seen first in it, as ``value_counts`` orders
    them). Memory: numpy records, no Python object per row or document. A chunk adds one record per (document,
    label) pair it holds (:data:`PAIR_RECORD`: the document's 64-bit hash, the label's code, the pair's sentences
    and the row that first held it: 28 bytes) and each of its documents' hash and id (the ids in an Arrow string
    array); once the records gathered since the last merge outnumber those it kept, records of the same pair
    (or document) are merged. So memory follows the number of (document, label) pairs, not of rows: 250,000
    two-label documents of 20 sentences (5 million rows) take ~20 MB, where a dict and a Counter a document took
    ~105 MB.

    Documents are told apart by the hash of their id (:func:`document_hashes`). Two ids with one hash (about
    n^2 / 2^65 for n documents: 7e-7 for 5 million) would merge two documents: a merge compares the ids of equal
    hashes and stops with an error naming both.
    """

    def __init__(self) -> None:
        self.labels: dict[str, int] = {}  # label -> code, in the order first seen
        self.rows = 0  # rows counted so far
        self._pairs: list[np.ndarray] = []  # PAIR_RECORD arrays, a chunk's (or a merge's) each
        self._document_hashes: list[np.ndarray] = []  # uint64, a chunk's (or a merge's) each
        self._document_ids: list[pa.Array] = []  # the ids of those hashes, in the same order
        self._kept = 0  # pair records left by the last merge

    def add(self, doc_ids: Iterable[str], labels: Iterable[str]) -> None:
        """Count rows: the document and label of each (two sequences of one length)."""
        doc_codes, doc_ids = pd.factorize(np.asarray(doc_ids, dtype=object), use_na_sentinel=False)
        label_codes, label_names = pd.factorize(np.asarray(labels, dtype=object), use_na_sentinel=False)
        if len(doc_codes) != len(label_codes):
            raise ValueError(f"{len(doc_codes)} document ids for {len(label_codes)} labels")
        if not len(doc_codes):
            return
        global_codes = np.array([self.labels.setdefault(name, len(self.labels)) for name in label_names], np.int32)
        pairs, first_row, sentences = np.unique(doc_codes.astype(np.int64) * len(label_names) + label_codes,
                                                return_index=True, return_counts=True)
        hashes = document_hashes(doc_ids)
        records = np.empty(len(pairs), PAIR_RECORD)
        records["document"] = hashes[pairs // len(label_names)]
        records["label"] = global_codes[pairs % len(label_names)]
        records["sentences"] = sentences
        records["first_row"] = self.rows + first_row
        self._pairs.append(records)
        self._document_hashes.append(hashes)
        self._document_ids.append(pa.array(np.asarray(doc_ids, dtype=object), pa.string()))
        self.rows += len(doc_codes)
        if sum(map(len, self._pairs)) - self._kept > max(self._kept, MERGE_RECORDS):  # merged ~log(rows) times
            self._merge()

    def _merge(self) -> tuple[np.ndarray, np.ndarray, pa.Array]:
        """Merge the records of one pair (sentences summed, first row the least) and of one document: (pairs
        sorted by document hash, label, first row; document hashes, sorted; their ids)."""
        pairs = np.concatenate(self._pairs) if self._pairs else np.empty(0, PAIR_RECORD)
        self._pairs = []  # each chunk's records freed before the sorted copy is made
        pairs = pairs[np.lexsort((pairs["first_row"], pairs["label"], pairs["document"]))]
        starts = _group_starts(pairs["document"], pairs["label"])
        merged = pairs[starts]
        merged["sentences"] = np.add.reduceat(pairs["sentences"], starts) if len(pairs) else []
        hashes = np.concatenate(self._document_hashes) if self._document_hashes else np.empty(0, np.uint64)
        ids = pa.concat_arrays(self._document_ids or [pa.array([], pa.string())])
        self._document_hashes, self._document_ids = [], []
        order = np.argsort(hashes, kind="stable")
        hashes, ids = hashes[order], ids.take(order)
        starts = _group_starts(hashes)
        firsts = ids.take(np.repeat(starts, np.diff(np.append(starts, len(hashes)))))
        differ = np.flatnonzero(pc.not_equal(ids, firsts).to_numpy(zero_copy_only=False))
        if len(differ):
            raise PipelineError(f"documents '{firsts[differ[0]]}' and '{ids[differ[0]]}' have the same 64-bit "
                                "hash, so the split would take them for one document; rename one of them")
        hashes, ids = hashes[starts], ids.take(starts)
        self._pairs, self._document_hashes, self._document_ids, self._kept = [merged], [hashes], [ids], len(merged)
        return merged, hashes, ids

    def _documents(self) -> tuple[pa.Array, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per document, in the order of their hashes: (ids, hashes, sentences, main label code, first row), and
        the merged pair records (grouped by document, in that order)."""
        pairs, hashes, ids = self._merge()
        starts = _group_starts(pairs["document"])
        sizes = np.add.reduceat(pairs["sentences"], starts) if len(pairs) else np.zeros(0, np.int64)
        by_count = np.lexsort((pairs["first_row"], -pairs["sentences"], pairs["document"]))
        main = pairs["label"][by_count][starts].astype(np.int64)
        first_rows = np.minimum.reduceat(pairs["first_row"], starts) if len(pairs) else np.zeros(0, np.int64)
        return ids, hashes, sizes, main, first_rows, pairs

    @property
    def sizes(self) -> np.ndarray:
        """Sentences per document, in the order the documents were first seen."""
        _, _, sizes, _, first_rows, _ = self._documents()
        return sizes[np.argsort(first_rows)]

    @property
    def mixed(self) -> dict[int, dict[int, int]]:
        """``{position: {label code: sentences}}`` for the documents of several labels (position: in the order
        the documents were first seen; the labels in the order first seen in the document)."""
        _, hashes, _, _, first_rows, pairs = self._documents()
        position = np.argsort(np.argsort(first_rows))[np.searchsorted(hashes, pairs["document"])]
        mixed: dict[int, dict[int, int]] = {}
        for index in np.lexsort((pairs["first_row"], position)):
            mixed.setdefault(int(position[index]), {})[int(pairs["label"][index])] = int(pairs["sentences"][index])
        return {document: counts for document, counts in mixed.items() if len(counts) > 1}

    def splits(self, validation_fraction: float, test_fraction: float, rng: np.random.Generator, source: str,
               min_examples: int = 3) -> DocumentSplits:
        """The split of every document (:class:`DocumentSplits`).

        Each document goes as a whole to one split. For stratification a document counts under its main
        label: per label (in sorted order), its documents (sorted by id) are shuffled and dealt to test, then
        validation, until each holds the share of that label's sentences nearest to its fraction; the rest is
        training. Every split with a share gets at least one document per label.
        """
        needed = 1 + (validation_fraction > 0) + (test_fraction > 0)
        names = list(self.labels)
        ids, hashes, sizes, main, _, pairs = self._documents()
        rows = np.bincount(pairs["label"], weights=pairs["sentences"], minlength=len(names)).astype(np.int64)
        documents = np.bincount(pairs["label"], minlength=len(names))  # per label code
        for label in sorted(names):
            code = self.labels[label]
            if rows[code] < max(min_examples, needed) or documents[code] < needed:
                name = f"label '{label}'" if label else "the corpus"
                raise PipelineError(
                    f"{source}: {name} has {rows[code]} example(s) in {documents[code]} document(s); at least "
                    f"{max(min_examples, needed)} in {needed} documents are needed to split it into "
                    "train/validation/test; add examples or remove that label"
                )
        by_id = pc.sort_indices(ids).to_numpy()  # Arrow orders UTF-8 bytes: the code points' order, as sorted()
        sizes, main = sizes[by_id], main[by_id]
        codes = np.zeros(len(by_id), np.int8)  # per document in id order: 0 train, 1 validation, 2 test
        for label in sorted({names[code] for code in main.tolist()}):
            docs = np.flatnonzero(main == self.labels[label])
            order = docs[rng.permutation(len(docs))]
            label_sizes = sizes[order]
            total = label_sizes.sum()
            spare = len(docs) - 1  # at least one document stays in train
            test_docs = min(max(1, _documents_to_take(label_sizes, test_fraction * total)), spare) \
                if test_fraction else 0
            spare -= test_docs
            validation_docs = 0
            if validation_fraction:
                rest = label_sizes[test_docs:]
                validation_docs = min(max(1, _documents_to_take(rest, validation_fraction * total)), max(spare, 0))
            codes[order[:test_docs]] = 2
            codes[order[test_docs:test_docs + validation_docs]] = 1
        by_hash = np.empty_like(codes)
        by_hash[by_id] = codes
        return DocumentSplits(hashes, by_hash)


def _group_starts(*keys: np.ndarray) -> np.ndarray:
    """Where each run of equal values (of all ``keys`` together, sorted arrays of one length) starts."""
    change = np.zeros(len(keys[0]), bool)
    change[:1] = True
    for key in keys:
        change[1:] |= key[1:] != key[:-1]
    return np.flatnonzero(change)


@dataclass(frozen=True)
class DocumentSplits:
    """The drawn split of every document, found by the hash of its id: 9 bytes a document, not a dict of ids.

    Attributes:
        hashes: ``(documents,)`` uint64, sorted: :func:`document_hashes` of the ids.
        codes: ``(documents,)`` int8, the split of each: an index into :data:`SPLIT_NAMES_BY_CODE`.
    """

    hashes: np.ndarray
    codes: np.ndarray

    def of(self, doc_ids: Iterable[str]) -> np.ndarray:
        """``(rows,)`` object array: the split name of each row's document (``train`` for a document not tallied)."""
        hashes = document_hashes(doc_ids)
        if not len(self.hashes):
            return SPLIT_NAMES_BY_CODE[np.zeros(len(hashes), np.int8)]
        position = np.searchsorted(self.hashes, hashes).clip(max=len(self.hashes) - 1)
        return SPLIT_NAMES_BY_CODE[np.where(self.hashes[position] == hashes, self.codes[position], 0)]


def assign_splits(table: pd.DataFrame, validation_fraction: float, test_fraction: float,
                  rng: np.random.Generator, source: str, min_examples: int = 3) -> pd.Series:
    """Stratified, document-grouped split: a ``split`` value per row (:meth:`DocumentTally.splits`)."""
    tally = DocumentTally()
    tally.add(table["doc_id"], table["label"])
    drawn = tally.splits(validation_fraction, test_fraction, rng, source, min_examples)
    return pd.Series(drawn.of(table["doc_id"]), index=table.index, dtype=object)
