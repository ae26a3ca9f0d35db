"""Determinism, shown through the real CLI: same config and seed in two fresh processes, same results.

``pipeline run`` trains a tiny classifier (tests/configs/small.toml) and a tiny language model
(tests/configs/generator_small.toml, one epoch) twice each, in two processes started side by side with
their own work_dir and models_dir, so nothing is shared but the corpus. The run folders must agree bit
for bit: ``metrics.json``, ``history.csv``, the vocabulary and labels, and every array in the saved
model's weights file (the model's weights and the optimizer's state). The archive itself is not
compared byte for byte: Keras stamps the save date into it.
"""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import REPOSITORY, folders

pytestmark = pytest.mark.slow


def run_twice(config: str, root: Path, *overrides: str) -> list[Path]:
    """``pipeline run CONFIG`` in two fresh processes at once (own folders under root); their run folders."""
    commands = [[sys.executable, "-m", "pipeline", "--quiet", "run", config, *folders(root / name), *overrides]
                for name in ("first", "second")]
    processes = [subprocess.Popen(command, cwd=REPOSITORY, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, encoding="utf-8") for command in commands]
    for process in processes:
        stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, f"stdout:\n{stdout[-2000:]}\nstderr:\n{stderr[-4000:]}"
    return [next((root / name / "models").iterdir()) for name in ("first", "second")]


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


def test_classifier_runs_are_identical_in_two_fresh_processes(tmp_path):
    first, second = run_twice("tests/configs/small.toml", tmp_path)
    assert_identical_runs(first, second)
    metrics = json.loads((first / "metrics.json").read_text(encoding="utf-8"))
    assert 0 < metrics["accuracy"] <= 1 and "seconds" not in json.dumps(metrics)  # no wall times in the metrics


def test_language_model_runs_are_identical_in_two_fresh_processes(tmp_path):
    first, second = run_twice("tests/configs/generator_small.toml", tmp_path, "--set", "train.epochs=1")
    assert_identical_runs(first, second)
