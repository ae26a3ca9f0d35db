"""Ctrl-C that is never lost: a SIGINT remembered, so that work goes no further than a safe point after it.

Python raises ``KeyboardInterrupt`` wherever the main thread is when the signal comes. When that is a
finalizer (``__del__``, a weakref callback: a TensorFlow resource freed by the garbage collector) the
exception is printed as "Exception ignored" and dropped, and a training would run to its end and publish
its run folder as if nobody had pressed Ctrl-C. :func:`install` (the command line's entry point only, never
a library call) keeps the usual ``KeyboardInterrupt`` and also sets a flag; :func:`check` raises
``KeyboardInterrupt`` again at a safe point when the flag is set: after every training batch
(:class:`pipeline.training.StopOnInterrupt`) and before a stage records or publishes anything
(:func:`pipeline.stages.run_stage`).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

_requested = threading.Event()
# The saved states of this process's trainings (its training child's too) that have not finished: directory ->
# epochs saved there, the latest last.
_unfinished: dict[Path, int] = {}


def _on_sigint(signum: int, frame: object) -> None:
    _requested.set()
    raise KeyboardInterrupt


def install() -> None:
    """Handle SIGINT for the rest of the process (main thread only): the flag, then ``KeyboardInterrupt``."""
    _requested.clear()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_sigint)


def requested() -> bool:
    """Whether SIGINT came since :func:`install`."""
    return _requested.is_set()


def check() -> None:
    """Raise ``KeyboardInterrupt`` when SIGINT came (even if its first ``KeyboardInterrupt`` was dropped)."""
    if _requested.is_set():
        raise KeyboardInterrupt


def training_saved(directory: Path, epochs: int) -> None:
    """A training has saved its state after ``epochs`` epochs in ``directory``
    (:class:`pipeline.resume.Resume`)."""
    _unfinished.pop(Path(directory), None)
    _unfinished[Path(directory)] = int(epochs)


def training_finished(directory: Path) -> None:
    _unfinished.pop(Path(directory), None)


def unfinished_training() -> tuple[Path, int] | None:
    """``(directory, epochs)`` of the last training state this process saved and did not finish, or None.

    What an interrupted command can promise: rerun, and training resumes after that many epochs. None
    when no training in this process finished an epoch yet (the rerun starts it over), when every one
    finished, and for a task that does not resume (the reading model's training saves no state).
    """
    return next(reversed(_unfinished.items()), None)
