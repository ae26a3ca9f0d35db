"""Data-parallel training with ``tf.distribute`` (``train.distribute``), and which worker writes the run folder.

``train.distribute`` picks a strategy:

* ``"none"``: one process, no strategy (the default; every backend).
* ``"mirrored"``: ``tf.distribute.MirroredStrategy`` over this machine's devices (GPUs; one CPU replica otherwise).
* ``"multi_worker"``: ``tf.distribute.MultiWorkerMirroredStrategy`` over the processes named by the
  ``TF_CONFIG`` environment variable, one process a machine (or several on one machine for tests)::

      TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 0}}'

The model is built and compiled inside :meth:`Distribution.scope`, so its variables are mirrored
and every step all-reduces the gradients. ``train.batch_size`` stays the *global* batch.

With several workers each one reads only its share of the training examples
(:meth:`Distribution.share`, :meth:`Distribution.feed`): every worker plans the same batches (the
same seed), and replica ``r`` of ``R`` reads rows ``r, r + R, r + 2R, ...`` of each (rows of similar
length under bucketing, so the replicas pad alike). Each worker thus reads ``1/workers`` of the
examples, takes the same number of steps (which the collective ops need), and a step's gradient is
that of the same global batch as on one worker, so the learning rate keeps its meaning and the
results match one worker within float noise. The shares go to Keras through
``strategy.distribute_datasets_from_function`` (one ``tf.data`` pipeline per worker, no
re-batching); the validation batches keep Keras' own split (every worker reads them all). To go
faster on more machines, raise the batch with the replicas and scale the learning rate with it
(the linear scaling rule of Goyal et al. 2017), with a warm-up (``train.lr_schedule = "one_cycle"``).

Only the chief (task ``chief``, or ``worker`` 0 when the cluster names no chief) writes the run
folder and the training state after each epoch (:mod:`pipeline.resume`, in the work folder every
worker shares); the other workers save into a temporary folder that is deleted (as the TensorFlow
multi-worker guide does), because saving takes part in the same collective steps on every worker.
A relaunched cluster reads that state on every worker and continues after the last finished epoch.
A worker that dies breaks the collective steps: the others stop with :data:`WORKER_LOST` (the
cluster's health check, or each collective's ``COLLECTIVE_TIMEOUT_SECONDS``) instead of hanging.
Stopping is agreed (:class:`AgreeToStop`): a worker that reaches ``train.time_limit_minutes`` stops
every worker after the same epoch.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import os
import random
import re
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import tree

from pipeline import io as artifact_io
from pipeline.errors import PipelineError

log = logging.getLogger(__name__)

# A collective op (an all-reduce of a step) waiting longer than this fails: a worker hangs. A dead one is
# noticed sooner (its broken connection, or the cluster's heartbeat); long enough for a worker that starts late.
COLLECTIVE_TIMEOUT_SECONDS = 300.0
WORKER_LOST = ("a worker of the cluster stopped or cannot be reached ({error}); relaunch every worker with the "
               "same config and TF_CONFIG: training resumes {resumes}")

# the line of a collective's error that names the cause ("Connection reset by peer", "tasks are unhealthy", ...)
_PEER_FAILURE = re.compile(r"unhealthy|reset by peer|abort|deadline|timed? ?out|unavailable", re.IGNORECASE)

TF_CONFIG_EXAMPLE = ('TF_CONFIG=\'{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}\'')


@dataclass(frozen=True)
class Distribution:
    """A ``tf.distribute`` strategy (``None``: plain training) and this process's role.

    Attributes:
        kind: ``train.distribute``.
        strategy: the ``tf.distribute.Strategy``, or ``None`` for ``"none"``.
        is_chief: whether this process writes the run folder.
        replicas: replicas in sync over all workers (1 without a strategy).
        worker: this process's place among the ``workers`` (the chief is 0; TensorFlow's ``id_in_cluster``).
        workers: processes in the cluster (1 without ``multi_worker``).
    """

    kind: str = "none"
    strategy: Any = None
    is_chief: bool = True
    replicas: int = 1
    worker: int = 0
    workers: int = 1

    def share(self, batches: Any) -> Any:
        """``batches`` (a ``SequenceBatches``-like plan) cut down to this worker's rows; unchanged on one worker."""
        if self.workers == 1:
            return batches
        per_worker = self.replicas // self.workers
        return WorkerShare(batches, range(self.worker * per_worker, (self.worker + 1) * per_worker), self.replicas)

    def feed(self, dataset: Any, shuffle: bool = True) -> tuple[Any, list]:
        """``(what model.fit reads, callbacks to add to the fit)`` for the training ``dataset``.

        ``shuffle``: the ``model.fit(shuffle=...)`` the task passes on one worker (the order of the batches).

        On several workers ``dataset`` is this worker's :meth:`share`, read by a ``tf.data`` pipeline
        per worker whose elements go to its replicas in turn (``distribute_datasets_from_function``):
        Keras' own ``experimental_distribute_dataset`` would read every batch on every worker and
        keep a slice. The callbacks, to put last: one starts each epoch's plan (``dataset.on_epoch_end()``,
        which Keras calls on a ``PyDataset`` but not on a ``tf.data`` input) and logs the examples this
        worker read (``callbacks[0].examples_read``, per epoch); :class:`AgreeToStop` then stops every worker together.
        """
        if self.workers == 1:
            return dataset, []
        feed = _WorkerFeed(dataset, self, shuffle)
        return feed.distributed(), [feed, AgreeToStop(self)]

    def feed_validation(self, dataset: Any) -> Any:
        """What ``model.fit`` reads as ``validation_data``: ``dataset`` itself on one worker; on several, ``dataset``
        (this worker's :meth:`share` of the validation batches, in their fixed order) through a ``tf.data``
        pipeline of its own, as :meth:`feed` does for training, so no worker reads the others' rows. The
        validation metrics are sums over every replica: they are those of the whole split."""
        if self.workers == 1 or dataset is None:
            return dataset
        return _WorkerFeed(dataset, self, shuffle=False).distributed()

    def scope(self) -> contextlib.AbstractContextManager:
        """Build and compile the model inside this: its variables are then created per replica."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    @contextlib.contextmanager
    def fitting(self, model: Any) -> Iterator[None]:
        """Call ``model.fit`` inside this (the strategy's scope).

        Two workarounds for Keras 3.15 with ``MultiWorkerMirroredStrategy``, both for several workers only
        (the Keras internals they use are in :mod:`pipeline.keras_compat`):

        * a fit under a strategy starts by reducing the first batch over the replicas to build the
          model symbolically, which fails for a nested ``(inputs, targets)`` batch; our model is
          already built, so the trainer is given no strategy of its own and takes the one of this
          scope instead (``tf.distribute.get_strategy()``, what its ``distribute_strategy`` falls back to);
        * the step logs are reduced over the workers with ``reduce("MEAN", axis=0)``, which fails on
          scalars (tensorflow/tensorflow#72388); the steps return each log as a one-element vector,
          whose mean over the workers is the global value. The epoch logs that early stopping,
          checkpoints and ``history.csv`` read are the metrics' variables summed over every
          replica, so they are the same on every worker, which then stop at the same epoch.

        A collective step that fails because a worker died (or hangs past ``COLLECTIVE_TIMEOUT_SECONDS``)
        becomes :data:`WORKER_LOST`, a PipelineError saying where training resumes.
        """
        if self.strategy is None:
            yield
            return
        with self.strategy.scope():
            if self.kind != "multi_worker":
                yield
                return
            import tensorflow as tf

            from pipeline.interrupts import unfinished_training
            from pipeline.keras_compat import take_strategy_from_scope, wrap_steps

            take_strategy_from_scope(model)
            wrap_steps(model, _logs_as_vectors)
            try:
                yield
            except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as error:
                saved = unfinished_training()
                resumes = f"after epoch {saved[1]}, the last one every worker finished" if saved else "from the start"
                lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [""]
                cause = next((line for line in lines if _PEER_FAILURE.search(line)), lines[0])
                reason = f"{type(error).__name__}: {cause[:200]}"
                raise PipelineError(WORKER_LOST.format(error=reason, resumes=resumes)) from None

    @contextlib.contextmanager
    def output_folder(self, folder: Path) -> Iterator[Path]:
        """The folder to write the run into: ``folder`` atomically on the chief, a deleted temporary one elsewhere.

        Several workers then wait for each other (one all-reduce), so that none exits while the chief still
        writes: the cluster's heartbeat would report it as crashed.
        """
        if self.is_chief:
            with artifact_io.atomic_directory(folder) as building:
                yield building
        else:
            with tempfile.TemporaryDirectory(prefix="pipeline-worker-") as scratch:
                yield Path(scratch)
        if self.workers > 1:
            self.all_sum(0.0)

    def all_sum(self, value: float) -> float:
        """``value`` summed over the replicas (one all-reduce; every worker must call it)."""
        import tensorflow as tf

        return float(self.strategy.reduce("SUM", self.strategy.run(lambda: tf.constant([value])), axis=None)[0])


class WorkerShare:
    """The rows of every batch of ``batches`` that ``parts`` of ``replicas`` read: ``rows[part::replicas]``.

    ``batches`` is a ``SequenceBatches`` (or ``LanguageModelBatches``): its ``batches`` plan, one array
    of example indices per global batch, is the same on every worker (the same seed). The share
    reads a shallow copy of ``batches`` (``batches`` itself keeps every row, e.g. for predictions after
    the fit; the two draw their shuffles from one generator) and replaces the copy's plan by its parts,
    one batch per part and global batch, in step order (a worker's replicas read consecutive elements),
    so ``len(share) == len(global plan) * len(parts)``. A global batch with fewer rows than replicas
    (the last, short one) joins the batch before it: every replica gets rows in every step.
    """

    def __init__(self, batches: Any, parts: range, replicas: int) -> None:
        self.dataset, self.parts, self.replicas = copy.copy(batches), parts, replicas
        self._share()

    def _share(self) -> None:
        plan = [np.asarray(rows) for rows in self.dataset.batches]  # the global batches this epoch
        short = next((index for index, rows in enumerate(plan) if len(rows) < self.replicas), None)
        if short is not None and len(plan) > 1:
            rows = plan.pop(short)
            neighbour = max(short - 1, 0)
            plan[neighbour] = np.concatenate([plan[neighbour], rows])
        self.dataset.batches = [rows[part::self.replicas] for rows in plan for part in self.parts]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index]

    def on_epoch_end(self) -> None:
        """The next epoch's plan (the dataset's shuffle), shared again."""
        self.dataset.on_epoch_end()
        self._share()

    def rows(self) -> np.ndarray:
        """The example indices this share reads in the current epoch (sorted)."""
        return np.sort(np.concatenate(self.dataset.batches)) if self.dataset.batches else np.zeros(0, np.int64)


class _WorkerFeed(keras.callbacks.Callback):
    """A worker's ``tf.data`` pipeline over its share, and the callback that starts each epoch's plan."""

    def __init__(self, dataset: Any, distribution: Distribution, shuffle: bool) -> None:
        super().__init__()
        self.dataset, self.distribution, self.shuffle = dataset, distribution, shuffle
        self.read = 0  # examples read in this epoch
        self.examples_read: list[int] = []  # per finished epoch

    def _batches(self) -> Iterator[tuple]:
        """This epoch's batches; with ``shuffle`` the global batches in the order Keras shuffles a ``PyDataset``'s
        into on one worker (``random.shuffle`` of Python's global state, the same on every worker)."""
        parts = self.distribution.replicas // self.distribution.workers  # this worker's replicas
        order = list(range(len(self.dataset) // parts))
        if self.shuffle:
            random.shuffle(order)
        for step in order:
            for index in range(step * parts, (step + 1) * parts):
                batch = tuple(self.dataset[index])
                self.read += len(tree.flatten(batch)[0])
                yield batch

    def distributed(self) -> Any:
        """``distribute_datasets_from_function`` over this worker's batches, every dimension of any size."""
        import tensorflow as tf

        first = tuple(self.dataset[0])
        signature = tree.map_structure(
            lambda array: tf.TensorSpec((None,) * np.ndim(array), tf.as_dtype(np.asarray(array).dtype)), first)
        # no prefetch: an iterator Keras opens at an epoch's end and then drops reads nothing
        return self.distribution.strategy.distribute_datasets_from_function(
            lambda context: tf.data.Dataset.from_generator(self._batches, output_signature=signature)
            .apply(tf.data.experimental.assert_cardinality(len(self.dataset))))

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.dataset.on_epoch_end()  # as Keras' fit does to a PyDataset before its first epoch

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.read = 0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.examples_read.append(self.read)
        log.info("epoch %d: worker %d of %d read %d training examples", epoch + 1, self.distribution.worker,
                 self.distribution.workers, self.read)
        self.dataset.on_epoch_end()


class AgreeToStop(keras.callbacks.Callback):
    """After each epoch, stop every worker when any one wants to stop (its time limit): a worker that stopped
    alone would leave the others waiting in their next collective step. Put it after the callbacks that
    may stop training; the decision is a sum of 0/1 flags over the replicas (one all-reduce)."""

    def __init__(self, distribution: Distribution) -> None:
        super().__init__()
        self.distribution = distribution

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        wanted = bool(self.model.stop_training)
        stopping = self.distribution.all_sum(1.0 if wanted else 0.0) > 0
        if stopping and not wanted:
            log.info("stopping after epoch %d with the other workers (one reached its time limit)", epoch + 1)
        self.model.stop_training = stopping


def _logs_as_vectors(step: Any) -> Any:
    """``step`` with each scalar log reshaped to ``(1,)`` (see :meth:`Distribution.fitting`)."""
    from keras import ops

    def vector_logs(data: Any) -> dict:
        return {name: ops.reshape(value, (1,)) for name, value in step(data).items()}

    return vector_logs


def cluster_task(environment: dict[str, str] | None = None) -> tuple[dict, str, int]:
    """``(cluster, task type, task index)`` from ``TF_CONFIG``; a missing or malformed one is a PipelineError."""
    text = (os.environ if environment is None else environment).get("TF_CONFIG", "")
    if not text.strip():
        raise PipelineError("train.distribute = \"multi_worker\" needs the TF_CONFIG environment variable on every "
                            f"worker, e.g. {TF_CONFIG_EXAMPLE}")
    try:
        tf_config = json.loads(text)
        cluster, task = tf_config["cluster"], tf_config["task"]
        task_type, index = str(task["type"]), int(task["index"])
        members = cluster[task_type]
    except (ValueError, KeyError, TypeError) as error:
        raise PipelineError(f"TF_CONFIG is not valid ({type(error).__name__}: {error}); expected "
                            f"{TF_CONFIG_EXAMPLE}") from None
    if not 0 <= index < len(members):
        raise PipelineError(f"TF_CONFIG task index {index} is out of range: the cluster has {len(members)} "
                            f"{task_type!r} task(s)")
    return cluster, task_type, index


def tf_config(workers: list[str], index: int) -> str:
    """The ``TF_CONFIG`` of worker ``index`` of a cluster of ``workers`` (``"host:port"``) with no chief."""
    return json.dumps({"cluster": {"worker": list(workers)}, "task": {"type": "worker", "index": index}})


def local_tf_configs(count: int) -> list[str]:
    """``TF_CONFIG`` values for ``count`` workers on this machine (127.0.0.1, on ports the system hands out now,
    bound and released): for tests and benchmarks."""
    sockets = [socket.socket() for _ in range(count)]
    for each in sockets:
        each.bind(("127.0.0.1", 0))
    workers = [f"127.0.0.1:{each.getsockname()[1]}" for each in sockets]
    for each in sockets:
        each.close()
    return [tf_config(workers, index) for index in range(count)]


def is_chief_task(cluster: dict, task_type: str, index: int) -> bool:
    """The chief writes the run: task ``chief``, or ``worker`` 0 when there is no chief (TensorFlow's rule)."""
    return task_type == "chief" or (task_type == "worker" and index == 0 and "chief" not in cluster)


@functools.cache
def _strategy(kind: str) -> Any:
    """One strategy per process: TensorFlow configures a multi-worker cluster once, before any other op."""
    import tensorflow as tf

    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    cluster_task()  # a clear error before TensorFlow reads TF_CONFIG itself
    # a worker that hangs mid-step leaves the others' collectives waiting: they fail after the timeout
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_TIMEOUT_SECONDS)
    try:
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except RuntimeError as error:  # "Collective ops must be configured at program startup"
        raise PipelineError(f"train.distribute = \"multi_worker\" trains from `pipeline train` or `pipeline run` "
                            f"on every worker, not from this command ({error}); run `pipeline train` first") from None


def make_distribution(kind: str, batch_size: int) -> Distribution:
    """The strategy ``train.distribute = kind`` names (made on first call, then reused).

    The CLI calls this as soon as the config is loaded, because ``MultiWorkerMirroredStrategy``
    must exist before TensorFlow runs its first op. ``batch_size``, the global batch, must give
    every replica at least one row.
    """
    if kind == "none":
        return Distribution()
    import keras

    if keras.backend.backend() != "tensorflow":
        raise PipelineError(f"train.distribute = {kind!r} uses tf.distribute and needs KERAS_BACKEND=tensorflow "
                            f"(this process runs {keras.backend.backend()!r}); set train.distribute = \"none\"")
    strategy = _strategy(kind)
    replicas = int(strategy.num_replicas_in_sync)
    if batch_size < replicas:
        raise PipelineError(f"config key 'train.batch_size' = {batch_size} is invalid: it must be >= the {replicas} "
                            "replicas of train.distribute (it is the global batch, split between them)")
    if kind == "mirrored":
        return Distribution(kind, strategy, True, replicas)
    cluster, task_type, index = cluster_task()
    workers = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
    worker = 0 if task_type == "chief" else index + len(cluster.get("chief", []))  # TensorFlow's id_in_cluster
    return Distribution(kind, strategy, is_chief_task(cluster, task_type, index), replicas, worker, workers)
