"""A stage's training on another Keras backend than this process's: the same action, in a child process.

Keras fixes its backend for the whole process when it is first imported. ``train.backend = "jax"`` trains
on JAX, whose whole train step is compiled by XLA (an epoch of ``configs/gru.toml`` is several times faster
than TensorFlow's op-by-op loop on a CPU), while the rest of the command (evaluate, classify, export,
serve) stays on the process's backend: the child writes the run folder as the stage would here, and a
``.keras`` file saved under one backend loads under the other.

What the child gets and gives back:

* the config (as a dict), the folders (``Paths``) and the importable name of the action
  (``module:function``); it runs ``action(config, paths)`` from the same working directory, with
  ``KERAS_BACKEND`` set, JAX's compiled programs kept between runs (:func:`pipeline.paths.keep_jax_programs`)
  and the parent's logging level;
* its result (a JSON-ready dict), or the message of its :class:`PipelineError`, raised again here as the same
  one-line error; a crash is a ``RuntimeError`` pointing at the child's traceback (printed on the same stderr).

Locks and signals: the parent holds the work and run folders' locks for the child, which takes none. A
Ctrl-C at the terminal reaches both; a SIGINT sent to the parent alone is passed on. Either way the child
stops at the next batch with its training state saved (:mod:`pipeline.interrupts`), the parent waits for it,
learns what it saved (so the command's message can promise the resume) and raises ``KeyboardInterrupt``.
A parent that dies outright (SIGKILL, SIGTERM) takes the child with it (Linux's parent-death signal, or a
watcher thread elsewhere): nothing keeps writing into folders whose locks are gone.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from pipeline import interrupts
from pipeline import io as artifact_io
from pipeline.errors import PipelineError
from pipeline.paths import Paths, keep_jax_programs

log = logging.getLogger(__name__)

INTERRUPTED = 130  # the child's exit status after a Ctrl-C (as the command line's)


def current() -> str:
    """This process's Keras backend without importing Keras: Keras' own once imported, else what Keras would
    choose (``KERAS_BACKEND``, then ``backend`` in ``$KERAS_HOME/keras.json``, then ``"tensorflow"``)."""
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend"):
        return keras.backend.backend()
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    settings = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "keras.json"
    try:
        return str(json.loads(settings.read_text(encoding="utf-8")).get("backend") or "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def call(backend: str, action: str, config: Any, paths: Paths) -> dict:
    """``action(config, paths)`` (``action``: ``"module:function"``) in a child process whose Keras backend is
    ``backend``; its result. Raises what the child raised: :class:`PipelineError` (its one line),
    ``KeyboardInterrupt`` (after the child saved its state and stopped) or ``RuntimeError`` (a crash)."""
    if backend == "jax":
        import importlib.util

        if importlib.util.find_spec("jax") is None:
            raise PipelineError('train.backend = "jax": JAX is not installed here; install it (pip install '
                                '"jax[cpu]") or set train.backend = "tensorflow"')
    with tempfile.TemporaryDirectory(prefix="pipeline-backend-") as scratch:
        request, outcome = Path(scratch) / "request.json", Path(scratch) / "outcome.json"
        artifact_io.write_json(request, {
            "action": action, "config": config.to_dict(), "owner": config.owner,
            "paths": {"work": str(paths.work), "run": str(paths.run)}, "outcome": str(outcome),
            "parent": os.getpid(), "log_level": logging.getLogger().getEffectiveLevel()})
        environment = {**os.environ, "KERAS_BACKEND": backend}
        keep_jax_programs(environment)
        log.info("training on %s in a child process (train.backend)", backend)
        child = subprocess.Popen([sys.executable, "-m", "pipeline.backend_process", str(request)],
                                 env=environment, stdin=subprocess.DEVNULL)
        try:
            status = child.wait()
        except KeyboardInterrupt:
            if child.poll() is None:  # a terminal's Ctrl-C reached it too; a SIGINT to this process alone did not
                child.send_signal(signal.SIGINT)
            _wait_through_interrupts(child)
            _remember_saved(_read(outcome))
            raise
        except BaseException:
            child.kill()
            child.wait()
            raise
        answer = _read(outcome)
        _remember_saved(answer)
        if "error" in answer:
            raise PipelineError(answer["error"])
        if status == INTERRUPTED or "interrupted" in answer:
            raise KeyboardInterrupt
        if status != 0 or "result" not in answer:
            raise RuntimeError(f"training on {backend} in a child process failed (exit status {status}); its "
                               "traceback is above")
        return answer["result"]


def _wait_through_interrupts(child: subprocess.Popen) -> None:
    """Wait for the child to stop, however many more Ctrl-Cs come meanwhile (it is saving its state)."""
    while True:
        try:
            child.wait()
            return
        except KeyboardInterrupt:
            continue


def _read(outcome: Path) -> dict:
    try:
        answer = artifact_io.read_json(outcome)
    except (FileNotFoundError, ValueError):
        return {}
    return answer if isinstance(answer, dict) else {}


def _remember_saved(answer: dict) -> None:
    """The child's unfinished training state, for this process's interrupt message (:mod:`pipeline.interrupts`)."""
    saved = answer.get("saved")
    if saved:
        interrupts.training_saved(Path(saved[0]), saved[1])


# ------------------------------------------------------------------ the child
def _die_with_parent(parent: int) -> None:
    """Exit at once when the parent process is gone (its locks are released: nothing may write any more)."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
        else:
            if os.getppid() != parent:  # it died before the signal was asked for
                os._exit(1)
            return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def child_main(request_path: str) -> int:
    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    _die_with_parent(request["parent"])
    interrupts.install()
    from pipeline import config as config_module
    from pipeline import registry
    from pipeline.cli import configure_logging

    configure_logging(quiet=request["log_level"] > logging.INFO)
    outcome = Path(request["outcome"])

    def answer(**fields: Any) -> None:
        saved = interrupts.unfinished_training()
        if saved:
            fields["saved"] = [str(saved[0]), saved[1]]
        artifact_io.write_text(outcome, json.dumps(fields, default=_plain))

    try:
        registry.load_plugins()
        config = config_module.from_dict(request["config"], owner=request["owner"] or None)
        paths = Paths(work=Path(request["paths"]["work"]), run=Path(request["paths"]["run"]))
        result = registry.resolve(request["action"])(config, paths) or {}
        interrupts.check()
    except PipelineError as error:
        answer(error=str(error))
        return PipelineError.exit_status
    except KeyboardInterrupt:
        answer(interrupted=True)
        return INTERRUPTED
    answer(result=result)
    return 0


def _plain(value: Any) -> Any:
    """NumPy scalars and paths in a result, as JSON values."""
    return value.item() if hasattr(value, "item") else str(value)


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1]))
