"""Fixtures shared across test folders; plain helper functions are in ``helpers.py``."""

import io
import os
import shutil
import sys
from pathlib import Path

# XLA (JAX's compiled steps, TensorFlow's jit_compile) compiles without LLVM's optimisations here: the suite
# compiles hundreds of tiny programs and runs each a few times, so compiling is most of their time (the JAX checks
# of tests/test_backends.py take 40% less CPU); the numbers stay within the float32 tolerances the tests compare
# at. Set before TensorFlow or JAX starts XLA; the processes the tests start inherit it.
TEST_XLA_FLAGS = ("--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true")
os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), *(
    flag for flag in TEST_XLA_FLAGS if flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""))]).strip()

# One compute thread per TensorFlow (and oneDNN/OpenMP) process: `make test` runs three workers on the machine's
# two cores, and the tests' tiny models gain nothing from a second thread, so more threads per worker only make
# the workers contend (measured with two workers: 11% less wall time for the training-heavy modules). Set before
# TensorFlow starts; the processes the tests start inherit it. A value already in the environment wins.
for variable in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

import pytest  # noqa: E402 (after XLA_FLAGS)
from helpers import knb_config  # noqa: E402

from pipeline.classifier.train import train_classifier  # noqa: E402
from pipeline.paths import Paths  # noqa: E402
from pipeline.runs import load_run  # noqa: E402
from pipeline.stages import run_stage  # noqa: E402

# Folders whose modules share session fixtures that train (tests/serve: a classifier, a generator and a reading
# run): under `pytest -n 3 --dist loadscope` their modules go to one worker, so those runs train once.
SHARED_SCOPES = ("tests/serve/",)


def pytest_xdist_make_scheduler(config, log):
    """``--dist loadscope`` with each folder of :data:`SHARED_SCOPES` as one scope; other modes unchanged."""
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FolderScopeScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            folder = next((folder for folder in SHARED_SCOPES if nodeid.startswith(folder)), None)
            return folder or super()._split_scope(nodeid)

    return FolderScopeScheduling(config, log)


@pytest.fixture(scope="session")
def small_work_dir(tmp_path_factory) -> Path:
    """prepare -> tokenize -> vectorize of tests/configs/small.toml on the shipped corpus, once per session."""
    work_dir = tmp_path_factory.getbasetemp() / "small-work"
    run_stage("vectorize", knb_config("small", work_dir, tmp_path_factory.getbasetemp() / "unused-models"))
    return work_dir


@pytest.fixture(scope="session")
def small_trained(small_work_dir, tmp_path_factory):
    """(config, run folder) of the small config, trained and published (run.json) once per session: read it
    only (``small_run_copy`` is a copy a test may damage)."""
    config = knb_config("small", small_work_dir, tmp_path_factory.mktemp("classify-models"))
    run_stage("train", config)
    return config, Paths.from_config(config).run


@pytest.fixture(scope="module")
def small_attention_trained(small_work_dir, tmp_path_factory):
    """(config, run folder) of the small config with model.pooling = "attention", trained once for this module."""
    config = knb_config("small", small_work_dir, tmp_path_factory.mktemp("attention-models"),
                        'model.pooling="attention"', "model.attention_units=8", 'run_name="small_attention"')
    train_classifier(config, Paths.from_config(config))
    return config, Paths.from_config(config).run


@pytest.fixture(scope="module")
def small_run(small_trained):
    """The trained small run, loaded once per module."""
    return load_run(small_trained[1])


@pytest.fixture
def small_run_copy(small_trained, tmp_path) -> Path:
    """A copy of the trained run folder that a test may damage."""
    return Path(shutil.copytree(small_trained[1], tmp_path / "run"))


@pytest.fixture
def quiet_terminal(monkeypatch, caplog) -> io.StringIO:
    """As ``pipeline --quiet`` on a terminal: stderr a TTY (returned, to read what was drawn), the ``pipeline``
    loggers at WARNING, and progress that would report at once (no delay before a bar or a log line)."""
    from pipeline import progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(progress, "LOG_INTERVAL_SECONDS", 0.0)
    monkeypatch.setattr(progress, "BAR_DELAY_SECONDS", 0.0)
    caplog.set_level("WARNING", logger="pipeline")
    return terminal


@pytest.fixture
def progress_log(monkeypatch, caplog):
    """Progress as in a log file or CI: stderr no terminal, a line at every update (not every 10% and 5 s)."""
    from pipeline import progress

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.setattr(progress, "LOG_INTERVAL_SECONDS", 0.0)
    monkeypatch.setattr(progress, "LOG_SHARE_STEP", 0.0)
    caplog.set_level("INFO", logger="pipeline")
    return caplog
