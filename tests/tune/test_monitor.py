"""The trial monitor of ``pipeline tune`` (pipeline/tune/monitor.py) on a real tiny Keras fit: it reports the
validation curve per epoch, stops a pruned trial and a trial past the time limit, and ``added_to_fit``
adds it to ``fit`` only inside its block."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import optuna

from pipeline.tune.monitor import TrialMonitor, added_to_fit


def fit(epochs: int, *extra) -> keras.callbacks.History:
    """A one-layer model on 32 random examples, 4 batches an epoch, with a validation split."""
    generator = np.random.default_rng(0)
    inputs, targets = generator.normal(size=(32, 3)), generator.integers(0, 2, size=32)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    with added_to_fit(*extra):
        return model.fit(inputs, targets, validation_data=(inputs, targets), batch_size=8, epochs=epochs, verbose=0)


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return True


def test_the_curve_is_reported_each_epoch_and_fit_is_restored_after_the_block():
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    monitor = TrialMonitor(trial, "val_accuracy")
    history = fit(3, monitor)
    assert len(history.epoch) == 3 and not (monitor.pruned or monitor.cut)
    assert study.trials[0].intermediate_values == dict(enumerate(history.history["val_accuracy"]))
    assert "fit" not in keras.Model.__dict__  # the class's own fit again (inherited from the trainer)
    again = TrialMonitor(study.ask(), "val_accuracy")
    fit(1)  # outside the block: not called
    assert study.trials[1].intermediate_values == {} and again.model is None


def test_a_pruned_trial_and_a_trial_past_the_time_limit_stop():
    pruned = TrialMonitor(optuna.create_study(pruner=AlwaysPrune()).ask(), "val_loss")
    assert len(fit(5, pruned).epoch) == 1 and pruned.pruned
    ticks = itertools.count()  # one second a call: past the deadline after the third of the four batches
    cut = TrialMonitor(optuna.create_study().ask(), "val_loss", deadline=1.5, clock=lambda: float(next(ticks)))
    history = fit(5, cut)
    assert cut.cut and not cut.pruned and len(history.epoch) == 1
    assert "val_loss" in history.history  # the cut epoch still ends with its validation
