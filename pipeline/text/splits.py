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
from array import array
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

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


class DocumentTally:
    """Sentences per document and per (document, label), counted a chunk of rows at a time: what the
    document-grouped split (:meth:`splits`) needs, without the rows.

    A document's main label is its most frequent one (ties: the one seen first, as ``value_counts`` orders
    them). Memory: a document id and two numbers a document, a counter for a document with several labels.
    """

    def __init__(self) -> None:
        self.documents: dict[str, int] = {}  # doc_id -> position
        self.labels: dict[str, int] = {}  # label -> code
        self.sizes = array("q")  # sentences per document
        self.first_labels = array("i")  # code of each document's first label
        self.mixed: dict[int, Counter] = {}  # position -> sentences per label code, for documents of several labels

    def add(self, doc_ids: Iterable[str], labels: Iterable[str]) -> None:
        """Count rows: the document and label of each."""
        for doc, label in zip(doc_ids, labels, strict=True):
            code = self.labels.setdefault(label, len(self.labels))
            position = self.documents.get(doc)
            if position is None:
                self.documents[doc] = len(self.sizes)
                self.sizes.append(1)
                self.first_labels.append(code)
                continue
            self.sizes[position] += 1
            if position in self.mixed:
                self.mixed[position][code] += 1
            elif code != self.first_labels[position]:
                self.mixed[position] = Counter({self.first_labels[position]: self.sizes[position] - 1, code: 1})

    def splits(self, validation_fraction: float, test_fraction: float, rng: np.random.Generator, source: str,
               min_examples: int = 3) -> dict[str, str]:
        """``{doc_id: "validation" | "test"}`` for the documents that leave training (the rest are ``train``).

        Each document goes as a whole to one split. For stratification a document counts under its main
        label: per label (in sorted order), its documents (sorted by id) are shuffled and dealt to test, then
        validation, until each holds the share of that label's sentences nearest to its fraction; the rest is
        training. Every split with a share gets at least one document per label.
        """
        needed = 1 + (validation_fraction > 0) + (test_fraction > 0)
        names = list(self.labels)
        rows, documents = Counter(), Counter()  # per label code
        main = np.array(self.first_labels, dtype=np.int64)
        for position, size in enumerate(self.sizes):
            counter = self.mixed.get(position)
            if counter is None:
                rows[int(main[position])] += size
                documents[int(main[position])] += 1
                continue
            rows.update(counter)
            documents.update(counter.keys())
            main[position] = max(counter, key=counter.get)
        for label in sorted(names):
            code = self.labels[label]
            if rows[code] < max(min_examples, needed) or documents[code] < needed:
                name = f"label '{label}'" if label else "the corpus"
                raise PipelineError(
                    f"{source}: {name} has {rows[code]} example(s) in {documents[code]} document(s); at least "
                    f"{max(min_examples, needed)} in {needed} documents are needed to split it into "
                    "train/validation/test; add examples or remove that label"
                )
        doc_ids = np.array(sorted(self.documents), dtype=object)
        order_of = np.array([self.documents[doc] for doc in doc_ids], dtype=np.int64)
        sizes = np.asarray(self.sizes, dtype=np.int64)[order_of]
        main = main[order_of]
        assignment: dict[str, str] = {}
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
            assignment.update({doc: "test" for doc in doc_ids[order[:test_docs]]})
            assignment.update({doc: "validation" for doc in doc_ids[order[test_docs:test_docs + validation_docs]]})
        return assignment


def assign_splits(table: pd.DataFrame, validation_fraction: float, test_fraction: float,
                  rng: np.random.Generator, source: str, min_examples: int = 3) -> pd.Series:
    """Stratified, document-grouped split: a ``split`` value per row (:meth:`DocumentTally.splits`)."""
    tally = DocumentTally()
    tally.add(table["doc_id"], table["label"])
    assignment = tally.splits(validation_fraction, test_fraction, rng, source, min_examples)
    return table["doc_id"].map(lambda doc: assignment.get(doc, "train")).astype(object)
