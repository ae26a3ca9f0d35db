"""The study: what is searched, where Optuna keeps it, and how one trial trains and is scored.

* The study lives in ``work/<corpus>/tune/<fingerprint>/`` (:func:`study_folder`): Optuna's journal file
  (``journal.log``, append-only, so a ``kill -9`` loses at most the trial that was running), the
  validation-only copy of the vectorized corpus (``view/``) and the trials' scratch run folders. The
  fingerprint covers the config (all but its run name and folders), the search space, the objective and
  the vectorized data, so a killed ``pipeline tune`` run again continues its study, and changing any of
  those starts a new one. ``--trials`` counts the study's finished trials (complete or pruned).
* The front end runs once on the config as given (:func:`pipeline.stages.run_stage`: unchanged stages are
  skipped by their fingerprints). Trials then train on ``view/``, which holds the vocabulary, the vectors
  and the train and validation splits only: the test split is not there to be read.
* A trial is the config with the sampled values (:func:`pipeline.tune.space.with_values`), trained by the
  frame's ``train`` stage (and the task's stages before it, e.g. ``pretrain``) into a scratch run folder,
  scored by the task's validation scorer, then deleted: no trial publishes into ``saved_models/``.
* Each trial's sampler is seeded from ``seed`` and the trial's number, so a resumed study samples what
  an uninterrupted one would have: the same seed gives the same trials.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import io as artifact_io
from pipeline import registry, seeds
from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.paths import Paths
from pipeline.tune.plugin import TuneConfig
from pipeline.tune.space import Parameter, get_value, probe, resolve, with_values

log = logging.getLogger(__name__)

STUDY_NAME = "tune"
FROM_CONFIG = "from_config"  # user attribute of the trial that trains the config as given


@dataclass(frozen=True)
class Job:
    """One ``pipeline tune`` request, checked.

    Attributes:
        config: the task config as given (file and ``--set``, without ``[tune]``).
        data: the same as nested dicts, as written: what the best config is written from.
        resolved: ``config.to_dict()``, defaults included (tables that ``data`` lacks come from it).
        where: the config file, for messages.
        tune: the ``[tune]`` section.
        space: the searched parameters by config key.
        search: the task's :class:`pipeline.registry.SearchSpace` (metrics, scorer, curve).
        metric: the objective, one of ``search.metrics``.
    """

    config: Config
    data: dict
    resolved: dict
    where: str
    tune: TuneConfig
    space: dict[str, Parameter]
    search: registry.SearchSpace
    metric: str

    @property
    def direction(self) -> str:
        return self.search.metrics[self.metric]

    def build(self, data: dict, where: str | None = None) -> Config:
        """The config of ``data`` (nested dicts), checked as ``pipeline run`` checks it."""
        from pipeline import config as config_module
        from pipeline.models import check_layers

        built = config_module.from_dict(data, where=where or self.where)
        check_layers(built.model)
        return built


def read_toml(path: Path) -> dict:
    """The parsed TOML file ``path``; a missing or broken file is a one-line error naming it."""
    if not path.is_file():
        raise PipelineError(f"{path}: config file not found; pass an existing .toml file, e.g. configs/default.toml")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise PipelineError(f"{path}: not UTF-8 text; save the config as UTF-8") from None
    except tomllib.TOMLDecodeError as error:
        raise PipelineError(f"{path}: invalid TOML ({error}); fix the syntax at that line") from None


def load_job(path: Path, overrides: Sequence[str] = ()) -> Job:
    """Read a task config with an optional ``[tune]`` table; check both, the search space and its ranges."""
    from pipeline import config as config_module

    where = str(path)
    data = config_module.apply_overrides(read_toml(path), overrides)
    tune_data = data.pop("tune", {})
    tune = config_module.from_dict({"tune": tune_data}, where=where, owner="tune").tune
    job = Job(config=None, data=data, resolved={}, where=where, tune=tune, space={},  # type: ignore[arg-type]
              search=None, metric="")  # type: ignore[arg-type]
    config = job.build(data)
    task = registry.task(config.model.task)
    if task.search_space is None:
        raise PipelineError(f"{where}: `pipeline tune` has no search space for a {task.name} model; tune a "
                            "classifier or generator config")
    search = task.search_space(config)
    metric = tune.metric or next(iter(search.metrics))
    if metric not in search.metrics:
        raise PipelineError(f"{where}: config key 'tune.metric' = {metric!r} is invalid: it must be one of "
                            + ", ".join(repr(name) for name in search.metrics) + f" for a {task.name}")
    resolved = config.to_dict()
    space = resolve(search.parameters, tune)
    job = dataclasses.replace(job, config=config, resolved=resolved, space=space, search=search, metric=metric)
    probe(space, data, resolved, job.build)
    return job


# ------------------------------------------------------------------ where the study lives
def data_files(paths: Paths) -> dict[str, Path]:
    """The vectorized corpus a trial reads (and its copy in the view holds)."""
    return {"vocab": paths.vocab, "embeddings": paths.embeddings, "ids": paths.ids, "tokens": paths.tokens}


def fingerprint(job: Job, paths: Paths) -> str:
    """What identifies a study: the config but for its run name and folders, the space, the objective and
    pruner, and the contents of the vectorized corpus."""
    from pipeline.stages import file_digest

    tune = job.tune
    record = {
        "config": {key: value for key, value in job.resolved.items()
                   if key not in ("run_name", "work_dir", "models_dir")},
        "space": [dataclasses.asdict(parameter) for parameter in job.space.values()],
        "metric": job.metric,
        "search": {"pruner": tune.pruner, "startup_trials": tune.startup_trials,
                   "warmup_epochs": tune.warmup_epochs, "start_from_config": tune.start_from_config},
        "data": {name: file_digest(path) for name, path in data_files(paths).items()},
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def study_folder(job: Job, paths: Paths) -> Path:
    """``work/<corpus>/tune/<first 16 hex digits of the fingerprint>/``."""
    return paths.work / "tune" / fingerprint(job, paths)[:16]


def make_view(paths: Paths, view: Path) -> None:
    """Write ``view/``: the vectorized corpus of ``paths.work`` without its test split (ids and tokens).

    Written whole or not at all (:func:`pipeline.io.atomic_directory`); kept for the study's lifetime (its
    fingerprint covers the data it was made from).
    """
    import pandas as pd

    if (view / "ids.npz").is_file():
        return
    view_paths = Paths(view, view)
    with artifact_io.atomic_directory(view) as building:
        built = Paths(building, building)
        shutil.copyfile(paths.vocab, built.vocab)
        shutil.copyfile(paths.embeddings, built.embeddings)
        with np.load(paths.ids, allow_pickle=False) as ids:
            kept = {name: ids[name] for name in ids.files if not name.startswith("test_")}
        np.savez(built.ids, **kept)
        tokens = pd.read_parquet(paths.tokens)
        tokens[tokens["split"] != "test"].reset_index(drop=True).to_parquet(built.tokens)
    log.info("tune: %s holds the corpus without its test split (%s)", view, view_paths.ids.name)


def trial_data(job: Job, values: dict[str, Any], folder: Path, number: int) -> dict:
    """The config of trial ``number``: the sampled ``values``, the view as its work folder, a scratch run. It
    trains in this process, on its Keras backend, where the pruner watches every epoch (``train.backend`` is
    for the best config's own training)."""
    from pipeline import backend_process

    data = with_values(job.data, values, job.resolved)
    corpus = dict(data.get("corpus", {}), name="view")
    train = dict(data.get("train", {}), backend=backend_process.current())
    paths = trial_paths(folder, number)
    return {**data, "corpus": corpus, "train": train, "work_dir": str(paths.work.parent),
            "models_dir": str(paths.run.parent), "run_name": paths.run.name}


def trial_paths(folder: Path, number: int) -> Paths:
    """Where trial ``number`` of the study in ``folder`` works (as :func:`trial_data` sets it)."""
    return Paths(folder / "view", folder / "trials" / f"trial-{number:04d}")


def remove_trial_files(folder: Path, number: int) -> None:
    """A trial's scratch run folder, staging folder and saved training state: nothing of it is kept."""
    paths = trial_paths(folder, number)
    for path in (paths.run, paths.staging, paths.resume):
        shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------ the search
def sampler(job: Job, number: int) -> Any:
    """TPE for trial ``number``, seeded from the config's ``seed`` and the number (reproducible when resumed)."""
    import optuna

    return optuna.samplers.TPESampler(seed=seeds.child_seed(job.config.seed, f"tune-trial-{number}"),
                                      n_startup_trials=job.tune.startup_trials)


def pruner(tune: TuneConfig) -> Any:
    import optuna

    if tune.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=tune.startup_trials, n_warmup_steps=tune.warmup_epochs)
    if tune.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, tune.warmup_epochs))
    return optuna.pruners.NopPruner()


def open_study(job: Job, folder: Path, number: int = 0) -> Any:
    """The study in ``folder/journal.log`` (created when new), with the sampler of trial ``number``."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    folder.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(folder / "journal.log")))
    return optuna.create_study(study_name=STUDY_NAME, storage=storage, load_if_exists=True,
                               direction=job.direction, sampler=sampler(job, number), pruner=pruner(job.tune))


def finished(study: Any) -> list:
    """The trials that count towards ``--trials``: complete or pruned."""
    from optuna.trial import TrialState

    return [trial for trial in study.get_trials(deepcopy=False)
            if trial.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def recover(job: Job, study: Any, folder: Path) -> None:
    """Begin or continue the study: queue the config's own values as trial 0 of a new study; a trial left
    running by a killed process is marked failed and its values queued again (we hold the study's lock)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    if not trials and job.tune.start_from_config:
        own = {key: get_value(job.resolved, key) for key in job.space}
        study.enqueue_trial({key: value for key, value in own.items() if job.space[key].contains(value)},
                            user_attrs={FROM_CONFIG: True})
    for trial in trials:
        if trial.state == TrialState.RUNNING:
            log.warning("tune: trial %d was interrupted; it runs again", trial.number)
            # Optuna's public way (heartbeats) needs a thread beside training; the storage call is what it does
            study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
            study.enqueue_trial(trial.params, user_attrs=dict(trial.user_attrs))
            remove_trial_files(folder, trial.number)


def run_trial(job: Job, trial: Any, folder: Path, deadline: float | None) -> float:
    """Train and score one trial; its value, or ``optuna.TrialPruned`` when the pruner or the time limit stopped
    it. The trial's scores go into its user attributes (``validation_<metric>``)."""
    import keras
    import optuna

    from pipeline.stages import run_stage
    from pipeline.tune.monitor import TrialMonitor, added_to_fit

    # the config as given keeps the keys it leaves to their defaults (a layer without `dropout`) unsampled
    as_given = trial.user_attrs.get(FROM_CONFIG, False)
    values = {key: parameter.suggest(trial) for key, parameter in job.space.items()
              if not as_given or parameter.contains(get_value(job.resolved, key))}
    config = job.build(trial_data(job, values, folder, trial.number), where=f"{job.where} (tune trial {trial.number})")
    task = registry.task(config.model.task)
    monitor = TrialMonitor(trial, job.search.curve, deadline)
    try:
        for name in task.stages[:task.stages.index("train")]:  # e.g. pretrain: cached in the view by fingerprint
            run_stage(name, config, upstream=False)
        with added_to_fit(monitor):
            run_stage("train", config, upstream=False)
        if monitor.pruned or monitor.cut:
            trial.set_user_attr("stopped_by", "pruner" if monitor.pruned else "time limit")
            raise optuna.TrialPruned()
        scores = registry.resolve(job.search.score)(config, Paths.from_config(config))
    finally:
        remove_trial_files(folder, trial.number)
        keras.backend.clear_session()
    for name, value in scores.items():
        trial.set_user_attr(f"validation_{name}", float(value))
    return float(scores[job.metric])


def search(job: Job, trials: int, time_limit_minutes: float | None = None, force: bool = False) -> tuple[Any, Path]:
    """Run the front end, then trials until the study has ``trials`` finished ones or the time is up.

    Returns ``(study, study folder)``. Takes the study folder's process lock for the whole search.
    """
    import optuna

    from pipeline.stages import run_stage
    from pipeline.workarea import hold_folders

    started = time.monotonic()
    deadline = None if time_limit_minutes is None else started + 60.0 * time_limit_minutes
    optuna.logging.disable_default_handler()  # its records go through our logging (--quiet hides them)
    optuna.logging.enable_propagation()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_stage("vectorize", job.config, force=force)  # prepare, tokenize, vectorize: skipped when unchanged
    paths = Paths.from_config(job.config)
    folder = study_folder(job, paths)
    with hold_folders([folder]):
        artifact_io.remove_stale(folder)
        make_view(paths, folder / "view")
        study = open_study(job, folder)
        recover(job, study, folder)
        log.info("tune: study %s, %d of %d trials finished; searching %s", folder, len(finished(study)), trials,
                 "; ".join(parameter.describe() for parameter in job.space.values()))
        while len(finished(study)) < trials:
            if deadline is not None and time.monotonic() >= deadline:
                log.warning("tune: the time limit (%g min) has passed; no new trial starts", time_limit_minutes)
                break
            study = open_study(job, folder, number=len(study.get_trials(deepcopy=False)))
            trial = study.ask()
            try:
                value = run_trial(job, trial, folder, deadline)
            except optuna.TrialPruned:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                log.info("tune: trial %d stopped by the %s", trial.number,
                         study.trials[trial.number].user_attrs.get("stopped_by", "pruner"))
                continue
            except BaseException as error:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                if isinstance(error, KeyboardInterrupt):  # the next run trains these values again
                    study.enqueue_trial(trial.params, user_attrs=dict(trial.user_attrs))
                raise
            study.tell(trial, value)
            log.info("tune: trial %d: validation %s %.4f (best so far %.4f, trial %d)", trial.number, job.metric,
                     value, study.best_value, study.best_trial.number)
    return study, folder
