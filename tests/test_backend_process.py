"""pipeline.backend_process: a stage's action in a child process on another Keras backend.

The frame's part (result, one-line error, crash, Ctrl-C, a parent that dies) runs the actions of
tests/backend_actions.py, which import no Keras, so each child costs a Python start. The real thing: the
small classifier trained with ``train.backend = "jax"`` through the command line of this TensorFlow
process, evaluated here, the same history twice.
"""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pandas as pd
import pytest
from helpers import REPOSITORY, TEST_CONFIGS, explain

from pipeline import backend_process
from pipeline.cli import main
from pipeline.config import load
from pipeline.errors import PipelineError
from pipeline.paths import Paths, RunPaths

PARENT = """
import sys
from pathlib import Path
from pipeline import backend_process, interrupts
from pipeline.config import load
from pipeline.paths import Paths
interrupts.install()
config, paths = load(sys.argv[1]), Paths(Path(sys.argv[2]), Path(sys.argv[3]))
try:
    backend_process.call("tensorflow", "backend_actions:wait_for_interrupt", config, paths)
except KeyboardInterrupt:
    print("interrupted", *interrupts.unfinished_training())
    sys.exit(130)
"""


@pytest.fixture
def actions(monkeypatch, tmp_path):
    """The child finds tests/backend_actions.py; the folders it is given."""
    monkeypatch.setenv("PYTHONPATH", str(REPOSITORY / "tests"))
    return load(TEST_CONFIGS / "small.toml"), Paths(tmp_path / "work", tmp_path / "run")


def test_the_child_runs_on_the_backend_asked_for_with_the_same_config_and_folders(actions):
    config, paths = actions
    result = backend_process.call("tensorflow", "backend_actions:report", config, paths)
    assert result["backend"] == "tensorflow" and result["pid"] != os.getpid()
    assert result["config"] == json.loads(json.dumps(config.to_dict()))
    assert result["paths"] == [str(paths.work), str(paths.run)] and result["epochs"] == 3


def test_the_childs_user_error_is_raised_here_as_the_same_one_line(actions):
    config, paths = actions
    with pytest.raises(PipelineError, match=r"^config key 'train.epochs' = 2 is refused by this test action$"):
        backend_process.call("tensorflow", "backend_actions:refuse", config, paths)


def test_a_crash_in_the_child_is_no_user_error(actions, capfd):
    config, paths = actions
    with pytest.raises(RuntimeError, match="exit status 1"):
        backend_process.call("tensorflow", "backend_actions:crash", config, paths)
    assert "ValueError: a bug in the action" in capfd.readouterr().err  # the child's traceback


def start_parent(actions, tmp_path) -> tuple[subprocess.Popen, int]:
    """A parent process whose child waits for a Ctrl-C; (parent, the child's pid) once the child is waiting."""
    config, paths = actions
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(TEST_CONFIGS / "small.toml"), str(paths.work),
                               str(paths.run)], cwd=REPOSITORY, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    pid_file = paths.run / "child.pid"
    deadline = time.monotonic() + 60
    while not (pid_file.is_file() and pid_file.read_text()) and parent.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pid_file.is_file(), explain(subprocess.CompletedProcess(parent.args, parent.poll(), *parent.communicate()))
    return parent, int(pid_file.read_text())


def gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_a_sigint_to_the_parent_alone_stops_the_child_and_the_parent_promises_its_saved_state(actions, tmp_path):
    parent, child = start_parent(actions, tmp_path)
    parent.send_signal(signal.SIGINT)  # not to the process group: the parent passes it on
    stdout, stderr = parent.communicate(timeout=60)
    assert parent.returncode == 130, f"{stdout}\n{stderr}"
    assert stdout.split() == ["interrupted", str(tmp_path / "work" / "resume"), "2"]  # the child's saved state
    assert gone(child)


def test_a_killed_parent_takes_its_child_with_it(actions, tmp_path):
    parent, child = start_parent(actions, tmp_path)
    parent.kill()
    parent.communicate(timeout=60)
    assert gone(child), "the child kept running after its parent (and the parent's locks) were gone"


def test_current_is_keras_own_backend_once_imported_else_what_keras_would_choose(monkeypatch, tmp_path):
    """Which backend a stage would run on in this process, without importing Keras."""
    assert backend_process.current() == keras.backend.backend()  # Keras imported: its own answer
    monkeypatch.delitem(sys.modules, "keras")
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert backend_process.current() == "jax"
    monkeypatch.delenv("KERAS_BACKEND")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert backend_process.current() == "tensorflow"  # no keras.json: Keras' default
    (tmp_path / "keras.json").write_text('{"backend": "jax", "floatx": "float32"}')
    assert backend_process.current() == "jax"


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed (pip install -e '.[dev]')")
def test_a_classifier_trained_on_jax_in_a_child_is_evaluated_here_and_trains_again_to_the_same_history(
        small_work_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # JAX's compiled programs: the second run reuses
    arguments = ["--config", str(TEST_CONFIGS / "small.toml"), "--set", f'work_dir="{small_work_dir}"',  # its front end
                 "--set", f'corpus.path="{REPOSITORY / "corpora" / "knb_blog"}"',
                 "--set", f'models_dir="{tmp_path / "models"}"', "--set", 'train.backend="jax"']
    assert keras.backend.backend() == "tensorflow"
    assert main(["run", *arguments[1:]]) == 0
    run = RunPaths(tmp_path / "models" / "small")
    first = pd.read_csv(run.history)
    assert len(first) == 2 and json.loads(run.config.read_text())["train"]["backend"] == "jax"
    metrics = json.loads(run.metrics.read_text())  # evaluate ran here, on TensorFlow, on the model JAX trained
    assert 0 < metrics["accuracy"] <= 1
    model = keras.saving.load_model(run.model, compile=False)
    assert np.isfinite(model.get_weights()[-1]).all()
    assert (tmp_path / "cache" / "pipeline" / "jax").is_dir()
    assert main(["train", *arguments, "--force"]) == 0
    assert pd.read_csv(run.history).equals(first)  # same seed, same epochs: JAX on the CPU is deterministic
