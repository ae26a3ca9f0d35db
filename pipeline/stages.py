"""The stage registry and the fingerprint/skip logic (as DVC's ``dvc.lock``).

Each stage declares what it reads and writes. Before it runs, the pipeline
fingerprints its inputs (file contents), the config values it uses, its own
source code and the versions of the packages it relies on (``PACKAGES``); when
the fingerprint matches the one recorded in ``work/<corpus>/pipeline.lock.json``
and the outputs are still the ones it wrote (same size and modification time),
the stage is skipped. ``--force`` re-runs it. Running a stage first brings the
stages it depends on up to date.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import io as artifact_io
from pipeline import workarea
from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.paths import Paths, RunPaths, pretrain_settings

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline.

    Attributes:
        name: the CLI subcommand.
        after: the stage whose outputs this one reads (None for the first).
        settings: the config values that change the result.
        inputs: files read; their contents go into the fingerprint.
        outputs: files written; a missing or changed one forces a re-run.
        code: source files or glob patterns (relative to the package) whose text goes into the fingerprint.
        action: ``action(config, paths) -> dict`` does the work.
    """

    name: str
    after: str | None
    settings: Callable[[Config], Any]
    inputs: Callable[[Config, Paths], list[Path]]
    outputs: Callable[[Config, Paths], list[Path]]
    code: tuple[str, ...]
    action: Callable[[Config, Paths], dict]

    def lock_key(self, paths: Paths) -> str:
        if self.name == "pretrain":
            return f"pretrain:{paths.pretrained}"
        return f"{self.name}:{paths.run}" if self.name in RUN_STAGES else self.name


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def code_files(stage: Stage) -> list[Path]:
    """The package files named by ``stage.code``: paths or glob patterns relative to the package."""
    return sorted({path for pattern in stage.code for path in PACKAGE.glob(pattern) if path.is_file()})


# The installed packages whose version changes a stage's result (distribution names): an upgrade re-runs
# the stages it can change, e.g. a new SudachiDict splits words differently, a new Keras trains differently.
_TRAINING_PACKAGES = ("keras", "tensorflow", "jax", "numpy")
PACKAGES: dict[str, tuple[str, ...]] = {
    "tokenize": ("spacy", "ginza", "ja-ginza", "sudachipy", "sudachidict-core"),
    "vectorize": ("ja-ginza", "spacy", "numpy"),
    "pretrain": _TRAINING_PACKAGES,
    "train": _TRAINING_PACKAGES,
    "evaluate": (*_TRAINING_PACKAGES, "scikit-learn"),
}


def package_version(name: str) -> str | None:
    """The installed version of distribution ``name``; None when it is not installed."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def fingerprint(stage: Stage, config: Config, paths: Paths, where: Paths | None = None) -> str:
    """``where``: read the files there (a run's staging folder) but name them by ``paths``, so that
    publishing the run folder does not change the fingerprint."""
    inputs = stage.inputs(config, paths)
    located = stage.inputs(config, where or paths)
    for path in located:
        if not path.is_file():
            raise PipelineError(f"{path}: input of `{stage.name}` not found; run `pipeline {stage.after}` first")
    record = {
        "stage": stage.name,
        "settings": stage.settings(config),
        "inputs": {str(path): file_digest(actual) for path, actual in zip(inputs, located)},
        "code": {str(path.relative_to(PACKAGE)): file_digest(path) for path in code_files(stage)},
        "packages": {name: package_version(name) for name in PACKAGES.get(stage.name, ())},
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def _stamp(path: Path) -> list[int]:
    status = path.stat()
    return [status.st_size, status.st_mtime_ns]


def read_lock(paths: Paths) -> dict:
    try:
        return artifact_io.read_json(paths.lock)
    except (FileNotFoundError, ValueError):
        return {}


def is_current(stage: Stage, config: Config, paths: Paths, digest: str, where: Paths | None = None) -> bool:
    entry = read_lock(paths).get(stage.lock_key(paths))
    if not entry or entry.get("fingerprint") != digest:
        return False
    outputs = zip(stage.outputs(config, paths), stage.outputs(config, where or paths))
    return all(actual.is_file() and entry["outputs"].get(str(path)) == _stamp(actual) for path, actual in outputs)


def record(stage: Stage, config: Config, paths: Paths, digest: str, where: Paths | None = None) -> None:
    """Outputs are named by ``paths`` and stamped where they are (``where``); a rename keeps the stamps."""
    lock = read_lock(paths)
    outputs = zip(stage.outputs(config, paths), stage.outputs(config, where or paths))
    lock[stage.lock_key(paths)] = {
        "fingerprint": digest,
        "outputs": {str(path): _stamp(actual) for path, actual in outputs},
    }
    artifact_io.write_json(paths.lock, lock)


def run_stage(name: str, config: Config, force: bool = False, upstream: bool = True, publish: bool = True) -> dict:
    """Run stage ``name`` (after bringing its upstream stages up to date); skip it when unchanged.

    The process holds the work and run folders' locks meanwhile (:func:`pipeline.workarea.hold`).
    ``train`` and ``evaluate`` work in the run's staging folder; with ``publish`` it then replaces
    the run folder (``pipeline run`` publishes after ``evaluate`` only).
    """
    stage = STAGES[name]
    with workarea.hold(config) as paths:
        if name in RUN_STAGES:  # a run of another kind under this name is replaced only with --force
            workarea.check_replace(paths.run, config.model.task, force)
        if upstream and stage.after:
            run_stage(stage.after, config, force=False, publish=False)
        where = workarea.current(paths) if name in RUN_STAGES else paths
        digest = fingerprint(stage, config, paths, where)
        if not force and is_current(stage, config, paths, digest, where):
            log.info("%s: up to date, skipped (--force to re-run)", name)
            result = {"skipped": True}
        else:
            if name in RUN_STAGES:
                where = workarea.stage_from_published(paths) if name == "evaluate" else \
                    dataclasses.replace(paths, run=paths.staging)
            if name == "train" or name == "pretrain" and config.pretrain.enabled:  # training state: this digest only
                workarea.reset_resume(Paths(paths.work, paths.pretrained) if name == "pretrain" else paths, digest,
                                      force)
            log.info("%s: running", name)
            started = time.perf_counter()
            result = stage.action(config, where) or {}
            if result.pop("outputs_written", True):  # False: a multi-worker non-chief, whose outputs the chief writes
                record(stage, config, paths, digest, where)
            log.info("%s: done in %.1f s", name, time.perf_counter() - started)
            result = {"skipped": False, **result}
        if publish and name in RUN_STAGES:
            workarea.publish(config, paths, kind=config.model.task)
        return result


@dataclass(frozen=True)
class Task:
    """What ``model.task`` selects: where its train and evaluate actions and its summary live.

    Names are ``"module:attribute"`` strings, imported on first use, so the frame
    imports no task folder and a command pays only for the task it runs.
    """

    train: str
    evaluate: str
    summary: str
    specials: str | None = None  # vocabulary entries the task adds, e.g. <s> and </s>


TASKS: dict[str, Task] = {
    "classifier": Task("pipeline.classifier.train:train_classifier", "pipeline.classifier.evaluate:evaluate_classifier",
                       "pipeline.classifier.evaluate:summary"),
    "generator": Task("pipeline.language_model.train:train_generator",
                      "pipeline.language_model.evaluate:evaluate_generator",
                      "pipeline.language_model.evaluate:summary", "pipeline.language_model.model:SPECIALS"),
    "reading": Task("pipeline.seq2seq.train:train_reader", "pipeline.seq2seq.evaluate:evaluate_reader",
                    "pipeline.seq2seq.evaluate:summary"),
}


def task_part(config: Config, part: str) -> Any:
    """The object named by ``TASKS[config.model.task].<part>``, imported now."""
    return _imported(getattr(TASKS[config.model.task], part))


def _imported(name: str) -> Any:
    import importlib

    module, attribute = name.split(":")
    return getattr(importlib.import_module(module), attribute)


def _prepare(config: Config, paths: Paths) -> dict:
    from pipeline.text import corpora

    table = corpora.prepare_table(config)
    corpora.write_table(table, paths.prepared)
    return {"sentences": len(table)}


def _tokenize(config: Config, paths: Paths) -> dict:
    from pipeline.text import corpora
    from pipeline.text.tokenize import tokenize_table

    table = tokenize_table(corpora.read_table_artifact(paths.prepared, "prepare"), config.tokenize)
    corpora.write_table(table, paths.tokens)
    return {"sentences": len(table)}


def _vectorize(config: Config, paths: Paths) -> dict:
    import pandas as pd

    from pipeline.text.vectors import vectorize

    task = TASKS["generator" if config.pretrain.enabled else config.model.task]  # pretraining needs <s>, </s>
    specials = _imported(task.specials) if task.specials else ()
    return vectorize(config, pd.read_parquet(paths.tokens), paths.vocab, paths.embeddings, paths.ids, specials)


def _pretrain(config: Config, paths: Paths) -> dict:
    if not config.pretrain.enabled:
        return {}
    from pipeline.language_model.pretrain import pretrain_encoder

    return pretrain_encoder(config, paths)


def _pretrained_files(config: Config, paths: Paths) -> list[Path]:
    return _run_files(paths.pretrained) if config.pretrain.enabled else []


def _subword_files(config: Config, paths: Paths) -> list[Path]:
    """The classifier's subword features (``model.char_encoder``, ``model.ngram_features``) and its n-gram
    ensemble member (``model.ensemble``) read the tokens."""
    from pipeline.text.features import uses_subword_features

    reads_text = uses_subword_features(config.model) or config.model.ensemble != "none"
    if config.model.task == "reading":  # the reading model learns from the text itself (pipeline.seq2seq.data)
        return [paths.tokens]
    return [paths.tokens] if config.model.task == "classifier" and reads_text else []


def _train(config: Config, paths: Paths) -> dict:
    return task_part(config, "train")(config, paths)


def _evaluate(config: Config, paths: Paths) -> dict:
    return task_part(config, "evaluate")(config, paths)


def _corpus_files(config: Config, paths: Paths) -> list[Path]:
    from pipeline.text.corpora import input_files

    return input_files(config.corpus)


def _run_files(folder: Path) -> list[Path]:
    run = RunPaths(folder)
    return [run.model, run.config, run.vocab, run.labels, run.history]


RUN_STAGES = ("train", "evaluate")
STAGES: dict[str, Stage] = {}


def register(stage: Stage) -> Stage:
    STAGES[stage.name] = stage
    return stage


register(Stage("prepare", None, lambda c: {"seed": c.seed, "corpus": c.to_dict()["corpus"]},
               _corpus_files, lambda c, p: [p.prepared], ("text/corpora.py", "text/splits.py"), _prepare))
register(Stage("tokenize", "prepare",  # tokenize.processes changes the speed, not the tokens
               lambda c: {k: v for k, v in c.to_dict()["tokenize"].items() if k != "processes"},
               lambda c, p: [p.prepared], lambda c, p: [p.tokens], ("text/tokenize.py",), _tokenize))
register(Stage("vectorize", "tokenize",
               lambda c: {"seed": c.seed, "vectorize": c.to_dict()["vectorize"], "model": c.tokenize.model,
                          "embedding_dim": c.model.embedding_dim, "task": c.model.task,
                          "pretrain": c.pretrain.enabled},
               lambda c, p: [p.tokens], lambda c, p: [p.vocab, p.embeddings, p.ids],
               ("text/vectors.py", "text/vocab.py"), _vectorize))
register(Stage("pretrain", "vectorize", lambda c: pretrain_settings(c) if c.pretrain.enabled else {"enabled": False},
               lambda c, p: [p.vocab, p.embeddings, p.ids] if c.pretrain.enabled else [], _pretrained_files,
               ("training.py", "runs.py", "models.py", "text/batches.py", "language_model/*.py", "layers/*.py"),
               _pretrain))
register(Stage("train", "pretrain",
               lambda c: {k: v for k, v in c.to_dict().items() if k not in ("classify", "generate")},
               lambda c, p: [p.vocab, p.embeddings, p.ids, *_pretrained_files(c, p)[:1], *_subword_files(c, p)],
               lambda c, p: _run_files(p.run),
               ("training.py", "runs.py", "models.py", "text/batches.py", "text/features.py", "classifier/*.py",
                "language_model/model.py",
                "language_model/data.py", "language_model/train.py", "layers/*.py", "seq2seq/*.py"), _train))
register(Stage("evaluate", "train", lambda c: {"seed": c.seed, "field": c.vectorize.token_field},
               lambda c, p: [*_run_files(p.run), p.ids, p.tokens],
               lambda c, p: [RunPaths(p.run).metrics], ("classifier/evaluate.py", "language_model/evaluate.py", "language_model/ngram.py", "plots.py",
                                                        "text/features.py", "seq2seq/*.py"),
               _evaluate))

PIPELINE = ("prepare", "tokenize", "vectorize", "pretrain", "train", "evaluate")
