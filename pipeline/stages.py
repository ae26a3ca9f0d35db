"""The stage registry and the fingerprint/skip logic (as DVC's ``dvc.lock``).

A config runs the text front end (``prepare``, ``tokenize``, ``vectorize``), then the stages its
task declares (:class:`pipeline.registry.Task`: ``train`` and ``evaluate``, with ``pretrain``
before them for a classifier). Each stage declares what it reads and writes. Before it runs, the
pipeline fingerprints its inputs (file contents), the config values it reads (its declared
settings: nothing else of the config), the source of the modules it runs (the package modules
its action imports, followed transitively) and the versions of the packages it relies on; when the
fingerprint matches the one recorded in ``work/<corpus>/pipeline.lock.json`` and the outputs are
still the ones it wrote (same size and modification time), the stage is skipped. ``--force``
re-runs it. Running a stage first brings the stages before it up to date.

The front end's stages are declared in :mod:`pipeline.front_end`. The frame names no task: the ``train`` and
``evaluate`` stages ask the registry for the task that
``model.task`` names, and a task's extra stages (the language model's ``pretrain``) register here
from its plugin module.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import backend_process, interrupts, registry, workarea
from pipeline import io as artifact_io
from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.paths import Paths, RunPaths

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).resolve().parent
FRONT_END = ("prepare", "tokenize", "vectorize")


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline.

    Attributes:
        name: the CLI subcommand.
        settings: the config values that change the result (and nothing else).
        inputs: files read; their contents go into the fingerprint.
        outputs: files written; a missing or changed one forces a re-run.
        modules: the modules it runs (``pipeline.x.y``): their source, and that of every package module they
            import, goes into the fingerprint. A function of the config (a task's stage runs the task's code).
        action: ``action(config, paths) -> dict`` does the work.
        packages: installed distributions whose version changes the result.
        folder: where the stage writes, when that is neither the work folder nor the run folder (the
            pretrained language model's ``work/<corpus>/pretrained/<fingerprint>/``); its lock entry and
            training state are keyed by it.
        run_folder: the stage builds the run folder in the run's staging folder, which replaces the run folder
            when the command's last stage is done: ``"new"`` starts an empty one (``train``), ``"amend"`` adds to
            the run as it is (``evaluate``); ``""``: the stage does not write the run folder.
        resumable: the stage saves training state after each epoch (kept only for the same fingerprint).
        partial: what an interrupted run of the stage leaves for the next run to continue from (``tokenize``'s
            finished shards), kept by their fingerprint; ``--force`` removes it, so that everything is done again.
        backend: the Keras backend the stage's action needs (``train.backend``); "": whichever this process runs.
            When this process runs another, the action runs in a child process on that one
            (:mod:`pipeline.backend_process`), under this process's locks.
        entry: the action's importable name (``"module:function"``), which such a child runs.
    """

    name: str
    settings: Callable[[Config], Any]
    inputs: Callable[[Config, Paths], list[Path]]
    outputs: Callable[[Config, Paths], list[Path]]
    modules: Callable[[Config], tuple[str, ...]]
    action: Callable[[Config, Paths], dict]
    packages: tuple[str, ...] = ()
    folder: Callable[[Config, Paths], Path | None] = lambda config, paths: None
    run_folder: str = ""  # "" | new | amend
    resumable: Callable[[Config], bool] = lambda config: False
    partial: Callable[[Config, Paths], list[Path]] = lambda config, paths: []
    backend: Callable[[Config], str] = lambda config: ""
    entry: Callable[[Config], str] | None = None

    def lock_key(self, config: Config, paths: Paths) -> str:
        folder = paths.run if self.run_folder else self.folder(config, paths)
        return self.name if folder is None else f"{self.name}:{folder}"


STAGES: dict[str, Stage] = {}


def register(stage: Stage) -> Stage:
    STAGES[stage.name] = stage
    return stage


def pipeline_of(config: Config) -> tuple[str, ...]:
    """Every stage of ``config``'s run, in order: the front end, then its task's stages."""
    registry.load_plugins()
    return (*FRONT_END, *registry.task(config.model.task).stages)


def stage(name: str) -> Stage:
    registry.load_plugins()
    return STAGES[name]


def before(name: str, config: Config) -> str | None:
    """The stage whose outputs ``name`` reads in ``config``'s pipeline (None for the first)."""
    order = pipeline_of(config)
    return order[order.index(name) - 1] if name in order and order.index(name) > 0 else None


def folder_of(name: str, config: Config, paths: Paths) -> Path | None:
    """Where stage ``name`` writes for ``config`` (:attr:`Stage.folder`): e.g. the pretrained model a classifier
    starts from."""
    return stage(name).folder(config, paths)


def settings_read(name: str, config: Config) -> Any:
    """The config values stage ``name`` reads: what its fingerprint, and a training's resume identity, cover."""
    return stage(name).settings(config)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def module_file(name: str) -> Path | None:
    """The source file of package module ``name`` (``pipeline.x.y``) under :data:`PACKAGE`; None when there is
    none (a name imported from a module, not a module)."""
    parts = name.split(".")[1:]
    if not parts:
        return PACKAGE / "__init__.py"
    for candidate in (PACKAGE.joinpath(*parts[:-1], parts[-1] + ".py"), PACKAGE.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def _imported_modules(path: Path, stamp: tuple[int, int]) -> frozenset[str]:
    """The ``pipeline.*`` modules that the source at ``path`` imports anywhere (function-level imports too)."""
    found = set()
    package = ".".join(("pipeline", *path.relative_to(PACKAGE).with_suffix("").parts[:-1]))
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # a relative import
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pipeline.x import module`
    return frozenset(name for name in found if name == "pipeline" or name.startswith("pipeline."))


# The frame's modules that move results around without computing them (running stages, locks, paths, atomic
# writes, config parsing, the registry): a change to them re-runs nothing, and their imports are not followed.
ORCHESTRATION = frozenset({"pipeline.stages", "pipeline.front_end", "pipeline.workarea", "pipeline.registry",
                           "pipeline.backend_process",
                           "pipeline.config", "pipeline.paths", "pipeline.io", "pipeline.errors", "pipeline.interrupts",
                           "pipeline"})


def code_files(modules: tuple[str, ...]) -> list[Path]:
    """The source files of ``modules`` and of every package module they import, transitively (but for
    :data:`ORCHESTRATION`)."""
    seen: dict[str, Path] = {}
    pending = list(modules)
    while pending:
        name = pending.pop()
        if name in seen or name in ORCHESTRATION:
            continue
        path = module_file(name)
        if path is None:
            continue
        seen[name] = path
        status = path.stat()
        pending.extend(_imported_modules(path, (status.st_size, status.st_mtime_ns)))
    return sorted(set(seen.values()))


# The installed packages whose version changes a stage's result (distribution names): an upgrade re-runs
# the stages it can change, e.g. a new SudachiDict splits words differently, a new Keras trains differently.
TRAINING_PACKAGES = ("keras", "tensorflow", "jax", "numpy")


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
            earlier = before(stage.name, config)
            raise PipelineError(f"{path}: input of `{stage.name}` not found; run `pipeline {earlier}` first")
    record = {
        "stage": stage.name,
        "settings": stage.settings(config),
        "inputs": {str(path): file_digest(actual) for path, actual in zip(inputs, located)},
        "code": {str(path.relative_to(PACKAGE)): file_digest(path) for path in code_files(stage.modules(config))},
        "packages": {name: package_version(name) for name in stage.packages},
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
    entry = read_lock(paths).get(stage.lock_key(config, paths))
    if not entry or entry.get("fingerprint") != digest:
        return False
    outputs = zip(stage.outputs(config, paths), stage.outputs(config, where or paths))
    return all(actual.is_file() and entry["outputs"].get(str(path)) == _stamp(actual) for path, actual in outputs)


def record(stage: Stage, config: Config, paths: Paths, digest: str, where: Paths | None = None) -> None:
    """Outputs are named by ``paths`` and stamped where they are (``where``); a rename keeps the stamps."""
    lock = read_lock(paths)
    outputs = zip(stage.outputs(config, paths), stage.outputs(config, where or paths))
    lock[stage.lock_key(config, paths)] = {
        "fingerprint": digest,
        "outputs": {str(path): _stamp(actual) for path, actual in outputs},
    }
    artifact_io.write_json(paths.lock, lock)


def run_stage(name: str, config: Config, force: bool = False, upstream: bool = True, publish: bool = True) -> dict:
    """Run stage ``name`` (after bringing the stages before it up to date); skip it when unchanged.

    The process holds the work and run folders' locks meanwhile (:func:`pipeline.workarea.hold`).
    Run-folder stages work in the run's staging folder; with ``publish`` it then replaces the run
    folder (``pipeline run`` publishes after its last stage only).
    """
    if name not in pipeline_of(config):
        raise PipelineError(f"a {config.model.task} run has no `{name}` stage; its stages are "
                            + ", ".join(pipeline_of(config)))
    stage = STAGES[name]
    with workarea.hold(config) as paths:
        if stage.run_folder:  # a run of another kind under this name is replaced only with --force
            workarea.check_replace(paths.run, config.model.task, force)
        earlier = before(name, config)
        if upstream and earlier:
            run_stage(earlier, config, force=False, publish=False)
        where = workarea.current(paths) if stage.run_folder else paths
        digest = fingerprint(stage, config, paths, where)
        if not force and is_current(stage, config, paths, digest, where):
            log.info("%s: up to date, skipped (--force to re-run)", name)
            result = {"skipped": True}
        else:
            if stage.run_folder:
                where = workarea.stage_from_published(paths) if stage.run_folder == "amend" else \
                    dataclasses.replace(paths, run=paths.staging)
            for left in stage.partial(config, paths) if force else ():
                if left.exists():
                    log.info("%s: removed (--force)", left)
                    if left.is_dir():
                        shutil.rmtree(left)
                    else:
                        left.unlink()
            if stage.resumable(config):  # training state: this digest only
                folder = stage.folder(config, paths)
                workarea.reset_resume(Paths(paths.work, folder) if folder else paths, digest, force)
            log.info("%s: running", name)
            started = time.perf_counter()
            backend = stage.backend(config)
            if backend and stage.entry is not None and backend != backend_process.current():
                result = backend_process.call(backend, stage.entry(config), config, where)
            else:
                result = stage.action(config, where) or {}
            interrupts.check()  # a Ctrl-C that Python dropped: record and publish nothing (pipeline.interrupts)
            if result.pop("outputs_written", True):  # False: a multi-worker non-chief, whose outputs the chief writes
                record(stage, config, paths, digest, where)
            log.info("%s: done in %.1f s", name, time.perf_counter() - started)
            result = {"skipped": False, **result}
        if publish and stage.run_folder:
            workarea.publish(config, paths, kind=config.model.task)
        return result


def task_part(config: Config, part: str) -> Any:
    """The object named by the task's ``part`` (``summary``, ``after_run``), imported now; None when unset."""
    reference = getattr(registry.task(config.model.task), part)
    return registry.resolve(reference) if reference else None


def section_values(config: Config, name: str) -> dict:
    """The config's section ``name`` as a dict (what a stage's settings fingerprint)."""
    return config.to_dict()[name]


def run_files(folder: Path) -> list[Path]:
    """The files every trained run folder holds (:class:`pipeline.paths.RunPaths`)."""
    run = RunPaths(folder)
    return [run.model, run.config, run.vocab, run.labels, run.history]


# ------------------------------------------------------------------ the task's train and evaluate
def _train_settings(config: Config) -> dict:
    """What every trained model reads: the seed, ``[model]`` and ``[train]``; and what its task declares."""
    task = registry.task(config.model.task)
    return {"seed": config.seed, "model": section_values(config, "model"), "train": section_values(config, "train"),
            "task": task.train.settings(config)}


def _train_action(config: Config) -> str:
    """The task's train function, ``"module:function"``."""
    return registry.task(config.model.task).train.action


register(Stage("train", _train_settings,
               lambda c, p: [p.vocab, p.embeddings, p.ids, *front_end.subword_model_files(c, p),
                             *registry.task(c.model.task).train.inputs(c, p)],
               lambda c, p: run_files(p.run),
               lambda c: (_train_action(c).split(":")[0],),
               lambda c, p: registry.resolve(_train_action(c))(c, p),
               packages=TRAINING_PACKAGES, run_folder="new", resumable=lambda c: True,
               backend=lambda c: c.train.backend, entry=_train_action))
register(Stage("evaluate",
               lambda c: {"seed": c.seed, "field": c.vectorize.token_field,
                          "task": registry.task(c.model.task).evaluate.settings(c)},
               lambda c, p: [*run_files(p.run), p.ids, p.tokens, *registry.task(c.model.task).evaluate.inputs(c, p)],
               lambda c, p: [RunPaths(p.run).metrics],
               lambda c: (registry.task(c.model.task).evaluate.action.split(":")[0],),
               lambda c, p: registry.resolve(registry.task(c.model.task).evaluate.action)(c, p),
               packages=(*TRAINING_PACKAGES, "scikit-learn"), run_folder="amend"))


# The front end's stages (prepare, tokenize, vectorize) register from their own module; imported last, since it
# imports this one.
from pipeline import front_end  # noqa: E402
