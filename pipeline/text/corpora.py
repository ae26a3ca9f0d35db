"""Corpus readers and the ``prepare`` stage: raw files -> one clean, split table.

Every reader returns a pandas table with the columns ``text``, ``label`` and
``doc_id`` (the document a sentence comes from; sentences of one document never
land in two splits). :func:`prepare_table` normalises, de-duplicates and splits it
(the split: :func:`pipeline.text.splits.assign_splits`); :mod:`pipeline.text.prepare`
does the same a chunk of rows at a time, with the row readers here.

Formats (``corpus.format``):

* ``knb``: the KNB blog corpus layout, ``corpus2/<Theme>.tsv``; one sentence a
  line, tab-separated ``sentence id, sentence, ...``; the theme is the label and
  the document is the sentence id up to its first ``-`` (``KN001_Keitai_1``).
  The original release is EUC-JP, a later one UTF-8: the encoding is detected.
* ``table``: ``.csv``, ``.tsv`` or ``.jsonl`` with configurable text, label and
  (optional) document columns; a split column, or a folder with one table per
  split, keeps the user's own split (:mod:`pipeline.text.splits`); read by :mod:`pipeline.text.tables`.
* ``folders``: one sub-folder per label holding ``.txt`` files (one document
  each); optionally skip header lines and split bodies into sentences.
* ``text``: a UTF-8 text file or a folder of them, one sentence or paragraph a
  line, unlabelled (for language models).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import io as artifact_io
from pipeline import seeds
from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.sections import CorpusConfig
from pipeline.text.encodings import read_text_file, require_input, text_lines
from pipeline.text.splits import (
    assign_splits,
    check_splits,
    deduplicate_within_splits,
    split_files,
)
from pipeline.text.tables import read_tables, table_files

log = logging.getLogger(__name__)

COLUMNS = ["text", "label", "doc_id", "split"]
UNLABELED = "unlabeled"  # the split of corpus.unlabeled_path's rows: read by pretraining only
SPLITS = ("train", "validation", "test")
URL_PATTERN = re.compile(r"(?:https?|ftp)://\S+|www\.\S+")
WHITESPACE = re.compile(r"\s+")
SENTENCE_END = re.compile(r"(?<=[。！？!?])\s*")


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


def knb_files(root: Path) -> list[Path]:
    """The ``<Theme>.tsv`` files of a KNB release: ``root/corpus2/*.tsv`` or ``root/*.tsv``."""
    require_input(root, "KNB corpus folder")
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


def read_folders(root: Path, corpus: CorpusConfig) -> pd.DataFrame:
    require_input(root, "folder")
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
    require_input(root, "text file or folder", key)
    files = [root] if root.is_file() else sorted(root.rglob("*.txt"))
    if not files:
        raise PipelineError(f"{root}: no .txt files; point {key} at a UTF-8 text file or a folder of them")
    return files


def text_layout(root: Path) -> tuple[list[Path], dict[Path, str]]:
    """The text files of ``root`` and, for a folder holding ``*train*.txt``, ``*valid*.txt`` and ``*test*.txt``
    (the Penn Treebank layout), the split each of them keeps (empty: the splits are drawn)."""
    files = text_files(root)
    splits = split_files(files)
    return files, splits if root.is_dir() and {"train", "validation", "test"} <= set(splits.values()) else {}


def plain_text_rows(files: list[Path], splits: dict[Path, str], corpus: CorpusConfig) -> Iterator[tuple]:
    """:func:`read_plain_text`'s rows as tuples (text, label, doc_id, split), read a line at a time."""
    for path in files:
        paragraph = 0
        split = splits.get(path)
        if splits and split is None:
            continue
        for line in text_lines(path, corpus.encoding):
            if not line.strip():
                paragraph += 1
                continue
            pieces = split_sentences(line) if corpus.split_sentences else [line]
            for piece in pieces:
                yield piece, "", f"{path.name}:{paragraph}", split


def read_plain_text(root: Path, corpus: CorpusConfig) -> pd.DataFrame:
    """One row a line (or a sentence, with ``split_sentences``); a paragraph is a document.

    A folder holding ``*train*.txt``, ``*valid*.txt`` and ``*test*.txt`` (the Penn Treebank
    layout) keeps those splits instead of drawing new ones.
    """
    files, splits = text_layout(root)
    table = pd.DataFrame(list(plain_text_rows(files, splits, corpus)), columns=["text", "label", "doc_id", "split"])
    return table if splits else table.drop(columns="split")


def input_files(corpus: CorpusConfig) -> list[Path]:
    """The raw files a corpus is read from (for fingerprinting), unlabelled text included."""
    unlabeled = text_files(Path(corpus.unlabeled_path), "corpus.unlabeled_path") if corpus.unlabeled_path else []
    root = Path(corpus.path)
    if corpus.format == "knb":
        return knb_files(root) + unlabeled
    if corpus.format == "folders":
        require_input(root, "folder")
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


SEEN_BLOCK_HASHES = 1 << 20  # hashes of a sealed block of SeenTexts (8 MiB)


class SeenTexts:
    """The texts seen so far, as sorted blocks of their 64-bit hashes (8 bytes a text, never the strings).

    ``first(texts)`` says which of ``texts`` are new (the first of repeats within them too) and remembers them,
    so a corpus read a chunk at a time drops the same rows as ``drop_duplicates(keep="first")`` on the whole
    table (but for a hash collision, about one in 10^19 per pair of texts). New hashes go into the open block
    (``hashes``, kept sorted); once it holds :data:`SEEN_BLOCK_HASHES` it is sealed and a new one opened, so a
    chunk copies at most one block, never every hash seen (which doubled the peak: 40 MB more at 5M texts).
    """

    def __init__(self) -> None:
        self.sealed: list[np.ndarray] = []  # full blocks, each sorted
        self.hashes = np.zeros(0, dtype=np.int64)  # the open block, sorted

    def first(self, texts: Iterable[str]) -> np.ndarray:
        """A boolean mask over ``texts``: True where a text is seen for the first time."""
        hashes = np.fromiter(map(hash, texts), dtype=np.int64)
        unique, first_index = np.unique(hashes, return_index=True)
        seen = np.zeros(len(unique), dtype=bool)
        for block in [*self.sealed, self.hashes]:
            position = np.searchsorted(block, unique)
            inside = position < len(block)
            seen[inside] |= block[position[inside]] == unique[inside]
        new = np.zeros(len(hashes), dtype=bool)
        new[first_index[~seen]] = True
        self.hashes = np.insert(self.hashes, np.searchsorted(self.hashes, unique[~seen]), unique[~seen])
        if len(self.hashes) >= SEEN_BLOCK_HASHES:
            self.sealed.append(self.hashes)
            self.hashes = np.zeros(0, dtype=np.int64)
        return new


def normalized(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with text and label normalised (:func:`normalize`) and the rows left without text dropped."""
    table = table.assign(text=table["text"].map(normalize), label=table["label"].map(normalize))
    return table[table["text"] != ""]


def clean(table: pd.DataFrame, deduplicate: bool = True) -> pd.DataFrame:
    """Normalise text, drop rows left empty, drop repeated texts (the first one stays; within each split when
    the table brings its own split)."""
    table = normalized(table)
    if deduplicate and "split" in table.columns:
        table = deduplicate_within_splits(table)
    elif deduplicate:
        table = table[SeenTexts().first(table["text"])]
    return table.reset_index(drop=True)


def check_cleaned(corpus: CorpusConfig, sentences: int, empty_labels: int) -> None:
    """Errors for a cleaned corpus of ``sentences`` rows, ``empty_labels`` of them without a label."""
    if not sentences:
        raise PipelineError(f"{corpus.path}: no sentences left after reading and cleaning; check corpus.format "
                            "and the files")
    if corpus.format != "text" and empty_labels:
        raise PipelineError(f"{corpus.path}: {empty_labels} row(s) have an empty label; fill them in or set "
                            "corpus.format = \"text\"")


def prepare_table(config: Config) -> pd.DataFrame:
    """Read, clean and split the corpus of ``config``: the ``prepare`` stage's table."""
    corpus = config.corpus
    raw = read(corpus)
    predefined = "split" in raw.columns
    # a language model's own text files keep repeated lines (they are part of PTB-style corpora)
    table = clean(raw, corpus.deduplicate and not (predefined and corpus.format == "text"))
    check_cleaned(corpus, len(table), int((table["label"] == "").sum()))
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
