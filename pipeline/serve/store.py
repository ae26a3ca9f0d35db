"""The runs a service serves: each loaded once, called on a worker thread of its own, swapped when its
folder is republished.

Every model has a :class:`ModelSlot`: its name (the run folder's name), its folder, the loaded
:class:`pipeline.runs.Run` with what ``GET /v1/models`` says about it, and one worker thread. Model calls
run on that thread, so the event loop never waits for TensorFlow and a run never sees two calls at once.
GiNZA is the exception to "one run, one thread": ``pipeline.text.tokenize.load_nlp`` shares one spaCy
pipeline per GiNZA model between all runs of the process, and SudachiPy refuses two threads at once
("Already borrowed"), so calls of runs that tokenize with the same GiNZA model take turns
(:func:`tokenizer_lock`).

A reload (``POST /v1/models/reload``, SIGHUP) compares each folder's signature (``run.json``'s ``created``,
the sha256 of ``config.json``, the identity of ``model.keras``) with the loaded one's, loads a changed folder
beside the serving run, warms it up, and only then swaps it in: requests keep being answered by the old run
until the new one is ready, and a folder that cannot be loaded leaves the old run serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import __version__, registry
from pipeline.errors import PipelineError
from pipeline.paths import RunPaths
from pipeline.runs import Run, load_run

log = logging.getLogger(__name__)

# One lock per GiNZA model (its spaCy pipeline is shared by every run of the process, see the module docstring).
_TOKENIZER_LOCKS: dict[str, threading.Lock] = {}
_TOKENIZER_LOCKS_GUARD = threading.Lock()

# A first call per method pays for GiNZA's load and TensorFlow's tracing (1-2 s), the second one, of another
# batch shape, for a retrace (~0.3 s) after which Keras's predict function takes any shape; the warm-up pays
# both, so /readyz means "answers at full speed" and a user's first request is as fast as the next.
WARM_UP_TEXTS = (["準備運動の文です。"], ["短い文。", "これは準備運動のための少し長めの文です。"])
WARM_UPS: dict[str, Callable[[Run], Any]] = {
    "classify": lambda run: [run.classify(texts) for texts in WARM_UP_TEXTS],
    "generate": lambda run: run.generate("", num=1, max_tokens=1),
    "read": lambda run: [run.read(texts, beam_size=1) for texts in WARM_UP_TEXTS],
}


def tokenizer_lock(run: Run) -> threading.Lock | None:
    """The lock shared by the runs that tokenize with the same GiNZA model; None for other tokenizers."""
    if run.config.tokenize.method != "ginza":
        return None
    with _TOKENIZER_LOCKS_GUARD:
        return _TOKENIZER_LOCKS.setdefault(run.config.tokenize.model, threading.Lock())


@dataclass(frozen=True)
class Signature:
    """What changes when a run folder is republished: ``run.json``'s time, the config, the model file."""

    created: str | None
    fingerprint: str
    model_file: tuple[int, int, int]  # inode, size, modification time (ns) of model.keras


def read_signature(folder: Path) -> Signature:
    """The folder's :class:`Signature`; OSError or ValueError while it is missing or being replaced."""
    paths = RunPaths(folder)
    fingerprint = hashlib.sha256(paths.config.read_bytes()).hexdigest()
    created = None
    if paths.info.is_file():
        info = json.loads(paths.info.read_text(encoding="utf-8"))
        created = info.get("created") if isinstance(info, dict) else None
    stat = paths.model.stat()
    return Signature(created if isinstance(created, str) else None, fingerprint,
                     (stat.st_ino, stat.st_size, stat.st_mtime_ns))


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite(item) for item in value]
    return value


def read_metrics(folder: Path) -> dict | None:
    """The run's ``metrics.json`` (non-finite numbers as null), or None when there is none or it is unreadable."""
    path = RunPaths(folder).metrics
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return finite(metrics) if isinstance(metrics, dict) else None


@dataclass(frozen=True)
class Served:
    """A loaded run, the signature of the folder it came from, and its ``GET /v1/models`` entry."""

    run: Run
    signature: Signature
    info: dict[str, Any]

    def can(self, method: str) -> bool:
        """Whether the run's task offers ``method`` (classify, explain, generate, read)."""
        return method in registry.task(self.run.task).api


def load_served(name: str, folder: Path, warm_up: bool = True) -> Served:
    """Load the run in ``folder`` and warm it up; PipelineError when it cannot be loaded."""
    try:
        signature = read_signature(folder)
    except (OSError, ValueError):
        signature = None  # load_run says what is wrong with the folder
    run = load_run(folder)
    if signature is None:
        raise PipelineError(f"{folder}: the run folder changed while it was loaded; reload again")
    if warm_up:
        for method, function in WARM_UPS.items():
            if method in registry.task(run.task).api:
                with tokenizer_lock(run) or contextlib.nullcontext():
                    function(run)
    info = {"name": name, "task": run.task, "labels": list(run.labels), "conditioned": run.conditioned,
            "metrics": read_metrics(folder),
            "fingerprint": signature.fingerprint, "created": signature.created, "version": __version__}
    return Served(run, signature, info)


@dataclass
class ModelSlot:
    """One served model: its name, folder, the loaded run (None until loaded) and its worker thread."""

    name: str
    folder: Path
    served: Served | None = None
    error: str | None = None  # why the first load failed
    executor: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"model-{self.name}")

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``run.<method>(*args, **kwargs)`` on the serving run, on the calling thread (the worker)."""
        run = self.served.run
        try:
            with tokenizer_lock(run) or contextlib.nullcontext():
                return getattr(run, method)(*args, **kwargs)
        except PipelineError as error:  # the client sees the model's name, never a path of the server
            raise PipelineError(str(error).replace(str(run.folder), f"model {self.name!r}")) from None

    async def call_async(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """:meth:`call` on the slot's worker thread, awaited from the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(self.call, method, *args, **kwargs))


class ModelStore:
    """The slots of every served model, their loading and their reloading.

    Args:
        folders: model name -> run folder.
        warm_up: call each run once after loading (see :data:`WARM_UPS`).
    """

    def __init__(self, folders: dict[str, Path], warm_up: bool = True) -> None:
        self.slots = {name: ModelSlot(name, Path(folder)) for name, folder in folders.items()}
        self.warm_up = warm_up
        self.failure: str | None = None  # the first load error: the service will never be ready
        self._reload_lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return all(slot.served is not None for slot in self.slots.values())

    def loading(self) -> list[str]:
        """The names of the models not loaded yet."""
        return [name for name, slot in self.slots.items() if slot.served is None]

    def start_loading(self, on_failure: Callable[[str], None] | None = None) -> threading.Thread:
        """Load every run in a background thread (so the server answers /healthz at once)."""
        thread = threading.Thread(target=self.load_all, args=(on_failure,), name="load-models", daemon=True)
        thread.start()
        return thread

    def load_all(self, on_failure: Callable[[str], None] | None = None) -> None:
        for slot in self.slots.values():
            if slot.served is not None:
                continue
            try:
                slot.served = load_served(slot.name, slot.folder, self.warm_up)
            except Exception as error:  # PipelineError, or a bug: either way the service will never be ready
                if not isinstance(error, PipelineError):
                    log.exception("model %s: loading failed", slot.name)
                slot.error = self.failure = f"model {slot.name!r}: {error}"
                log.error("%s", self.failure)
                if on_failure is not None:
                    on_failure(self.failure)
                return
            log.info("model %s (%s) loaded from %s", slot.name, slot.served.run.task, slot.folder)

    def reload_changed(self) -> dict[str, list]:
        """Reload every model whose folder was republished: ``{"reloaded", "unchanged", "failed"}``."""
        report: dict[str, list] = {"reloaded": [], "unchanged": [], "failed": []}
        with self._reload_lock:
            for slot in self.slots.values():
                served = slot.served
                try:
                    changed = served is None or read_signature(slot.folder) != served.signature
                except (OSError, ValueError):
                    changed = True  # missing or half-replaced: try to load, keep the old one on failure
                if not changed:
                    report["unchanged"].append(slot.name)
                    continue
                try:
                    slot.served = load_served(slot.name, slot.folder, self.warm_up)
                except Exception as error:  # whatever the new folder holds, the old run keeps serving
                    if not isinstance(error, PipelineError):
                        log.exception("model %s: reloading failed", slot.name)
                        error = f"cannot be loaded ({type(error).__name__}: {error})"
                    log.warning("model %s: not reloaded, the loaded run keeps serving: %s", slot.name, error)
                    report["failed"].append({"name": slot.name, "message": str(error)})
                    continue
                log.info("model %s reloaded from %s", slot.name, slot.folder)
                report["reloaded"].append(slot.name)
        return report

    def close(self) -> None:
        for slot in self.slots.values():
            slot.executor.shutdown(wait=False, cancel_futures=True)
