"""``corpus.unlabeled_path``: text of any size, streamed, cleaned as the corpus, for pretraining only.

A file or a folder of ``.txt`` files is read line by line and handed on in chunks of rows of split
``unlabeled``; the labelled corpus's sentences (validation and test must not leak into pretraining) and
repeats are dropped by hash, so memory holds a chunk and 8 bytes a sentence seen, never the text whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd

from pipeline.errors import PipelineError
from pipeline.sections import CorpusConfig
from pipeline.text.corpora import COLUMNS, UNLABELED, clean, split_sentences, text_files

UNLABELED_CHUNK_LINES = 10_000  # lines of corpus.unlabeled_path read, cleaned and deduplicated at a time


def unlabeled_lines(path: Path, encoding: str = "auto") -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of the text file ``path``, read line by line (never whole).

    ``encoding``: ``auto`` means UTF-8 here (a line at a time is too little to detect another
    encoding reliably); a leading BOM is dropped. A line that does not decode, or that holds a NUL
    byte (a binary file), is a :class:`PipelineError` naming ``path:line``.
    """
    codec = "utf-8" if encoding == "auto" else encoding
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                if b"\x00" in raw:
                    raise ValueError("a NUL byte")
                yield number, raw.decode(codec)
            except ValueError:  # UnicodeDecodeError too
                raise PipelineError(f"{path}:{number}: not {codec} text (corpus.unlabeled_path); convert it (e.g. "
                                    f"iconv -f SRC -t UTF-8) or set corpus.encoding") from None


def iter_unlabeled(corpus: CorpusConfig, labeled_texts: Iterable[str] = (),
                   chunk_lines: int = UNLABELED_CHUNK_LINES) -> Iterator[pd.DataFrame]:
    """The text of ``corpus.unlabeled_path`` (a file, or a folder of ``.txt`` files) as cleaned rows of split
    ``unlabeled`` (no label), a table of at most ``chunk_lines`` lines' rows at a time.

    Streamed: files are read line by line, so the raw text is never in memory whole. A line is a row (its
    sentences with ``corpus.split_sentences``), normalised as the labelled corpus is (:func:`clean`).
    A row whose text is in ``labeled_texts`` (the labelled corpus: its validation and test sentences must
    not leak into pretraining, its training sentences are pretrained on already) is dropped, and with
    ``corpus.deduplicate`` so is a repeated row (remembered by a 64-bit hash, 8 bytes a sentence).
    """
    held_out = {hash(text) for text in labeled_texts}
    seen: set[int] = set()
    for path in text_files(Path(corpus.unlabeled_path), "corpus.unlabeled_path"):
        rows: list[tuple[str, str, str]] = []
        for number, line in unlabeled_lines(path, corpus.encoding):
            pieces = split_sentences(line) if corpus.split_sentences else [line]
            rows.extend((piece, "", f"unlabeled:{path.name}:{number}") for piece in pieces if piece.strip())
            if number % chunk_lines == 0:
                yield from _unlabeled_chunk(rows, held_out, seen if corpus.deduplicate else None)
                rows = []
        yield from _unlabeled_chunk(rows, held_out, seen if corpus.deduplicate else None)


def _unlabeled_chunk(rows: list[tuple[str, str, str]], held_out: set[int],
                     seen: set[int] | None) -> Iterator[pd.DataFrame]:
    """The clean rows of one chunk not in ``held_out`` nor (unless ``seen`` is None) in ``seen``, which grows."""
    if not rows:
        return
    table = clean(pd.DataFrame(rows, columns=["text", "label", "doc_id"]), deduplicate=False)
    keep = []
    for text in table["text"]:
        key = hash(text)
        keep.append(key not in held_out and (seen is None or key not in seen))
        if seen is not None:
            seen.add(key)
    table = table[keep].assign(split=UNLABELED)
    if len(table):
        yield table


def read_unlabeled(corpus: CorpusConfig, labeled_texts: Iterable[str] = ()) -> pd.DataFrame:
    """All of :func:`iter_unlabeled` in one table (columns text, label, doc_id, split)."""
    chunks = list(iter_unlabeled(corpus, labeled_texts))
    return pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=COLUMNS)
