"""Stochastic weight averaging (``train.average = "swa"``): a Keras callback every trainer gets through
:func:`pipeline.training.callbacks`, with the state :mod:`pipeline.resume` saves for a killed training."""

from __future__ import annotations

import logging

import keras
import numpy as np

log = logging.getLogger(__name__)


class WeightAveraging(keras.callbacks.Callback):
    """Stochastic weight averaging (SWA; Izmailov et al. 2018), scored in place of the epoch's own weights.

    From epoch ``start`` (from 1) on, the weights ``w_n`` at the end of each epoch enter an equal running
    average ``w̄_n = w̄_{n-1} + (w_n - w̄_{n-1}) / n`` (float64, one copy of the model). The average is
    swapped into the model before the epoch's validation and the training weights are swapped back when the
    next epoch begins, as AWD-LSTM's averaged SGD evaluates (Merity et al. 2018). So every callback after
    this one (validation, best-epoch checkpoint, early stopping, the plateau schedule, resume) sees the
    average as that epoch's weights: the *scored* weights of an epoch are its own before ``start`` and the
    average from ``start`` on. Early stopping's restored best is the best scored epoch, whichever kind it
    is; without early stopping the last average stays in. The log says which won. Cost: one add per weight
    per epoch and no extra validation pass. No pipeline model has batch normalization, so an average needs
    no re-estimated statistics.

    Args:
        monitor: the validation log that scores an epoch (``val_loss``, ``val_perplexity``; lower is better).
        start: the first averaged epoch, from 1; 0: automatic, the epoch after the first one whose score is
            not a new best (a non-monotone trigger like NT-ASGD's, with a patience of one epoch).

    Its state after an epoch (average, training weights, start) is saved by :mod:`pipeline.resume`
    through :meth:`resume_state` and restored through :meth:`restore_resume_state`.
    """

    def __init__(self, monitor: str, start: int = 0) -> None:
        super().__init__()
        self.monitor, self.configured_start = monitor, int(start)
        self._reset()

    def _reset(self) -> None:
        self.start = self.configured_start  # 0 until the automatic trigger fires
        self.average: list[np.ndarray] | None = None  # float64 running mean of the averaged weights
        self.count = 0  # epochs in the average
        self.training_weights: list[np.ndarray] | None = None  # kept while the average is swapped in
        self.epoch = 0
        self.best: tuple[float, int, int] | None = None  # (score, epoch from 1, epochs averaged in it)
        self.pending: tuple[int, dict] | None = None  # (epoch, logs) of the epoch not yet scored

    def _variables(self) -> list:
        return [v for v in self.model.weights if "float" in str(v.dtype)]

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._reset()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._score_pending()
        if self.training_weights is not None:  # the average was scored; train on from the training weights
            for variable, value in zip(self._variables(), self.training_weights):
                variable.assign(value)
            self.training_weights = None
        self.epoch = epoch

    def on_test_begin(self, logs: dict | None = None) -> None:
        self._swap_in()  # fit's validation, after the epoch's last step

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._swap_in()  # no Keras validation (a later callback scores the epoch, e.g. a stream's)
        self.pending = (epoch, logs if logs is not None else {})  # read once every callback added its logs

    def on_train_end(self, logs: dict | None = None) -> None:
        self._score_pending()
        self.training_weights = None  # the last scored weights stay, unless early stopping restores a better epoch
        if self.best is None:
            return
        score, epoch, averaged = self.best
        if averaged > 1:
            kind = f"the average of epochs {epoch - averaged + 1}-{epoch}"
        else:
            kind = "its own weights" + (" (the first averaged epoch)" if averaged else
                                        f" (averaging from epoch {self.start})" if self.start else " (no averaging)")
        log.info("weight averaging: epoch %d scored best (%s %.4g) with %s", epoch, self.monitor, score, kind)

    def _swap_in(self) -> None:
        if self.training_weights is not None or not self.start or self.epoch + 1 < self.start:
            return
        variables = self._variables()
        self.training_weights = [np.array(v) for v in variables]
        self.count += 1
        if self.average is None:
            self.average = [w.astype(np.float64) for w in self.training_weights]
        else:
            for mean, weight in zip(self.average, self.training_weights):
                mean += (weight - mean) / self.count
        for variable, mean in zip(variables, self.average):
            variable.assign(mean.astype(variable.dtype))

    def _score_pending(self) -> None:
        if self.pending is None:
            return
        epoch, logs = self.pending
        self.pending = None
        score = logs.get(self.monitor)
        if score is None:
            return
        averaged = self.count if self.training_weights is not None else 0
        if self.best is None or float(score) < self.best[0]:
            self.best = (float(score), epoch + 1, averaged)
        elif not self.start:  # the automatic trigger: the first epoch without a new best
            self.start = epoch + 2
            log.info("weight averaging starts with epoch %d (epoch %d was no new best)", self.start, epoch + 1)

    def resume_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """``(JSON values, arrays)`` after an epoch: what a resumed training needs to continue averaging."""
        self._score_pending()  # every callback has added its logs by now (resume's callback is the last)
        arrays = {f"average_{i}": a for i, a in enumerate(self.average or [])}
        arrays.update({f"training_{i}": w for i, w in enumerate(self.training_weights or [])})
        return {"start": self.start, "count": self.count, "epoch": self.epoch, "best": self.best,
                "averaged": self.average is not None, "swapped": self.training_weights is not None}, arrays

    def restore_resume_state(self, state: dict, arrays: dict[str, np.ndarray]) -> None:
        """Set what :meth:`resume_state` returned; call it after :meth:`on_train_begin`."""
        self.start, self.count, self.epoch = int(state["start"]), int(state["count"]), int(state["epoch"])
        self.best = tuple(state["best"]) if state["best"] else None
        size = len(self._variables())
        self.average = [arrays[f"average_{i}"] for i in range(size)] if state["averaged"] else None
        self.training_weights = [arrays[f"training_{i}"] for i in range(size)] if state["swapped"] else None
