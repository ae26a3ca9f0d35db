"""What every task's training shares: determinism, optimizer and clipping, schedules, callbacks, progress."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import keras

from pipeline import seeds
from pipeline.paths import RunPaths
from pipeline.sections import TrainConfig

log = logging.getLogger(__name__)


def make_deterministic(seed: int) -> None:
    """Seed Python, NumPy and the backend, and ask TensorFlow for deterministic kernels."""
    keras.utils.set_random_seed(seeds.child_seed(seed, "keras"))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Build and train under Keras' global dtype policy ``name`` (e.g. ``"mixed_bfloat16"``), then restore it.

    Layers take the policy when they are created and keep it in their config, so a model built
    here is saved and reloaded with it.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


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


class TimeLimit(keras.callbacks.Callback):
    """Stop training when the next epoch would end past ``minutes`` after the start of training.

    The next epoch is predicted to take as long as the slowest so far, so the budget is kept
    (a user asks for an answer within the hour, not one epoch after it). With early stopping's
    ``restore_best_weights`` the best epoch is still the one saved.
    """

    def __init__(self, minutes: float, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.seconds, self.clock = 60.0 * minutes, clock
        self.started = self.epoch_started = 0.0
        self.longest = 0.0
        self.stopped_epoch: int | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.started = self.clock()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_started = self.clock()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        now = self.clock()
        self.longest = max(self.longest, now - self.epoch_started)
        if now - self.started + self.longest > self.seconds:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            log.info("time limit: stopping after epoch %d (%.1f of %.1f minutes used)", epoch + 1,
                     (now - self.started) / 60, self.seconds / 60)


def callbacks(settings: TrainConfig, folder: Path, monitor: str, checkpoint: bool = True,
              first: tuple[keras.callbacks.Callback, ...] = ()) -> list[keras.callbacks.Callback]:
    """Callbacks in order: ``first`` (they may add logs, e.g. a validation perplexity), schedule,
    best-model checkpoint, history CSV, early stopping, TensorBoard."""
    run = RunPaths(folder)
    result = [*first, *schedule_callbacks(settings, monitor)]
    if checkpoint:
        result.append(keras.callbacks.ModelCheckpoint(run.model, monitor=monitor, save_best_only=True, mode="min"))
    result.append(keras.callbacks.CSVLogger(str(run.history)))
    if settings.time_limit_minutes:
        result.append(TimeLimit(settings.time_limit_minutes))
    if settings.patience:
        result.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=settings.patience, mode="min",
                                                    restore_best_weights=True))
    if settings.tensorboard:
        result.append(keras.callbacks.TensorBoard(log_dir=str(run.tensorboard), write_graph=False))
    return result
