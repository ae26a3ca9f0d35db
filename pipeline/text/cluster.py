"""``pipeline tokenize --dask ADDRESS``: the tokenize stage's missing shards as Dask tasks, one per shard.

``local:N`` starts a ``distributed.LocalCluster`` of N worker processes (one thread each), the scheduler,
workers and dashboard listening on 127.0.0.1 only (free ports), and closes it when the stage ends, fails or is
interrupted; ``tcp://host:port`` uses a running scheduler (``dask scheduler``, workers started with
``dask worker``) whose workers have this package installed and see the work folder at the same path. Each task runs
:func:`pipeline.text.shards.tokenize_shards` for its shard in a worker process (the tokenizer's model loaded
once per process: :func:`pipeline.text.tokenize.load_nlp` is cached) and writes the shard's file; the client
merges them when all are done, so ``tokens.parquet`` has the bytes of a run in one process. Dask is imported
here only, when the option is given (``pip install -e '.[dask]'``).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterator
from typing import Any

from pipeline.errors import PipelineError
from pipeline.progress import Progress
from pipeline.text import shards

log = logging.getLogger(__name__)

ADDRESS = re.compile(r"^(?:local:(?P<workers>[1-9]\d*)|tcp://[^\s:/]+:\d+)$")


def check_address(address: str) -> str:
    """``address`` when it is ``local:N`` (N >= 1) or ``tcp://host:port``; a one-line error otherwise."""
    if ADDRESS.match(address) is None:
        raise PipelineError(f"--dask {address!r}: give local:N (a local cluster of N worker processes, e.g. "
                            "local:2) or a scheduler's address tcp://HOST:PORT (e.g. tcp://10.0.0.5:8786)")
    return address


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise PipelineError("--dask needs the dask and distributed packages; install them with "
                            "`pip install -e '.[dask]'`") from None
    return distributed


@contextlib.contextmanager
def quiet_dask() -> Iterator[None]:
    """Dask's INFO lines (the local scheduler's, in this process) off the stage's log for the block."""
    logger = logging.getLogger("distributed")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def connect(address: str) -> Iterator[Any]:
    """A ``distributed.Client`` of ``address`` (see the module docstring), closed, with its local cluster, on exit."""
    distributed = _import_distributed()
    match = ADDRESS.match(check_address(address))
    if match["workers"]:
        with quiet_dask(), distributed.LocalCluster(
                n_workers=int(match["workers"]), processes=True, threads_per_worker=1, host="127.0.0.1",
                scheduler_port=0, dashboard_address="127.0.0.1:0",
                silence_logs=logging.WARNING) as cluster, distributed.Client(cluster) as client:
            yield client
        return
    try:
        client = distributed.Client(address, timeout=10)
    except (OSError, TimeoutError) as error:
        raise PipelineError(f"--dask {address}: no Dask scheduler answers there ({error}); start one "
                            "(`dask scheduler`) or use --dask local:N") from None
    with client:
        yield client


_ONE_AT_A_TIME = threading.Lock()  # per worker process


def tokenize_alone(job: shards.ShardJob, index: int) -> None:
    """A Dask task: shard ``index`` of ``job``, one task at a time per worker process (a worker started with
    several threads would otherwise run two in the process's one SudachiPy tokenizer, which refuses that)."""
    with _ONE_AT_A_TIME:
        shards.tokenize_shards(job, [index])


def run_shards(client: Any, job: shards.ShardJob, indices: list[int], progress: Progress | None = None) -> None:
    """Tokenize shards ``indices`` of ``job`` on ``client``'s workers, one task per shard; return when all are
    written. The first failure cancels the rest and is raised here."""
    distributed = _import_distributed()
    single = job.in_one_process()  # Dask's worker processes are daemons, which may not fork
    futures = {client.submit(tokenize_alone, single, index, pure=False): index for index in indices}
    try:
        for future in distributed.as_completed(futures):
            future.result()
            if progress is not None:
                progress.update(job.size(futures[future]))
    except BaseException:  # a failed shard, Ctrl-C: no worker goes on with the others
        client.cancel(list(futures))
        raise


@contextlib.contextmanager
def dask_runner(address: str) -> Iterator[None]:
    """Within the block, the tokenize stage sends its missing shards to Dask at ``address`` (connected only when
    there are shards to tokenize: an up-to-date stage starts no cluster)."""
    check_address(address)

    def run(job: shards.ShardJob, indices: list[int], progress: Progress) -> None:
        with connect(address) as client:
            log.info("tokenize: %d shards on Dask %s (%d workers)", len(indices), address,
                     len(client.scheduler_info()["workers"]))
            run_shards(client, job, indices, progress)

    with shards.use_runner(run):
        yield
