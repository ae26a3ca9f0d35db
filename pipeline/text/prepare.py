"""The ``prepare`` stage, a chunk of rows at a time: a ``text`` or ``table`` corpus of any size -> ``prepared.parquet``.

Two passes. The first reads the raw rows a chunk at a time (:func:`pipeline.text.corpora.plain_text_rows`,
:func:`~pipeline.text.tables.table_rows`), cleans each chunk as :func:`~pipeline.text.corpora.clean` cleans a
table (:func:`~pipeline.text.corpora.normalized`, repeats dropped by hash with
:class:`~pipeline.text.corpora.SeenTexts`), counts sentences per document and label
(:class:`~pipeline.text.splits.DocumentTally`) and writes the clean rows to a scratch Parquet file. The
document-grouped split is then drawn from those counts, and the second pass copies the scratch rows, each with
its document's split (:class:`~pipeline.text.splits.DocumentSplits`, found by the hash of its id), into
``prepared.parquet`` (a row group a chunk), followed by the rows of ``corpus.unlabeled_path``. Memory holds a
chunk, 8 bytes a sentence (its hash), 28 bytes a (document, label) pair and a document's id, never the corpus;
the table is the one :func:`~pipeline.text.corpora.prepare_table` builds in memory.

A corpus whose split is given (``corpus.split_column``, one table per split, the Penn Treebank text layout), a
KNB corpus and a ``folders`` corpus are read whole by :func:`~pipeline.text.corpora.prepare_table`: the given
split's checks (:func:`pipeline.text.splits.check_splits`) look at the whole table.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import io as artifact_io
from pipeline import seeds
from pipeline.config import Config
from pipeline.sections import CorpusConfig
from pipeline.text import corpora, tables
from pipeline.text.splits import DocumentTally

log = logging.getLogger(__name__)

PREPARE_CHUNK_ROWS = 50_000  # raw rows read, cleaned and written at a time (a row group of prepared.parquet)
RAW_COLUMNS = ["text", "label", "doc_id"]
PREPARED_SCHEMA = pa.schema([(name, pa.string()) for name in corpora.COLUMNS])
CLEAN_SCHEMA = pa.schema([(name, pa.string()) for name in RAW_COLUMNS])
# Arrow converts and decodes a chunk in one thread: its threads' allocators kept ~60 MB more at 5M rows than at 100k
# (mimalloc keeps a heap a thread), for no gain in time on a chunk of three string columns
THREADS = False


def streamed_rows(corpus: CorpusConfig) -> Iterator[tuple] | None:
    """The raw rows ``(text, label, doc_id)`` of a corpus that can be read a chunk at a time (a ``text`` corpus
    or one ``table`` file, whose split ``prepare`` draws); None for any other corpus."""
    root = Path(corpus.path)
    if corpus.format == "text":
        files, splits = corpora.text_layout(root)
        return None if splits else (row[:3] for row in corpora.plain_text_rows(files, {}, corpus))
    if corpus.format == "table" and not corpus.split_column and list(tables.table_files(root).values()) == [None]:
        return (row[:3] for row in tables.table_rows(root, corpus))
    return None


def chunks(rows: Iterable[tuple], size: int) -> Iterator[list[tuple]]:
    """``rows`` in lists of ``size`` (the last one shorter)."""
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def write_prepared(config: Config, path: Path) -> int:
    """Write ``config``'s prepared table to ``path`` (atomically); the number of rows.

    A chunk at a time where the corpus allows it (:func:`streamed_rows`), else through
    :func:`~pipeline.text.corpora.prepare_table`.
    """
    corpus = config.corpus
    rows = streamed_rows(corpus)
    if rows is None:
        table = corpora.prepare_table(config)
        corpora.write_table(table, path)
        return len(table)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as folder:
        scratch = Path(folder) / "clean.parquet"
        drawn = _write_clean(rows, corpus, scratch).splits(
            corpus.validation_fraction, corpus.test_fraction, seeds.rng(config.seed, "split"), corpus.path,
            corpus.min_examples_per_label)
        counts, labels = Counter(), set()
        with artifact_io.atomic_path(path, suffix=".parquet") as temporary, \
                pq.ParquetWriter(temporary, PREPARED_SCHEMA) as writer:
            for batch in read_scratch(scratch):
                table = batch.to_pandas(use_threads=THREADS)
                table["split"] = drawn.of(table["doc_id"])
                labels.update(table["label"])
                _append(writer, table, counts)
            if corpus.unlabeled_path:
                from pipeline.text.unlabeled import iter_unlabeled

                texts = (text for batch in read_scratch(scratch, ["text"])
                         for text in batch.column("text").to_pylist())
                before = counts[corpora.UNLABELED]
                for table in iter_unlabeled(corpus, texts):
                    _append(writer, table, counts)
                log.info("%d unlabeled sentences from %s (none that the labeled corpus holds)",
                         counts[corpora.UNLABELED] - before, corpus.unlabeled_path)
    log.info("prepared %d sentences, %d labels: %s", counts.total(), len(labels), dict(sorted(counts.items())))
    return counts.total()


def read_scratch(path: Path, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The scratch table, :data:`PREPARE_CHUNK_ROWS` rows at a time (opened without pre-buffering, see
    :func:`pipeline.io.parquet_file`; one thread: see :data:`THREADS`)."""
    yield from artifact_io.parquet_file(path).iter_batches(batch_size=PREPARE_CHUNK_ROWS, columns=columns,
                                                           use_threads=THREADS)


def _write_clean(rows: Iterable[tuple], corpus: CorpusConfig, scratch: Path) -> DocumentTally:
    """First pass: the clean rows of ``rows`` into the Parquet file ``scratch``; their documents' counts."""
    seen = corpora.SeenTexts() if corpus.deduplicate else None
    tally, kept, empty_labels = DocumentTally(), 0, 0
    with pq.ParquetWriter(scratch, CLEAN_SCHEMA) as writer:
        for chunk in chunks(rows, PREPARE_CHUNK_ROWS):
            table = corpora.normalized(pd.DataFrame(chunk, columns=RAW_COLUMNS))
            if seen is not None:
                table = table[seen.first(table["text"])]
            if table.empty:
                continue
            tally.add(table["doc_id"], table["label"])
            kept, empty_labels = kept + len(table), empty_labels + int((table["label"] == "").sum())
            writer.write_table(pa.Table.from_pandas(table, schema=CLEAN_SCHEMA, preserve_index=False, nthreads=1))
    corpora.check_cleaned(corpus, kept, empty_labels)
    return tally


def _append(writer: pq.ParquetWriter, table: pd.DataFrame, counts: Counter) -> None:
    """Write ``table``'s prepared columns as a row group; count its rows per split."""
    counts.update(table["split"])
    writer.write_table(pa.Table.from_pandas(table[corpora.COLUMNS], schema=PREPARED_SCHEMA, preserve_index=False,
                                            nthreads=1))
