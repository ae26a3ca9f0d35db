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

_requested = threading.Event()


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
