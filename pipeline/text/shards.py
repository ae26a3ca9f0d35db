"""The tokenize stage in shards: memory that does not grow with the corpus, resuming after a kill, shared work.

The prepared table is read ``tokenize.shard_rows`` rows at a time (pyarrow: only the row groups that hold
them, a batch at a time); each shard's rows and tokens are written, atomically, as an Arrow IPC file of its own::

    work/<corpus>/tokens.shards/<fingerprint>.rows<shard_rows>/part-00003.arrow

When every shard is there, :func:`merge` streams them into ``tokens.parquet`` (one row group per shard, written
atomically) and removes ``tokens.shards/``. One shard's sentences and tokens are in memory at a time.

* Shards are uncompressed Arrow IPC files, not Parquet: writing one is a copy of the table's buffers and the merge
  maps it back without decoding, where Parquet's encoding, compression and decoding of the same shard cost about a
  fifth of SudachiPy's own analysis. They take about four times the disk of Parquet (the Aozora sentences: 26 MB
  against 7 MB), until the merge removes them; ``tokens.parquet`` is the same file either way.

* Resuming: the folder is named by the tokenize stage's fingerprint (the prepared table's contents, the settings,
  the code, the tokenizer's versions) and the shard size, so a rerun after a kill reuses the finished shards of the
  same work and no others. A shard being written is a temporary sibling (``.part-00003.parquet.<pid>.….tmp``),
  never taken for a finished one and removed by the next run once its writer is dead
  (:func:`pipeline.io.remove_stale`; finished shards are no temporaries and are kept).
* Same bytes: a shard file depends on its rows and the settings alone, and the merge reads shard files only, so
  ``tokens.parquet`` is the same whichever process, machine or Dask worker wrote which shard, after any kills.
* ``shard_rows`` changes the row groups of ``tokens.parquet``, not one token, so like ``tokenize.processes`` it is
  no part of the fingerprint (changing it re-tokenizes nothing); it names the shard folder, so that shards of
  two sizes never mix.
* Who tokenizes the missing shards: this process (:func:`tokenize_shards`, with ``tokenize.processes`` forked
  workers inside each shard), ``pipeline tokenize --shard I/N`` processes beforehand, or the Dask workers that
  :mod:`pipeline.text.cluster` installs with :func:`use_runner`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import dataclasses
import functools
import itertools
import logging
import os
import shutil
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import Any

from pipeline import io as artifact_io
from pipeline.errors import PipelineError
from pipeline.progress import Progress
from pipeline.sections import TokenizeConfig
from pipeline.text.tokenize import fork_pool, log_counts, make_tokenizer, token_columns, token_fields

log = logging.getLogger(__name__)

SHARDS = "tokens.shards"  # under the work folder: one folder per fingerprint and shard size
SHARD_SUFFIX = ".arrow"  # a shard: an Arrow IPC file (see the module docstring)


def file_stamp(path: Path) -> tuple[int, int, int]:
    """(inode, size, modification time) of ``path``: an atomic replacement of the file changes it."""
    status = os.stat(path)
    return status.st_ino, status.st_size, status.st_mtime_ns


@dataclasses.dataclass(frozen=True)
class ShardJob:
    """The shards of one tokenize fingerprint: what any process needs to tokenize some of them (picklable).

    Attributes:
        prepared: the prepared table, ``rows`` rows.
        work: the work folder (``work/<corpus>/``).
        digest: the tokenize stage's fingerprint.
        settings: the ``[tokenize]`` section.
        rows: rows of the prepared table; shard ``i`` holds rows ``[i * shard_rows, (i + 1) * shard_rows)``.
        stamp: :func:`file_stamp` of ``prepared`` taken before the fingerprint: a reader finding another file
            there (a ``prepare`` since) stops instead of filing its rows under the wrong fingerprint.
    """

    prepared: Path
    work: Path
    digest: str
    settings: TokenizeConfig
    rows: int
    stamp: tuple[int, int, int]

    @classmethod
    def of(cls, work: Path, prepared: Path, settings: TokenizeConfig, digest: str,
           stamp: tuple[int, int, int]) -> ShardJob:
        import pyarrow.parquet as pq

        # absolute: a Dask worker elsewhere finds the same shared folder from another working directory
        return cls(prepared.absolute(), work.absolute(), digest, settings, pq.read_metadata(prepared).num_rows, stamp)

    @property
    def folder(self) -> Path:
        """``<work>/tokens.shards/<fingerprint>.rows<shard_rows>/``."""
        return self.work / SHARDS / f"{self.digest}.rows{self.settings.shard_rows}"

    @property
    def count(self) -> int:
        return -(-self.rows // self.settings.shard_rows)

    def path(self, index: int) -> Path:
        return self.folder / f"part-{index:05d}{SHARD_SUFFIX}"

    def size(self, index: int) -> int:
        """Rows of shard ``index`` (``shard_rows``, fewer for the last)."""
        return min(self.settings.shard_rows, self.rows - index * self.settings.shard_rows)

    def in_one_process(self) -> ShardJob:
        """This job with ``tokenize.processes = 1``: for a worker that tokenizes whole shards alone."""
        return dataclasses.replace(self, settings=dataclasses.replace(self.settings, processes=1))

    def piece_path(self, index: int, number: int, pieces: int) -> Path:
        """The file of the ``number``-th of ``pieces`` slices of shard ``index`` (:func:`tokenize_in_processes`);
        not a shard file: :meth:`missing` and the merge never read it."""
        return self.folder / f"part-{index:05d}.piece{number}of{pieces}{SHARD_SUFFIX}"

    def missing(self, indices: Iterable[int]) -> list[int]:
        """Those of ``indices`` whose shard file is not written yet."""
        return [index for index in indices if not self.path(index).is_file()]


def output_schema(prepared: Any, settings: TokenizeConfig) -> Any:
    """The prepared table's columns (its pandas metadata kept), then a ``list<string>`` per token field."""
    import pyarrow as pa

    tokens = [pa.field(name, pa.list_(pa.string())) for name in token_fields(settings)]
    return pa.schema([*prepared, *tokens], metadata=prepared.metadata)


def read_shards(source: Any, shard_rows: int, wanted: Collection[int]) -> Iterator[tuple[int, Any]]:
    """``(index, rows)`` of each ``wanted`` shard of the ``pq.ParquetFile`` ``source``, in order (pyarrow tables).

    Reads only the row groups that hold wanted rows, in batches of ``shard_rows`` rows, and stops after the last
    wanted shard: memory is one shard (plus pyarrow's buffers of a row group), whatever the table's length.
    """
    import pyarrow as pa

    wanted = set(wanted)
    metadata = source.metadata
    starts = list(itertools.accumulate((metadata.row_group(group).num_rows
                                        for group in range(metadata.num_row_groups)), initial=0))
    if not wanted or starts[-1] == 0:
        return
    begin, end = min(wanted) * shard_rows, min((max(wanted) + 1) * shard_rows, starts[-1])
    groups = [group for group in range(metadata.num_row_groups) if starts[group] < end and starts[group + 1] > begin]
    if not groups:  # no such shard
        return
    position, pieces = starts[groups[0]], []
    for batch in source.iter_batches(batch_size=shard_rows, row_groups=groups):
        while batch.num_rows:
            index = position // shard_rows
            stop = min((index + 1) * shard_rows, starts[-1])
            piece, batch = batch.slice(0, stop - position), batch.slice(stop - position)
            position += piece.num_rows
            if index not in wanted:
                continue
            pieces.append(piece)
            if position == stop:
                yield index, pa.Table.from_batches(pieces).combine_chunks()
                pieces = []
                if index == max(wanted):
                    return


@contextlib.contextmanager
def open_prepared(job: ShardJob) -> Iterator[Any]:
    """``job.prepared`` as a ``pq.ParquetFile`` (:func:`pipeline.io.parquet_file`), checked to be the file the
    fingerprint was taken of."""
    with open(job.prepared, "rb") as handle:
        status = os.fstat(handle.fileno())
        if (status.st_ino, status.st_size, status.st_mtime_ns) != job.stamp:
            raise PipelineError(f"{job.prepared}: replaced while tokenizing (a `pipeline prepare` ran meanwhile); "
                                "run the tokenize command again")
        yield artifact_io.parquet_file(handle)


@functools.lru_cache(maxsize=2)
def process_tokenizer(settings: TokenizeConfig) -> Any:
    """:func:`~pipeline.text.tokenize.make_tokenizer`'s tokenizer, one per process and settings: a worker that
    tokenizes shard after shard keeps the fast path's caches warm (POS by tag, punctuation by surface)."""
    return make_tokenizer(settings)


def tokenize_shards(job: ShardJob, indices: Collection[int], tokenizer: Any = None,
                    progress: Progress | None = None, piece: tuple[int, int] = (0, 1)) -> None:
    """Tokenize shards ``indices`` of ``job`` and write each one's file atomically as soon as it is done.

    ``tokenizer`` defaults to :func:`process_tokenizer`'s; ``progress`` counts sentences. ``piece = (p, n)``
    tokenizes the ``p``-th of ``n`` equal slices of each shard's rows instead, into :meth:`ShardJob.piece_path`
    (:func:`tokenize_in_processes` cuts a few shards into more tasks than workers this way).
    """
    import pyarrow as pa

    if not indices:
        return
    tokenizer = process_tokenizer(job.settings) if tokenizer is None else tokenizer
    number, pieces = piece
    with open_prepared(job) as source:
        schema = output_schema(source.schema_arrow, job.settings)
        for index, rows in read_shards(source, job.settings.shard_rows, indices):
            if pieces > 1:
                start, stop = piece_bounds(rows.num_rows, number, pieces)
                rows = rows.slice(start, stop - start)
            arrays = token_arrays(rows.column("text").to_pylist(), job.settings, tokenizer, progress)
            table = pa.Table.from_arrays([*rows.columns, *arrays], schema=schema)
            path = job.path(index) if pieces == 1 else job.piece_path(index, number, pieces)
            write_shard(path, table)
            log.debug("%s: written", path)


def piece_bounds(rows: int, number: int, pieces: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of the ``number``-th of ``pieces`` near-equal slices of ``rows`` rows."""
    return rows * number // pieces, rows * (number + 1) // pieces


def write_shard(path: Path, table: Any) -> None:
    """``table`` as an uncompressed Arrow IPC file at ``path``, atomically."""
    import pyarrow as pa

    with artifact_io.atomic_path(path, suffix=SHARD_SUFFIX) as temporary, \
            pa.OSFile(str(temporary), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def join_pieces(job: ShardJob, index: int, pieces: int) -> None:
    """Write shard ``index``'s file from its ``pieces`` piece files (one record batch, the bytes a whole-shard
    task writes), then remove them."""
    import pyarrow as pa

    paths = [job.piece_path(index, number, pieces) for number in range(pieces)]
    sources = [pa.memory_map(str(path)) for path in paths]
    try:
        table = pa.concat_tables([pa.ipc.open_file(source).read_all() for source in sources]).combine_chunks()
        write_shard(job.path(index), table)
    finally:
        for source in sources:
            source.close()
    for path in paths:
        path.unlink()


def token_arrays(texts: list[str], settings: TokenizeConfig, tokenizer: Any, progress: Progress | None = None) -> list:
    """A ``list<string>`` Arrow array (one item a text) per :func:`~pipeline.text.tokenize.token_fields` name.

    From a tokenizer's ``token_lists`` where it has one (the SudachiPy fast path: one list per field and the text
    ends, the list offsets), else from its ``tokenize`` (a list per text and field); the same arrays either way.
    """
    import pyarrow as pa

    if hasattr(tokenizer, "token_lists"):
        columns, ends = tokenizer.token_lists(texts, progress)
        offsets, arrays = pa.array([0, *ends], type=pa.int32()), []
        for name in token_fields(settings):
            values = pa.array(columns[name], type=pa.string())
            if isinstance(values, pa.ChunkedArray):  # over 2 GiB of text: a list per text, pyarrow chunks them
                values = pa.array([columns[name][start:end] for start, end in zip([0, *ends], ends, strict=True)],
                                  type=pa.list_(pa.string()))
                arrays.append(values)
            else:
                arrays.append(pa.ListArray.from_arrays(offsets, values))
        return arrays
    columns = token_columns(texts, settings, tokenizer, progress)
    return [pa.array(columns[name], type=pa.list_(pa.string())) for name in token_fields(settings)]


def shard_pieces(rows: Collection[int], workers: int) -> int:
    """How many slices to cut each shard into (``rows``: the shards' row counts) so that ``workers`` processes
    share them evenly: 1 (whole shards) when there are :data:`TASKS_PER_WORKER` shards a worker, else enough for
    that many tasks, none under :data:`MIN_PIECE_ROWS` rows (the 5 shards of 100k sentences on 2 workers: 3
    against 2 shards, at most 1.67 times one process, where 10 slices share 5 and 5)."""
    wanted = -(-TASKS_PER_WORKER * workers // max(1, len(rows)))
    return max(1, min(wanted, max(rows, default=0) // MIN_PIECE_ROWS))


TASKS_PER_WORKER = 4  # tasks a worker at least, so that the last ones leave little idle time at the end
MIN_PIECE_ROWS = 256  # a slice's rows at least: each costs a file and a read of its shard's rows


def tokenize_in_processes(job: ShardJob, indices: list[int], pieces: int, target: Path,
                          progress: Progress | None = None) -> None:
    """``tokenize.processes`` forked workers over shards ``indices``, each cut into ``pieces`` slices
    (:func:`shard_pieces`), merged into ``target`` meanwhile.

    Each worker tokenizes a shard (or a slice of one) and writes its file
    itself, so the token lists never travel back; this process joins a shard's slices into its file
    (:func:`join_pieces`) and streams the finished shards, in order, into ``target`` (:func:`merge`) while the
    workers do the next ones, so that the merge adds little after the last shard. Memory: a shard per worker.
    ``progress`` counts each task's sentences once its file is written; the first task that fails (or Ctrl-C)
    stops all: no worker starts another. A slice's file left by a killed run is used again.
    """
    single = job.in_one_process()
    workers = job.settings.processes
    tasks = [(index, number) for index in indices for number in range(pieces)]
    todo = set(indices)
    if pieces > 1:
        log.info("%d shards in %d slices each over %d processes", len(indices), pieces, workers)
    with fork_pool(min(workers, len(tasks))) as pool:
        futures: dict[int, list[concurrent.futures.Future]] = {}
        pending = {}

        def count(index: int, number: int) -> None:  # a task's sentences, once its file is there
            if progress is not None:
                start, stop = piece_bounds(job.size(index), number, pieces)
                progress.update(stop - start)

        for index, number in tasks:
            if pieces > 1 and job.piece_path(index, number, pieces).is_file():
                count(index, number)  # written by a run that was killed before joining them
                continue
            future = pool.submit(tokenize_shards, single, [index], None, None, (number, pieces))
            futures.setdefault(index, []).append(future)
            pending[future] = (index, number)

        def account() -> None:  # the tasks finished since: their progress; a failed one raises its error
            for future in [future for future in pending if future.done()]:
                index, number = pending.pop(future)
                future.result()
                count(index, number)

        def written(index: int) -> None:  # returns once shard index's file is there
            if index not in todo:
                return
            while any(not future.done() for future in futures.get(index, ())):
                concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
                account()
            account()
            if pieces > 1:
                join_pieces(job, index, pieces)

        try:
            merge(job, target, written)
        except BaseException:  # a failed shard, Ctrl-C: no worker starts another one
            pool.shutdown(cancel_futures=True)
            raise


def merge(job: ShardJob, target: Path, written: Callable[[int], None] | None = None) -> None:
    """Stream the shard files, in order, into ``target`` (atomically; one row group per shard); then remove
    ``tokens.shards/`` (this fingerprint's shards are merged, any other's are stale). ``written(index)``, where
    given, returns once shard ``index``'s file is there (workers still writing the later ones)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    with open_prepared(job) as source:
        schema = output_schema(source.schema_arrow, job.settings)
    tokens = empty = 0
    with artifact_io.atomic_path(target, suffix=".parquet") as temporary, \
            pq.ParquetWriter(str(temporary), schema) as out:
        for index in range(job.count):
            if written is not None:
                written(index)
            with pa.memory_map(str(job.path(index))) as shard:  # the table's buffers are the mapped file's
                table = pa.ipc.open_file(shard).read_all()
                out.write_table(table, row_group_size=max(1, table.num_rows))
                lengths = pc.list_value_length(table.column("surface"))
                tokens += pc.sum(lengths).as_py() or 0
                empty += pc.sum(pc.equal(lengths, 0)).as_py() or 0
    log_counts(job.rows, tokens, empty)
    shutil.rmtree(job.work / SHARDS, ignore_errors=True)


# Runs the missing shards elsewhere: runner(job, indices, progress) returns when their files are written.
Runner = Callable[[ShardJob, list[int], Progress], None]
_runner: contextvars.ContextVar[Runner | None] = contextvars.ContextVar("shard_runner", default=None)


@contextlib.contextmanager
def use_runner(runner: Runner) -> Iterator[None]:
    """Within the block, :func:`tokenize_stage` hands its missing shards to ``runner`` (the Dask driver)."""
    token = _runner.set(runner)
    try:
        yield
    finally:
        _runner.reset(token)


def tokenize_stage(job: ShardJob, target: Path, tokenizer: Any = None) -> None:
    """The tokenize stage: the shards not written yet, then :func:`merge` into ``target``.

    Who tokenizes them: the runner of :func:`use_runner` (Dask); else, with ``tokenize.processes`` > 1 and more
    than one task (shards, or slices of them), :func:`tokenize_in_processes` (the merge meanwhile); else this
    process (a single shard of under 512 rows still gets the tokenizer's own batch workers). ``tokenizer``
    (SentencePiece's, learned first) keeps the work in this process.
    """
    missing = job.missing(range(job.count))
    if len(missing) < job.count:
        log.info("%s: %d of %d shards already tokenized, kept", job.folder, job.count - len(missing), job.count)
    runner, processes = _runner.get(), job.settings.processes
    pieces = shard_pieces([job.size(index) for index in missing], processes)
    with Progress(sum(map(job.size, missing)), "tokenize", "sentences", log) as progress:
        if runner is not None and missing:
            runner(job, missing, progress)
        elif tokenizer is None and processes > 1 and len(missing) * pieces > 1:
            return tokenize_in_processes(job, missing, pieces, target, progress)  # the merge runs meanwhile
        else:
            tokenize_shards(job, missing, tokenizer, progress)
    merge(job, target)
