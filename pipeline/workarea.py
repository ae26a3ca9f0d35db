"""Who may write a work folder, and how a run folder is replaced: what makes a killed run lose nothing.

* One ``pipeline`` process at a time runs stages on a work folder ``work/<corpus>/`` and writes a
  run folder ``saved_models/<run>/``: :func:`hold` takes a lock on each (the ``filelock`` package, lock
  files in the temp folder: :func:`pipeline.paths.lock_file`; the kernel releases them when the process
  dies, even by ``kill -9``). A second process waits ``LOCK_WAIT_SECONDS`` (or the seconds in the
  environment variable ``PIPELINE_LOCK_WAIT_SECONDS``), then stops with one line naming the busy folder.
* Whoever takes the lock first removes the temporary files and folders that killed processes left
  (:func:`pipeline.io.remove_stale`).
* ``train`` and ``evaluate`` build the run in ``work/<corpus>/staging/<run>/``; :func:`publish`
  moves it onto ``saved_models/<run>/`` in one rename when the command's last run stage is done.
  Until then the previous run folder is untouched, and a killed run's staging folder is where the
  next one continues (a finished ``train`` is not repeated).
* The training state saved after each epoch (:mod:`pipeline.resume`) belongs to one train
  fingerprint: :func:`reset_resume` discards it on ``--force`` or when the fingerprint changed.
* Every run folder records its kind in ``run.json`` (``classifier``, ``generator``, ``forecast``,
  ``lsm``, ...): :func:`check_replace` refuses to replace a run of another kind without ``--force``,
  so a tool run under the same name cannot destroy a trained model.
* Commands that are not stages (the tools) write their run folder through :func:`new_run`: the same
  lock, kind check and one-rename publication, the old folder kept until the new one is complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import math
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from filelock import FileLock, Timeout

from pipeline import io as artifact_io
from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.paths import Paths, RunPaths, lock_file

log = logging.getLogger(__name__)

LOCK_WAIT_SECONDS = 10.0  # a second process waits this long for the first one, then stops
LOCK_WAIT_VARIABLE = "PIPELINE_LOCK_WAIT_SECONDS"  # ... unless this environment variable says how long
_held: dict[str, FileLock] = {}  # lock file -> lock held by this process (hold() nests)


def _is_worker(config: Config) -> bool:
    """A multi-worker process other than the chief: it shares the chief's folders and writes none of them."""
    if config.train.distribute != "multi_worker":
        return False
    from pipeline.distribution import cluster_task, is_chief_task

    return not is_chief_task(*cluster_task())


@contextlib.contextmanager
def hold(config: Config) -> Iterator[Paths]:
    """Lock the config's work folder and run folder for this process (nested calls are free); yield its paths."""
    paths = Paths.from_config(config)
    with hold_folders([] if _is_worker(config) else [paths.work, paths.run]) as taken:
        if taken:
            for folder, recursive in ((paths.work, True), (paths.run.parent, False)):
                artifact_io.remove_stale(folder, recursive)
        yield paths


def lock_wait_seconds() -> float:
    """How long a second process waits for a busy folder: ``$PIPELINE_LOCK_WAIT_SECONDS`` (seconds, 0 or more:
    a job queue may wait longer, a test less), else ``LOCK_WAIT_SECONDS``."""
    value = os.environ.get(LOCK_WAIT_VARIABLE, "").strip()
    if not value:
        return LOCK_WAIT_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise PipelineError(f"environment variable {LOCK_WAIT_VARIABLE}={value!r}: expected a number of seconds, "
                            f"0 or more; set it so or unset it (default {LOCK_WAIT_SECONDS:g})")
    return seconds


@contextlib.contextmanager
def hold_folders(folders: Sequence[Path]) -> Iterator[list[str]]:
    """Take the process lock of each folder (waiting :func:`lock_wait_seconds`); yield the locks taken now."""
    taken = []
    wait = lock_wait_seconds()
    try:
        for folder in folders:
            lock_path = lock_file(folder)
            if str(lock_path) in _held:
                continue
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(lock_path, timeout=wait)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                log.warning("%s: another pipeline process is using it; waiting up to %g s", folder, wait)
                try:
                    lock.acquire()
                except Timeout:
                    raise PipelineError(f"{folder}: another `pipeline` process is working on this folder (it holds "
                                        f"{lock_path}); wait for it to finish, or stop it and rerun") from None
            _held[str(lock_path)] = lock
            taken.append(str(lock_path))
        yield taken
    finally:
        for key in reversed(taken):
            _held.pop(key).release()


def run_kind(folder: Path) -> str | None:
    """The kind of the run in ``folder``: ``run.json``'s ``kind``; None when there is no folder.

    A folder written before ``run.json`` existed is a model run when it has a ``config.json`` (its
    ``model.task``); anything else there is ``"unknown"``, which only ``--force`` replaces.
    """
    run = RunPaths(Path(folder))
    if not run.root.is_dir():
        return None
    for path, read in ((run.info, lambda data: data["kind"]), (run.config, lambda data: data["model"]["task"])):
        if path.is_file():
            try:
                kind = read(artifact_io.read_json(path))
            except (ValueError, KeyError, TypeError):
                continue
            if isinstance(kind, str) and kind:
                return kind
    return "unknown" if any(run.root.iterdir()) else None


def check_replace(folder: Path, kind: str, force: bool) -> None:
    """Refuse to replace a run of another kind than ``kind`` in ``folder`` unless ``force``."""
    existing = run_kind(folder)
    if existing is None or existing == kind:
        return
    if force:
        log.warning("%s: replacing a %s run with a %s run (--force); the old one is kept until the new one is "
                    "complete", folder, existing, kind)
        return
    raise PipelineError(f"{folder}: holds a {existing} run, not a {kind} run; give this run another name "
                        f"(--set run_name=...) or pass --force to replace it")


def mark_run(folder: Path, kind: str) -> None:
    """Record the run's kind, the pipeline version and the time in ``<folder>/run.json``."""
    from pipeline import __version__

    created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    artifact_io.write_json(RunPaths(folder).info, {"kind": kind, "pipeline_version": __version__,
                                                   "created": created})


@contextlib.contextmanager
def new_run(folder: Path, kind: str, force: bool = False) -> Iterator[Path]:
    """Build a complete run folder of ``kind`` and publish it onto ``folder``: the path for tool commands.

    Takes ``folder``'s process lock, removes what killed writers left beside it, refuses to replace a
    run of another kind (:func:`check_replace`), and yields an empty folder next to ``folder``. When the
    block ends without an exception, ``run.json`` is written there and the folder replaces ``folder`` in
    one rename (:func:`pipeline.io.atomic_directory`); the old folder stays whole until then, and an
    exception or a kill leaves it as it was.
    """
    folder = Path(folder)
    parent_existed = folder.parent.is_dir()
    with hold_folders([folder]):
        artifact_io.remove_stale(folder.parent)
        check_replace(folder, kind, force)
        try:
            with artifact_io.atomic_directory(folder) as building:
                yield building
                mark_run(building, kind)
        except BaseException:
            if not parent_existed:  # a failed first run leaves no empty models folder behind
                with contextlib.suppress(OSError):
                    folder.parent.rmdir()
            raise
        log.info("run folder %s is complete", folder)


def current(paths: Paths) -> Paths:
    """The paths the run stages read now: the staging folder while a run is under construction."""
    return dataclasses.replace(paths, run=paths.staging) if paths.staging.is_dir() else paths


def stage_from_published(paths: Paths) -> Paths:
    """Make sure a staging folder exists (a copy of the published run when there is none); return its paths."""
    if not paths.staging.is_dir() and paths.run.is_dir():
        artifact_io.copy_directory(paths.run, paths.staging)
    return dataclasses.replace(paths, run=paths.staging)


def publish(config: Config, paths: Paths, kind: str | None = None) -> None:
    """Replace the run folder with the staging folder, in one rename (by the chief of several workers).

    ``kind`` (the task's name) is recorded in the staged ``run.json`` first.
    """
    if paths.staging.is_dir() and not _is_worker(config):
        if kind is not None:
            mark_run(paths.staging, kind)
        artifact_io.replace_directory(paths.staging, paths.run)
        log.info("run folder %s is complete", paths.run)


def reset_resume(paths: Paths, digest: str, force: bool) -> None:
    """Keep the saved training state only for the same train fingerprint and without ``--force``."""
    marker = paths.resume.parent / f"{paths.resume.name}.fingerprint"  # beside the state, which is replaced whole
    kept = not force and marker.is_file() and marker.read_text(encoding="utf-8").strip() == digest
    if not kept:
        if paths.resume.exists():
            log.info("%s: discarding saved training state (%s)", paths.resume,
                     "--force" if force else "the inputs, settings or code changed")
        shutil.rmtree(paths.resume, ignore_errors=True)
        artifact_io.write_text(marker, digest + "\n")
