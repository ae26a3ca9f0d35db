"""Resumable training: the state after every finished epoch, so a killed ``train`` continues where it was.

After each epoch :class:`Resume`'s callback (placed last, after the callbacks whose state it
saves) replaces ``work/<corpus>/resume/<run>/`` as a whole (:func:`pipeline.io.atomic_directory`)
with everything the next epoch depends on:

* every model variable (weights, and the states of Keras' seed generators, so dropout draws the
  same masks) and every optimizer variable (iteration count, learning rate, moments);
* the state of the early-stopping, plateau and checkpoint callbacks, early stopping's best weights,
  and the running average of :class:`pipeline.averaging.WeightAveraging` (``train.average``);
* the run folder's ``history.csv`` and best-epoch ``model.keras`` written so far;
* Python's global random state, from which Keras shuffles the order of the batches each epoch.

A rerun with the same config (``identity``) restores them, fits from the next epoch
(``initial_epoch``), and replays the per-epoch shuffles of the training batches
(:meth:`Resume.fast_forward`): with deterministic kernels its final weights and metrics equal those
of an uninterrupted run. Keras' ``BackupAndRestore`` restores only the weights, optimizer and epoch,
and our callbacks' state would start over. The time limit (``train.time_limit_minutes``) restarts
with the rerun. The state is deleted when training ends (:meth:`Resume.finish`). With several
workers (:mod:`pipeline.distribution`) only the chief saves and deletes it, in the work folder they
share; every worker reads it when it starts, so a relaunched cluster continues after the same epoch.
:func:`unfinished_training` tells an interrupted command whether a rerun resumes, and after which epoch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import shutil
from pathlib import Path
from typing import Any

import keras
import numpy as np

from pipeline import interrupts
from pipeline import io as artifact_io
from pipeline.keras_compat import (
    callback_state,
    early_stopping_best_weights,
    restore_callback_state,
    set_early_stopping_best_weights,
    training_variables,
)
from pipeline.paths import Paths, RunPaths

log = logging.getLogger(__name__)

STATE, VARIABLES, BEST_WEIGHTS = "state.json", "variables.npz", "best_weights.npz"
OWN_CALLBACK = "callback_{}.npz"  # the arrays of callback number {} (pipeline.averaging.WeightAveraging's average)


def identity_of(settings: Any) -> str:
    """A digest of what must not change between the killed run and its resumption (the resolved config)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def finished_trainings_folder(paths: Paths, area: str, identity: dict) -> Path:
    """``work/<corpus>/<area>/<run>-<key>/``: where a train stage of several trainings (self-training's rounds, a
    language model's members) keeps the finished ones until its run is written, so that a killed stage goes on
    from them. ``key``: 16 hex digits of ``identity`` (what the trainings read of the config) and of the vectorized
    corpus (``ids``, ``vocab``, ``embeddings``). This run's folders of another key (another config or corpus) are
    removed: they cannot be resumed."""
    from pipeline.stages import file_digest  # the stages import this module's users

    key = identity_of({**identity, **{path.name: file_digest(path)
                                      for path in (paths.ids, paths.vocab, paths.embeddings)}})[:16]
    folder = paths.work / area / f"{paths.run.name}-{key}"
    for stale in (paths.work / area).glob(f"{paths.run.name}-*"):
        if stale != folder and re.fullmatch(rf"{re.escape(paths.run.name)}-[0-9a-f]{{16}}", stale.name):
            shutil.rmtree(stale, ignore_errors=True)
    return folder


class Resume:
    """The resumable state of one training, in ``directory``; the run is built in ``folder``.

    Args:
        directory: where the state lives between processes (``Paths.resume``).
        folder: the run folder being written (its ``history.csv`` and ``model.keras`` are saved too).
        identity: :func:`identity_of` the config; a state saved under another identity is discarded.
        epochs: the configured number of epochs.
        writes: whether this process saves the state (only the chief of several workers does; every
            worker reads it, from the work folder they share).

    Example:
        >>> resume = Resume(paths.resume, folder, identity_of(config.to_dict()), settings.epochs)  # doctest: +SKIP
        >>> resume.fast_forward(train_batches)  # the shuffles of the epochs already done   # doctest: +SKIP
        >>> model.fit(..., initial_epoch=resume.initial_epoch, callbacks=[..., resume.callback])  # doctest: +SKIP
        >>> resume.finish()  # after the run folder is written                              # doctest: +SKIP
    """

    def __init__(self, directory: Path, folder: Path, identity: str, epochs: int, writes: bool = True) -> None:
        self.directory, self.folder, self.identity, self.writes = Path(directory), Path(folder), identity, writes
        self.state = self._read_state()
        if self.state.get("identity") != identity:
            if self.state:
                log.info("%s: saved training state is for other settings; starting over", self.directory)
            self.state = {}
        stopped = self.state.get("stopped", False)  # early stopping or the time limit had ended it
        self.initial_epoch = epochs if stopped else int(self.state.get("epoch", 0))
        if self.initial_epoch:
            interrupts.training_saved(self.directory, self.state["epoch"])
            for path in (RunPaths(self.directory).history, RunPaths(self.directory).model):
                if path.is_file():
                    shutil.copy2(path, self.folder / path.name)
            log.info("resuming training after epoch %d from %s", self.state["epoch"], self.directory)
        self.callback = _SaveAndRestore(self)

    def _read_state(self) -> dict:
        try:
            state = artifact_io.read_json(self.directory / STATE)
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def fast_forward(self, dataset: Any) -> None:
        """Replay ``dataset.on_epoch_end()`` once per finished epoch: its shuffles continue where they were."""
        for _ in range(int(self.state.get("epoch", 0))):
            dataset.on_epoch_end()

    def finish(self) -> None:
        """Training is over and its run folder written: the saved state is no longer needed."""
        if self.writes:
            shutil.rmtree(self.directory, ignore_errors=True)
        interrupts.training_finished(self.directory)


class _SaveAndRestore(keras.callbacks.Callback):
    """Restores the state at the start of ``fit`` (after the other callbacks reset theirs) and saves
    it after every epoch (after they updated it): put it last."""

    def __init__(self, resume: Resume) -> None:
        super().__init__()
        self.resume = resume
        self.callbacks: list[keras.callbacks.Callback] = []  # the others, set by pipeline.training.callbacks

    def on_train_begin(self, logs: dict | None = None) -> None:
        state = self.resume.state
        if not state.get("epoch"):
            return
        model_variables, optimizer_variables = training_variables(self.model)
        with np.load(self.resume.directory / VARIABLES) as saved:
            for prefix, variables in (("model", model_variables), ("optimizer", optimizer_variables)):
                for index, variable in enumerate(variables):
                    variable.assign(saved[f"{prefix}_{index}"])
        version, internal, gauss = state["python_random"]
        random.setstate((version, tuple(internal), gauss))
        for callback, saved_state in zip(self.callbacks, state["callbacks"]):
            restore_callback_state(callback, saved_state)
            if isinstance(callback, keras.callbacks.EarlyStopping) and (self.resume.directory / BEST_WEIGHTS).is_file():
                with np.load(self.resume.directory / BEST_WEIGHTS) as best:
                    set_early_stopping_best_weights(callback, [best[f"weight_{i}"] for i in range(len(best.files))])
        for index, own_state in state.get("own_callbacks", {}).items():  # e.g. a running weight average
            with np.load(self.resume.directory / OWN_CALLBACK.format(index)) as arrays:
                self.callbacks[int(index)].restore_resume_state(own_state, dict(arrays))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not self.resume.writes:
            interrupts.training_saved(self.resume.directory, epoch + 1)  # what the chief saved
            return
        model_variables, optimizer_variables = training_variables(self.model)
        arrays = {f"model_{i}": np.asarray(v) for i, v in enumerate(model_variables)}
        arrays.update({f"optimizer_{i}": np.asarray(v) for i, v in enumerate(optimizer_variables)})
        # our callbacks with array state: resume_state() -> (JSON values, arrays), restore_resume_state(values, arrays)
        own = {str(index): callback.resume_state() for index, callback in enumerate(self.callbacks)
               if hasattr(callback, "resume_state")}
        state = {"identity": self.resume.identity, "epoch": epoch + 1, "stopped": bool(self.model.stop_training),
                 "callbacks": [callback_state(callback) for callback in self.callbacks],
                 "own_callbacks": {index: values for index, (values, _) in own.items()},
                 "python_random": random.getstate()}
        with artifact_io.atomic_directory(self.resume.directory) as building:
            np.savez(building / VARIABLES, **arrays)
            best_weights = next((weights for weights in map(early_stopping_best_weights, self.callbacks)
                                 if weights is not None), None)
            if best_weights is not None:
                np.savez(building / BEST_WEIGHTS, **{f"weight_{i}": np.asarray(w) for i, w in enumerate(best_weights)})
            for path in (RunPaths(self.resume.folder).history, RunPaths(self.resume.folder).model):
                if path.is_file():
                    shutil.copy2(path, building / path.name)
            for index, (_, arrays) in own.items():
                np.savez(building / OWN_CALLBACK.format(index), **arrays)
            artifact_io.write_json(building / STATE, state)
        interrupts.training_saved(self.resume.directory, epoch + 1)
