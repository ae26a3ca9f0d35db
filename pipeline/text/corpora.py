"""Corpus readers and the ``prepare`` stage: raw files -> one clean, split table.

Every reader returns a pandas table with the columns ``text``, ``label`` and
``doc_id`` (the document a sentence comes from; sentences of one document never
land in two splits). :func:`prepare` normalises, de-duplicates and splits it.

Formats (``corpus.format``):

* ``knb``: the KNB blog corpus layout, ``corpus2/<Theme>.tsv``; one sentence a
  line, tab-separated ``sentence id, sentence, ...``; the theme is the label and
  the document is the sentence id up to its first ``-`` (``KN001_Keitai_1``).
  The original release is EUC-JP, a later one UTF-8: the encoding is detected.
* ``table``: ``.csv``, ``.tsv`` or ``.jsonl`` with configurable text, label and
  (optional) document columns; a split column, or a folder with one table per
  split, keeps the user's own split (:mod:`pipeline.text.splits`).
* ``folders``: one sub-folder per label holding ``.txt`` files (one document
  each); optionally skip header lines and split bodies into sentences.
* ``text``: a UTF-8 text file or a folder of them, one sentence or paragraph a
  line, unlabelled (for language models).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import io as artifact_io
from pipeline import seeds
from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.sections import CorpusConfig
from pipeline.text.splits import SPLIT_CHOICES, check_splits, deduplicate_within_splits, split_files, split_name

log = logging.getLogger(__name__)

COLUMNS = ["text", "label", "doc_id", "split"]
UNLABELED = "unlabeled"  # the split of corpus.unlabeled_path's rows: read by pretraining only
SPLITS = ("train", "validation", "test")
ENCODINGS = ("utf-8", "euc-jp", "cp932")
URL_PATTERN = re.compile(r"(?:https?|ftp)://\S+|www\.\S+")
WHITESPACE = re.compile(r"\s+")
SENTENCE_END = re.compile(r"(?<=[。！？!?])\s*")


def decode(raw: bytes, path: Path, encoding: str = "auto") -> str:
    """Decode ``raw`` with ``encoding``, or detect UTF-8 / EUC-JP / Shift_JIS (cp932).

    UTF-8 is tried first because random non-UTF-8 bytes almost never form valid
    UTF-8; EUC-JP before cp932 because the KNB release uses it.
    """
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    candidates = ENCODINGS if encoding == "auto" else (encoding,)
    furthest = 0  # report where the encoding that read furthest failed
    for candidate in candidates:
        try:
            return raw.decode(candidate)
        except UnicodeDecodeError as error:
            furthest = max(furthest, error.start)
    line = raw[:furthest].count(b"\n") + 1
    tried = ", ".join(candidates)
    raise PipelineError(
        f"{path}:{line}: bytes that are not valid {tried}; convert the file to UTF-8 "
        "(e.g. iconv -f SRC -t UTF-8) or set corpus.encoding"
    )


def read_text_file(path: Path, encoding: str = "auto") -> str:
    if not path.is_file():
        raise PipelineError(f"{path}: file not found; check corpus.path")
    return decode(path.read_bytes(), path, encoding)


def normalize(text: str) -> str:
    """Unicode NFKC, URLs removed, runs of whitespace collapsed to one space, trimmed."""
    text = unicodedata.normalize("NFKC", text)
    text = URL_PATTERN.sub(" ", text)
    return WHITESPACE.sub(" ", text).strip()


def split_sentences(text: str) -> list[str]:
    """Split at Japanese/Latin sentence ends (。！？!?) and line breaks; drop empty pieces."""
    pieces = []
    for line in text.splitlines():
        pieces.extend(piece.strip() for piece in SENTENCE_END.split(line))
    return [piece for piece in pieces if piece]


def _require(path: Path, what: str, key: str = "corpus.path") -> None:
    if not path.exists():
        raise PipelineError(f"{path}: {what} not found; set {key} to an existing {what}")


def knb_files(root: Path) -> list[Path]:
    """The ``<Theme>.tsv`` files of a KNB release: ``root/corpus2/*.tsv`` or ``root/*.tsv``."""
    _require(root, "KNB corpus folder")
    for folder in (root / "corpus2", root):
        files = sorted(folder.glob("*.tsv")) if folder.is_dir() else []
        if files:
            return files
    raise PipelineError(f"{root}: no corpus2/<Theme>.tsv files; point corpus.path at the KNB release folder")


def read_knb(root: Path, encoding: str = "auto") -> pd.DataFrame:
    rows = []
    for path in knb_files(root):
        label = path.stem
        for number, line in enumerate(read_text_file(path, encoding).splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 2:
                raise PipelineError(
                    f"{path}:{number}: expected 'sentence id<TAB>sentence', got no tab; is this a KNB corpus2 file?"
                )
            sentence_id, sentence = fields[0].strip(), fields[1]
            rows.append((sentence, label, sentence_id.split("-", 1)[0] or f"{label}:{number}"))
    return pd.DataFrame(rows, columns=["text", "label", "doc_id"])


def _table_records(path: Path, text: str) -> tuple[list[dict], list[str]]:
    """Rows of a CSV/TSV/JSONL file as dicts, and the column names seen."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
        try:
            records = list(reader)
        except csv.Error as error:
            raise PipelineError(f"{path}:{reader.line_num}: malformed {suffix[1:].upper()} ({error})") from None
        return records, list(reader.fieldnames or [])
    if suffix in (".jsonl", ".ndjson"):
        records, columns = [], {}
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise PipelineError(f"{path}:{number}: invalid JSON ({error.msg}); one JSON object a line") from None
            if not isinstance(record, dict):
                raise PipelineError(f"{path}:{number}: expected a JSON object with the text and label keys")
            records.append(record)
            columns.update(dict.fromkeys(record))
        return records, list(columns)
    raise PipelineError(f"{path}: unknown table type '{suffix}'; use .csv, .tsv or .jsonl")


def read_table(path: Path, corpus: CorpusConfig, split: str | None = None) -> pd.DataFrame:
    """Rows of one CSV/TSV/JSONL file: text, label, doc_id, source (``file:line``), and ``split`` when the
    rows have one: ``split`` (the file's, from its name) or the ``corpus.split_column`` of each row."""
    _require(path, "table file")
    records, columns = _table_records(path, read_text_file(path, corpus.encoding))
    split_column = "" if split else corpus.split_column
    wanted = {"corpus.text_column": corpus.text_column, "corpus.label_column": corpus.label_column,
              "corpus.doc_column": corpus.doc_column, "corpus.split_column": split_column}
    for key, column in wanted.items():
        if column and column not in columns:
            raise PipelineError(
                f"{path}: no column '{column}' ({key}); available: {', '.join(columns) or 'none'}"
            )
    rows = []
    for number, record in enumerate(records, start=1 if path.suffix.lower() in (".jsonl", ".ndjson") else 2):
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
        rows.append(("" if text is None else str(text), "" if label is None else str(label),
                     default_doc if doc in (None, "") else str(doc), f"{path}:{number}", row_split))
    table = pd.DataFrame(rows, columns=["text", "label", "doc_id", "source", "split"])
    return table if split or split_column else table.drop(columns="split")


TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson")


def table_files(root: Path) -> dict[Path, str | None]:
    """A table file (split None), or the files of a folder whose names give their split (``train.csv``,
    ``dev.tsv``, ``test.jsonl``, ...): the split of each."""
    _require(root, "table file")
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


def read_folders(root: Path, corpus: CorpusConfig) -> pd.DataFrame:
    _require(root, "folder")
    label_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not label_dirs:
        raise PipelineError(f"{root}: no label sub-folders; put each label's .txt files in a folder named after it")
    rows = []
    for label_dir in label_dirs:
        for path in sorted(label_dir.rglob("*.txt")):
            lines = read_text_file(path, corpus.encoding).splitlines()[corpus.header_lines:]
            body = "\n".join(lines)
            pieces = split_sentences(body) if corpus.split_sentences else [" ".join(lines)]
            doc_id = str(path.relative_to(root))
            rows.extend((piece, label_dir.name, doc_id) for piece in pieces)
    return pd.DataFrame(rows, columns=["text", "label", "doc_id"])


def text_files(root: Path, key: str = "corpus.path") -> list[Path]:
    _require(root, "text file or folder", key)
    files = [root] if root.is_file() else sorted(root.rglob("*.txt"))
    if not files:
        raise PipelineError(f"{root}: no .txt files; point {key} at a UTF-8 text file or a folder of them")
    return files


def read_plain_text(root: Path, corpus: CorpusConfig) -> pd.DataFrame:
    """One row a line (or a sentence, with ``split_sentences``); a paragraph is a document.

    A folder holding ``*train*.txt``, ``*valid*.txt`` and ``*test*.txt`` (the Penn Treebank
    layout) keeps those splits instead of drawing new ones.
    """
    rows = []
    files = text_files(root)
    splits = split_files(files)
    use_predefined = root.is_dir() and {"train", "validation", "test"} <= set(splits.values())
    for path in files:
        paragraph = 0
        split = splits.get(path) if use_predefined else None
        if use_predefined and split is None:
            continue
        for line in read_text_file(path, corpus.encoding).splitlines():
            if not line.strip():
                paragraph += 1
                continue
            pieces = split_sentences(line) if corpus.split_sentences else [line]
            rows.extend((piece, "", f"{path.name}:{paragraph}", split) for piece in pieces)
    table = pd.DataFrame(rows, columns=["text", "label", "doc_id", "split"])
    return table if use_predefined else table.drop(columns="split")


def input_files(corpus: CorpusConfig) -> list[Path]:
    """The raw files a corpus is read from (for fingerprinting), unlabelled text included."""
    unlabeled = text_files(Path(corpus.unlabeled_path), "corpus.unlabeled_path") if corpus.unlabeled_path else []
    root = Path(corpus.path)
    if corpus.format == "knb":
        return knb_files(root) + unlabeled
    if corpus.format == "folders":
        _require(root, "folder")
        return sorted(root.rglob("*.txt")) + unlabeled
    if corpus.format == "text":
        return text_files(root) + unlabeled
    return list(table_files(root)) + unlabeled


def read(corpus: CorpusConfig) -> pd.DataFrame:
    """Read the raw corpus named by ``corpus`` (text, label, doc_id; not yet cleaned)."""
    root = Path(corpus.path)
    readers = {
        "knb": lambda: read_knb(root, corpus.encoding),
        "table": lambda: read_tables(root, corpus),
        "folders": lambda: read_folders(root, corpus),
        "text": lambda: read_plain_text(root, corpus),
    }
    return readers[corpus.format]()


def clean(table: pd.DataFrame, deduplicate: bool = True) -> pd.DataFrame:
    """Normalise text, drop rows left empty, drop repeated texts (the first one stays; within each split when
    the table brings its own split)."""
    table = table.assign(text=table["text"].map(normalize), label=table["label"].map(normalize))
    table = table[table["text"] != ""]
    if deduplicate and "split" in table.columns:
        table = deduplicate_within_splits(table)
    elif deduplicate:
        table = table.drop_duplicates(subset="text", keep="first")
    return table.reset_index(drop=True)


def _documents_to_take(sizes: np.ndarray, target: float) -> int:
    """How many documents (in order) bring the running total of sentences nearest ``target``."""
    totals = np.concatenate([[0], np.cumsum(sizes)])
    return int(np.argmin(np.abs(totals - target)))


def assign_splits(table: pd.DataFrame, validation_fraction: float, test_fraction: float,
                  rng: np.random.Generator, source: str, min_examples: int = 3) -> pd.Series:
    """Stratified, document-grouped split: a ``split`` value per row.

    Each document goes as a whole to one split, so no document is in two. For
    stratification a document counts under its most frequent label: per label,
    its documents are shuffled and dealt to test, then validation, until each
    holds the share of that label's sentences nearest to its fraction; the rest
    is training. Every split with a share gets at least one document per label.
    """
    needed = 1 + (validation_fraction > 0) + (test_fraction > 0)
    main_label = table.groupby("doc_id", sort=True)["label"].agg(lambda labels: labels.value_counts().index[0])
    doc_sizes = table.groupby("doc_id", sort=True).size()
    for label, rows in table.groupby("label", sort=True):
        documents = rows["doc_id"].nunique()
        if len(rows) < max(min_examples, needed) or documents < needed:
            name = f"label '{label}'" if label else "the corpus"
            raise PipelineError(
                f"{source}: {name} has {len(rows)} example(s) in {documents} document(s); at least "
                f"{max(min_examples, needed)} in {needed} documents are needed to split it into "
                "train/validation/test; add examples or remove that label"
            )
    assignment: dict = {}
    for label in sorted(main_label.unique()):
        docs = main_label[main_label == label].index
        order = docs[rng.permutation(len(docs))]
        sizes = doc_sizes[order].to_numpy()
        total = sizes.sum()
        spare = len(docs) - 1  # at least one document stays in train
        test_docs = min(max(1, _documents_to_take(sizes, test_fraction * total)), spare) if test_fraction else 0
        spare -= test_docs
        validation_docs = 0
        if validation_fraction:
            rest = sizes[test_docs:]
            validation_docs = min(max(1, _documents_to_take(rest, validation_fraction * total)), max(spare, 0))
        assignment.update({doc: "test" for doc in order[:test_docs]})
        assignment.update({doc: "validation" for doc in order[test_docs:test_docs + validation_docs]})
    return table["doc_id"].map(lambda doc: assignment.get(doc, "train")).astype(object)


def prepare_table(config: Config) -> pd.DataFrame:
    """Read, clean and split the corpus of ``config``: the ``prepare`` stage's table."""
    corpus = config.corpus
    raw = read(corpus)
    predefined = "split" in raw.columns
    # a language model's own text files keep repeated lines (they are part of PTB-style corpora)
    table = clean(raw, corpus.deduplicate and not (predefined and corpus.format == "text"))
    if table.empty:
        raise PipelineError(f"{corpus.path}: no sentences left after reading and cleaning; check corpus.format "
                            "and the files")
    if corpus.format != "text" and (table["label"] == "").any():
        number = int((table["label"] == "").sum())
        raise PipelineError(f"{corpus.path}: {number} row(s) have an empty label; fill them in or set "
                            "corpus.format = \"text\"")
    if predefined:
        how = f"column '{corpus.split_column}' (corpus.split_column)" if corpus.split_column else "file names"
        check_splits(table, corpus.path, how)
    else:
        table["split"] = assign_splits(table, corpus.validation_fraction, corpus.test_fraction,
                                       seeds.rng(config.seed, "split"), corpus.path, corpus.min_examples_per_label)
    if corpus.unlabeled_path:
        from pipeline.text.unlabeled import read_unlabeled  # it reads through this module's cleaning

        unlabeled = read_unlabeled(corpus, table["text"])
        log.info("%d unlabeled sentences from %s (none that the labeled corpus holds)", len(unlabeled),
                 corpus.unlabeled_path)
        table = pd.concat([table, unlabeled], ignore_index=True)
    counts = table.groupby(["split"]).size().to_dict()
    labels = table.loc[table["split"] != UNLABELED, "label"].nunique()
    log.info("prepared %d sentences, %d labels: %s", len(table), labels, counts)
    return table[COLUMNS]


def write_table(table: pd.DataFrame, path: Path) -> None:
    with artifact_io.atomic_path(path, suffix=".parquet") as temporary:
        table.to_parquet(temporary, index=False)


def read_table_artifact(path: Path, stage: str) -> pd.DataFrame:
    if not path.is_file():
        raise PipelineError(f"{path}: not found; run `pipeline {stage}` first")
    return pd.read_parquet(path)
