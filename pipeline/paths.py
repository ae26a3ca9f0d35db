"""Where things live. No other module builds artifact paths from literals."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Config


@dataclass(frozen=True)
class Paths:
    """Artifact locations of one config: ``work/<corpus>/`` for data, ``saved_models/<run>/`` for a run.

    A stage that writes elsewhere declares its folder (:attr:`pipeline.stages.Stage.folder`).
    """

    work: Path
    run: Path

    @classmethod
    def from_config(cls, config: Config) -> Paths:
        corpus_name = config.corpus.name or Path(config.corpus.path).stem or "corpus"
        return cls(work=Path(config.work_dir) / corpus_name, run=Path(config.models_dir) / config.run_name)

    # work/<corpus>/
    @property
    def prepared(self) -> Path:
        return self.work / "prepared.parquet"

    @property
    def tokens(self) -> Path:
        return self.work / "tokens.parquet"

    @property
    def vocab(self) -> Path:
        return self.work / "vocab.json"

    @property
    def embeddings(self) -> Path:
        return self.work / "embeddings.npy"

    @property
    def ids(self) -> Path:
        return self.work / "ids.npz"

    @property
    def lock(self) -> Path:
        return self.work / "pipeline.lock.json"

    # a run under construction; a process lock per folder
    @property
    def staging(self) -> Path:
        """Where ``train`` and ``evaluate`` build the run; it replaces ``run`` in one rename when complete."""
        return self.work / "staging" / self.run.name

    @property
    def resume(self) -> Path:
        """Training state saved after every epoch (:mod:`pipeline.resume`); a killed training continues from it."""
        return self.work / "resume" / self.run.name

    @property
    def work_lock(self) -> Path:
        """Held by the one ``pipeline`` process that runs stages on ``work`` (the ``filelock`` package)."""
        return lock_file(self.work)

    @property
    def run_lock(self) -> Path:
        """Held by the one ``pipeline`` process that writes the run folder ``run``."""
        return lock_file(self.run)


def lock_file(folder: Path) -> Path:
    """The lock file of ``folder``: ``<temp dir>/pipeline-locks-<uid>/<name>-<digest of the absolute path>.lock``.

    Outside the folder, so that work and run folders hold artifacts only; one per folder on this machine.
    """
    import os
    import tempfile

    absolute = str(Path(folder).resolve())
    digest = hashlib.sha256(absolute.encode()).hexdigest()[:16]
    user = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"pipeline-locks-{user}" / f"{Path(absolute).name}-{digest}.lock"


@dataclass(frozen=True)
class RunPaths:
    """The files of a run folder ``saved_models/<run>/``: everything needed to reload a model."""

    root: Path

    @property
    def info(self) -> Path:
        """``run.json``: the run's kind (classifier, generator, forecast, ...), pipeline version, creation time."""
        return self.root / "run.json"

    @property
    def model(self) -> Path:
        return self.root / "model.keras"

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def vocab(self) -> Path:
        return self.root / "vocab.json"

    @property
    def labels(self) -> Path:
        return self.root / "labels.json"

    @property
    def history(self) -> Path:
        return self.root / "history.csv"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def test_ids(self) -> Path:
        return self.root / "test_ids.npz"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"


JAX_CACHE_BYTES = 1 << 30  # XLA programs kept (least recently used dropped first)


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/pipeline`` (by default ``~/.cache/pipeline``): things any run may rebuild at any time,
    shared by every work folder of this user."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pipeline"


def keep_jax_programs(environment: dict) -> None:
    """Under ``KERAS_BACKEND=jax`` in ``environment`` (``os.environ``), have JAX keep its compiled XLA programs
    in ``user_cache_dir() / "jax"`` between processes (at most :data:`JAX_CACHE_BYTES`), unless ``environment``
    already says where: a second run of a config then compiles none of its steps (``configs/gru.toml``'s train
    stage: 14.7 s, then 5.4 s). The programs are keyed by JAX's version, the device and the whole program, so a
    cached one computes exactly what a new compilation would. JAX reads these variables when it is imported.
    Nothing is set when the folder cannot be made (a read-only home: JAX then compiles every time)."""
    if environment.get("KERAS_BACKEND") != "jax":
        return
    if "JAX_COMPILATION_CACHE_DIR" not in environment:
        folder = user_cache_dir() / "jax"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return
        environment["JAX_COMPILATION_CACHE_DIR"] = str(folder)
    environment.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")  # not the cheapest programs
    environment.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(JAX_CACHE_BYTES))
