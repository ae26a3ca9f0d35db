"""What every task's training shares: determinism, optimizer and clipping, schedules, callbacks, progress."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import keras

from pipeline import seeds
from pipeline.paths import RunPaths
from pipeline.sections import TrainConfig


def make_deterministic(seed: int) -> None:
    """Seed Python, NumPy and the backend, and ask TensorFlow for deterministic kernels."""
    keras.utils.set_random_seed(seeds.child_seed(seed, "keras"))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def make_optimizer(settings: TrainConfig, learning_rate=None) -> keras.optimizers.Optimizer:
    """The configured optimizer; ``clipnorm`` clips the *global* norm of all gradients together."""
    clipping = {}
    if settings.clipnorm:
        clipping["global_clipnorm"] = settings.clipnorm
    if settings.clipvalue:
        clipping["clipvalue"] = settings.clipvalue
    rate = settings.learning_rate if learning_rate is None else learning_rate
    factories = {
        "sgd": lambda: keras.optimizers.SGD(rate, momentum=settings.momentum, **clipping),
        "rmsprop": lambda: keras.optimizers.RMSprop(rate, **clipping),
        "adagrad": lambda: keras.optimizers.Adagrad(rate, **clipping),
        "adam": lambda: keras.optimizers.Adam(rate, **clipping),
    }
    return factories[settings.optimizer]()


def progress_verbosity() -> int:
    """A progress bar on a terminal, one line per epoch in logs and CI, nothing with ``--quiet``."""
    if logging.getLogger("pipeline").getEffectiveLevel() > logging.INFO:
        return 0
    return 1 if sys.stderr.isatty() else 2


def schedule_callbacks(settings: TrainConfig, monitor: str) -> list[keras.callbacks.Callback]:
    """Learning-rate schedule: constant, step decay after ``decay_start`` epochs, or reduce on plateau."""
    if settings.lr_schedule == "step":
        def step_decay(epoch: int, learning_rate: float) -> float:
            # epochs 0 .. decay_start-1 at the base rate, then one more factor per epoch
            return settings.learning_rate * settings.decay_factor ** max(0, epoch - settings.decay_start + 1)

        return [keras.callbacks.LearningRateScheduler(step_decay)]
    if settings.lr_schedule == "plateau":
        return [keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=settings.decay_factor,
                                                  patience=settings.plateau_patience, mode="min")]
    return []


def callbacks(settings: TrainConfig, folder: Path, monitor: str, checkpoint: bool = True,
              first: tuple[keras.callbacks.Callback, ...] = ()) -> list[keras.callbacks.Callback]:
    """Callbacks in order: ``first`` (they may add logs, e.g. a validation perplexity), schedule,
    best-model checkpoint, history CSV, early stopping, TensorBoard."""
    run = RunPaths(folder)
    result = [*first, *schedule_callbacks(settings, monitor)]
    if checkpoint:
        result.append(keras.callbacks.ModelCheckpoint(run.model, monitor=monitor, save_best_only=True, mode="min"))
    result.append(keras.callbacks.CSVLogger(str(run.history)))
    if settings.patience:
        result.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=settings.patience, mode="min",
                                                    restore_best_weights=True))
    if settings.tensorboard:
        result.append(keras.callbacks.TensorBoard(log_dir=str(run.tensorboard), write_graph=False))
    return result
