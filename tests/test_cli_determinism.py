"""Determinism, shown through the real CLI: same config and seed in two processes, same results.

A fresh process and this test process (which has run other tests before: a run must not depend on what its
process did before it), each with its own work_dir and models_dir (nothing shared but the corpus), run
``pipeline run`` on a tiny classifier (tests/configs/small.toml) and then on a tiny language model
(tests/configs/generator_small.toml, one epoch), at the same time. The run folders must agree bit for bit:
``metrics.json``, ``history.csv``, the vocabulary and labels, and every array in the saved model's weights file
(the model's weights and the optimizer's state). The archive itself is not compared byte for byte: Keras stamps
the save date into it.
"""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import REPOSITORY, RUN_EACH, assert_success, cli_here, folders

pytestmark = pytest.mark.slow

RUNS = {"classifier": ("tests/configs/small.toml",),
        "language_model": ("tests/configs/generator_small.toml", "--set", "train.epochs=1")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, list[Path]]:
    """Every run of RUNS, in RUNS' order, in a fresh process ("fresh") and meanwhile in this one ("here"), each
    under its own folder of a temporary root: ``{name: [the fresh process's run folder, this one's]}``."""
    root = tmp_path_factory.mktemp("determinism")

    def commands(process: str) -> list[list[str]]:
        return [["--quiet", "run", config, *folders(root / process / name), *overrides]
                for name, (config, *overrides) in RUNS.items()]

    fresh = subprocess.Popen([sys.executable, "-c", RUN_EACH, json.dumps(commands("fresh"))], cwd=REPOSITORY,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             encoding="utf-8")
    try:
        for command in commands("here"):
            assert_success(cli_here(*command))
    finally:
        stdout, stderr = fresh.communicate(timeout=600)
    assert fresh.returncode == 0, f"stdout:\n{stdout[-2000:]}\nstderr:\n{stderr[-4000:]}"
    return {name: [next((root / process / name / "models").iterdir()) for process in ("fresh", "here")]
            for name in RUNS}


def weight_arrays(model_file: Path) -> dict[str, np.ndarray]:
    """Every dataset in the ``model.weights.h5`` inside a ``.keras`` archive, by its path."""
    import h5py

    arrays: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(model_file) as archive, archive.open("model.weights.h5") as weights:
        with h5py.File(weights, "r") as store:
            store.visititems(lambda name, item: arrays.__setitem__(name, item[()])
                             if isinstance(item, h5py.Dataset) else None)
    return arrays


def assert_identical_runs(first: Path, second: Path) -> None:
    for name in ("metrics.json", "history.csv", "vocab.json", "labels.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    first_arrays, second_arrays = weight_arrays(first / "model.keras"), weight_arrays(second / "model.keras")
    assert len(first_arrays) >= 3 and first_arrays.keys() == second_arrays.keys()
    for name, array in first_arrays.items():
        assert array.dtype == second_arrays[name].dtype and array.shape == second_arrays[name].shape, name
        assert array.tobytes() == second_arrays[name].tobytes(), f"{name} differs between the two processes"


def test_classifier_runs_are_identical_in_a_fresh_process_and_this_one(runs):
    first, second = runs["classifier"]
    assert_identical_runs(first, second)
    metrics = json.loads((first / "metrics.json").read_text(encoding="utf-8"))
    assert 0 < metrics["accuracy"] <= 1 and "seconds" not in json.dumps(metrics)  # no wall times in the metrics


def test_language_model_runs_after_a_classifier_are_identical_in_two_processes(runs):
    first, second = runs["language_model"]
    assert_identical_runs(first, second)
    assert "perplexity" in json.loads((first / "metrics.json").read_text(encoding="utf-8"))
