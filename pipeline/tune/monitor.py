"""The Keras callback that watches a trial's training: it feeds the pruner and keeps the time limit.

The frame's training builds its own callbacks (:func:`pipeline.training.callbacks`) and has no hook
for one from outside a stage, so :func:`added_to_fit` adds ours to every ``keras.Model.fit`` call made
inside a ``with`` block (one stage's training) and restores ``fit`` when the block ends. Ours come
last: early stopping, checkpoint and the saved training state do their work for each epoch first.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import keras

log = logging.getLogger(__name__)


class TrialMonitor(keras.callbacks.Callback):
    """Report the validation curve to an Optuna trial after every epoch; stop when pruned or out of time.

    Args:
        trial: the ``optuna.Trial`` being trained.
        curve: the Keras log reported per epoch (``val_accuracy``, ``val_perplexity``); the step is the epoch.
        deadline: ``clock()`` value past which training stops after the current batch; None for no limit.
        clock: seconds, monotonic (a parameter so that tests can drive it).

    After training, ``pruned`` says the pruner stopped it, ``cut`` that the time limit did.
    """

    def __init__(self, trial: Any, curve: str, deadline: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.trial, self.curve, self.deadline, self.clock = trial, curve, deadline, clock
        self.pruned = self.cut = False

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.deadline is not None and not self.cut and self.clock() > self.deadline:
            self.cut = True
            self.model.stop_training = True
            log.info("tune: the time limit has passed; trial %d stops after this batch", self.trial.number)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.curve)
        if value is None or not math.isfinite(float(value)) or self.cut:
            return
        self.trial.report(float(value), epoch)
        if self.trial.should_prune():
            self.pruned = True
            self.model.stop_training = True
            log.info("tune: trial %d pruned after epoch %d (%s %.4f)", self.trial.number, epoch + 1, self.curve,
                     float(value))


@contextlib.contextmanager
def added_to_fit(*extra: keras.callbacks.Callback) -> Iterator[None]:
    """Within the block, every ``keras.Model.fit`` call also runs the callbacks ``extra`` (after its own)."""
    own = keras.Model.__dict__.get("fit")
    original = keras.Model.fit

    def fit(self, *args: Any, callbacks: list | None = None, **kwargs: Any) -> Any:
        return original(self, *args, callbacks=[*(callbacks or []), *extra], **kwargs)

    keras.Model.fit = fit
    try:
        yield
    finally:
        if own is None:
            del keras.Model.fit
        else:
            keras.Model.fit = own
