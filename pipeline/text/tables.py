"""Table corpora (``corpus.format = "table"``): CSV, TSV and JSONL files, read a line at a time.

One file, or a folder with one table per split named for it (``train.csv``, ``dev.tsv``, ``test.jsonl``: the
split comes from the name, :func:`pipeline.text.splits.split_files`). The text, label, document and split columns
are the ``corpus.*_column`` keys; every row becomes ``(text, label, doc_id, source, split)``, ``source`` being
``file:line`` for error messages. A CSV/TSV header is checked before the first row; a JSONL file's columns (every
object's keys) are checked as its rows come, so the file is parsed once. :mod:`pipeline.text.corpora` reads
the tables whole (:func:`read_tables`), :mod:`pipeline.text.prepare` streams their rows (:func:`table_rows`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd

from pipeline.errors import PipelineError
from pipeline.sections import CorpusConfig
from pipeline.text.encodings import decoded_lines, file_encoding, require_input
from pipeline.text.splits import SPLIT_CHOICES, split_files, split_name


def _table_columns(path: Path, codec: str) -> list[str] | None:
    """The column names of a CSV/TSV file (its header); None for a JSONL file, whose columns are every object's
    keys: known only at its end (:func:`table_rows` checks them as it reads, so the file is parsed once)."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        with open(path, encoding=codec, newline="") as handle:
            return list(csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",").fieldnames or [])
    if suffix in (".jsonl", ".ndjson"):
        return None
    raise PipelineError(f"{path}: unknown table type '{suffix}'; use .csv, .tsv or .jsonl")


def _check_columns(path: Path, columns: Iterable[str], wanted: dict[str, str]) -> None:
    """A one-line error for the first ``wanted`` column (``{config key: column}``) not among ``columns``."""
    columns = list(columns)
    for key, column in wanted.items():
        if column and column not in columns:
            raise PipelineError(
                f"{path}: no column '{column}' ({key}); available: {', '.join(columns) or 'none'}"
            )


def _table_records(path: Path, codec: str) -> Iterator[dict]:
    """The rows of a CSV/TSV/JSONL file as dicts, read a line at a time."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        with open(path, encoding=codec, newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
            try:
                yield from reader
            except csv.Error as error:
                raise PipelineError(f"{path}:{reader.line_num}: malformed {suffix[1:].upper()} ({error})") from None
        return
    for number, line in enumerate(decoded_lines(path, codec), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise PipelineError(f"{path}:{number}: invalid JSON ({error.msg}); one JSON object a line") from None
        if not isinstance(record, dict):
            raise PipelineError(f"{path}:{number}: expected a JSON object with the text and label keys")
        yield record


TABLE_COLUMNS = ["text", "label", "doc_id", "source", "split"]


def read_table(path: Path, corpus: CorpusConfig, split: str | None = None) -> pd.DataFrame:
    """Rows of one CSV/TSV/JSONL file: text, label, doc_id, source (``file:line``), and ``split`` when the
    rows have one: ``split`` (the file's, from its name) or the ``corpus.split_column`` of each row."""
    table = pd.DataFrame(list(table_rows(path, corpus, split)), columns=TABLE_COLUMNS)
    return table if split or corpus.split_column else table.drop(columns="split")


def table_rows(path: Path, corpus: CorpusConfig, split: str | None = None) -> Iterator[tuple]:
    """:func:`read_table`'s rows as tuples (text, label, doc_id, source, split), read a line at a time; the
    columns are checked before the first row."""
    require_input(path, "table file")
    codec = file_encoding(path, corpus.encoding)
    columns = _table_columns(path, codec)
    split_column = "" if split else corpus.split_column
    wanted = {"corpus.text_column": corpus.text_column, "corpus.label_column": corpus.label_column,
              "corpus.doc_column": corpus.doc_column, "corpus.split_column": split_column}
    seen: dict[str, None] = {}  # JSONL: the keys of the objects so far, checked at the end
    if columns is not None:
        _check_columns(path, columns, wanted)
    first = 1 if columns is None else 2
    for number, record in enumerate(_table_records(path, codec), start=first):
        if columns is None:
            seen.update(dict.fromkeys(record))
        text = record.get(corpus.text_column)
        label = record.get(corpus.label_column, "") if corpus.label_column else ""
        doc = record.get(corpus.doc_column) if corpus.doc_column else None
        row_split = split
        if split_column:
            value = record.get(split_column)
            row_split = split_name("" if value is None else str(value))
            if row_split is None:
                raise PipelineError(f"{path}:{number}: unknown split {value!r} in column '{split_column}' "
                                    f"(corpus.split_column); use {SPLIT_CHOICES}")
        default_doc = f"{path.name}:row{number}" if split else f"row{number}"  # one file per split: names differ
        yield ("" if text is None else str(text), "" if label is None else str(label),
               default_doc if doc in (None, "") else str(doc), f"{path}:{number}", row_split)
    if columns is None:  # a key no object has: the rows read so far were all without it, and nothing is kept
        _check_columns(path, seen, wanted)


TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson")


def table_files(root: Path) -> dict[Path, str | None]:
    """A table file (split None), or the files of a folder whose names give their split (``train.csv``,
    ``dev.tsv``, ``test.jsonl``, ...): the split of each."""
    require_input(root, "table file")
    if root.is_file():
        return {root: None}
    files = split_files(sorted(path for path in root.rglob("*") if path.suffix.lower() in TABLE_SUFFIXES))
    if not files:
        raise PipelineError(f"{root}: no table named for a split; name the files like train.csv, dev.csv and "
                            "test.csv (or .tsv, .jsonl), or point corpus.path at one table file")
    return files


def read_tables(root: Path, corpus: CorpusConfig) -> pd.DataFrame:
    """A table file, or a folder with one table per split (the split comes from each file's name)."""
    files = table_files(root)
    if corpus.split_column and root.is_dir():
        raise PipelineError(f"{root}: a folder of tables takes each row's split from its file's name; set "
                            "corpus.split_column = \"\" or point corpus.path at one table file")
    return pd.concat([read_table(path, corpus, split) for path, split in files.items()], ignore_index=True)
