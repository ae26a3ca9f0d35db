"""A corpus's own train/validation/test split: split names in a column or in file names, and its checks.

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
from pathlib import Path

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
