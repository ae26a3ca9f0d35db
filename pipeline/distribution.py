"""Data-parallel training with ``tf.distribute`` (``train.distribute``), and which worker writes the run folder.

``train.distribute`` picks a strategy:

* ``"none"``: one process, no strategy (the default; every backend).
* ``"mirrored"``: ``tf.distribute.MirroredStrategy`` over this machine's devices (GPUs; one CPU replica otherwise).
* ``"multi_worker"``: ``tf.distribute.MultiWorkerMirroredStrategy`` over the processes named by the
  ``TF_CONFIG`` environment variable, one process a machine (or several on one machine for tests)::

      TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 0}}'

The model is built and compiled inside :meth:`Distribution.scope`, so its variables are mirrored
and every step all-reduces the gradients. ``train.batch_size`` stays the *global* batch: Keras
splits each batch into ``batch_size / replicas`` rows per replica, every worker reads the same
batches (same seed) and keeps its share of each, so each worker takes the same number of steps
(which the collective ops need) and the learning rate keeps its meaning; the metrics match one
worker within noise. To go faster on more machines, raise the batch with the replicas and scale
the learning rate with it (the linear scaling rule of Goyal et al. 2017, as the TensorFlow
distributed-training guide recommends), with a warm-up (``train.lr_schedule = "one_cycle"``).

Only the chief (task ``chief``, or ``worker`` 0 when the cluster names no chief) writes the run
folder; the other workers save into a temporary folder that is deleted (as the TensorFlow
multi-worker guide does), because saving takes part in the same collective steps on every worker.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import io as artifact_io
from pipeline.errors import PipelineError

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
    """

    kind: str = "none"
    strategy: Any = None
    is_chief: bool = True
    replicas: int = 1

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
        """
        if self.strategy is None:
            yield
            return
        with self.strategy.scope():
            if self.kind == "multi_worker":
                from pipeline.keras_compat import take_strategy_from_scope, wrap_steps

                take_strategy_from_scope(model)
                wrap_steps(model, _logs_as_vectors)
            yield

    @contextlib.contextmanager
    def output_folder(self, folder: Path) -> Iterator[Path]:
        """The folder to write the run into: ``folder`` atomically on the chief, a deleted temporary one elsewhere."""
        if self.is_chief:
            with artifact_io.atomic_directory(folder) as building:
                yield building
        else:
            with tempfile.TemporaryDirectory(prefix="pipeline-worker-") as scratch:
                yield Path(scratch)


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
    return tf.distribute.MultiWorkerMirroredStrategy()


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
    chief = kind == "mirrored" or is_chief_task(*cluster_task())
    replicas = int(strategy.num_replicas_in_sync)
    if batch_size < replicas:
        raise PipelineError(f"config key 'train.batch_size' = {batch_size} is invalid: it must be >= the {replicas} "
                            "replicas of train.distribute (it is the global batch, split between them)")
    return Distribution(kind, strategy, chief, replicas)
