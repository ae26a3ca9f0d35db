"""Stage actions that tests/test_backend_process.py runs in a child process (``backend_actions:NAME``): each
does what a training does to its parent (returns, fails, is interrupted) without importing Keras."""

import os
import time
from pathlib import Path

import numpy as np

from pipeline import interrupts
from pipeline.errors import PipelineError


def report(config, paths) -> dict:
    """What the child saw: its backend, process, config and folders (a NumPy scalar among them)."""
    return {"backend": os.environ["KERAS_BACKEND"], "pid": os.getpid(), "config": config.to_dict(),
            "paths": [str(paths.work), str(paths.run)], "epochs": np.int64(3)}


def refuse(config, paths) -> dict:
    raise PipelineError(f"config key 'train.epochs' = {config.train.epochs} is refused by this test action")


def crash(config, paths) -> dict:
    raise ValueError("a bug in the action")


def wait_for_interrupt(config, paths) -> dict:
    """Save 'two epochs' of state, write this process's id to ``paths.run / "child.pid"``, then wait for a
    Ctrl-C as a training does between batches."""
    interrupts.training_saved(Path(paths.work) / "resume", 2)
    Path(paths.run).mkdir(parents=True, exist_ok=True)
    (Path(paths.run) / "child.pid").write_text(str(os.getpid()))
    for _ in range(1200):
        time.sleep(0.05)
        interrupts.check()
    return {}
