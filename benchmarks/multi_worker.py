"""Two ``train.distribute = "multi_worker"`` workers on this machine against one worker, on the shipped corpus.

Runs the stages before ``train`` once, then trains the config's classifier with one worker
(``train.distribute = "none"``) and with ``--workers`` processes on 127.0.0.1 (``TF_CONFIG``),
scores both runs on the test split (:func:`pipeline.classifier.evaluate.evaluate_classifier`), and
prints per run: test accuracy, epochs, the train stage's seconds and seconds per epoch (with their
ratio to one worker, measured in the same run), and the training examples each worker read per
epoch. On one machine the workers share its cores, so the time shows the cost of the collective
steps, not the speed-up of separate machines.

Usage::

    .venv/bin/python benchmarks/multi_worker.py configs/gru.toml --set train.epochs=8
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.distribution import local_tf_configs

REPOSITORY = Path(__file__).resolve().parents[1]


def pipeline(command: str, options: list[str], environment: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline", command, *options], cwd=REPOSITORY,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(environment or {})})


def wait(processes: list[subprocess.Popen]) -> list[str]:
    logs = [process.communicate()[1] for process in processes]
    for process, log in zip(processes, logs):
        if process.returncode:
            sys.exit(f"exit {process.returncode}:\n{log[-3000:]}")
    return logs


def train_and_evaluate(options: list[str], run: str, workers: int, models: Path) -> dict:
    options = [*options, "--set", f'run_name="{run}"']
    environments = [None]
    if workers > 1:
        options += ["--set", 'train.distribute="multi_worker"']
        environments = [{"TF_CONFIG": value} for value in local_tf_configs(workers)]
    started = time.perf_counter()
    logs = wait([pipeline("train", options, environment) for environment in environments])
    wall = time.perf_counter() - started
    seconds = float(re.search(r"stages: train: done in ([\d.]+) s", logs[0])[1])
    epochs = sum(1 for _ in (models / run / "history.csv").open()) - 1
    reads = [re.findall(r"worker \d+ of \d+ read (\d+) training examples", log) for log in logs]
    return {"workers": workers, "test_accuracy": test_accuracy(options),
            "epochs": epochs, "train_seconds": seconds, "wall_seconds": wall, "seconds_per_epoch": seconds / epochs,
            "examples_read_per_epoch": [sorted(set(map(int, each))) for each in reads] if workers > 1 else None}


def test_accuracy(options: list[str]) -> float:
    """The run's accuracy on the test split, scored in this process (``pipeline evaluate`` would first retrain a
    run whose train stage is out of date, e.g. after an edit of the code)."""
    from pipeline import config as config_module
    from pipeline.classifier.evaluate import evaluate_classifier
    from pipeline.paths import Paths

    overrides = [value for flag, value in zip(options, options[1:]) if flag == "--set"]
    config = config_module.load(options[options.index("--config") + 1], overrides)
    return float(evaluate_classifier(config, Paths.from_config(config))["accuracy"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--set", action="append", default=[], help="config overrides, as for `pipeline`")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="multi-worker-bench-"))
    options = ["--config", args.config, "--set", f'work_dir="{root / "work"}"',
               "--set", f'models_dir="{root / "models"}"', *[part for value in args.set for part in ("--set", value)]]
    wait([pipeline("pretrain", options)])  # every stage before train
    one = train_and_evaluate(options, "one_worker", 1, root / "models")
    more = train_and_evaluate(options, f"{args.workers}_workers", args.workers, root / "models")
    for result in (one, more):
        result["seconds_per_epoch_ratio"] = round(result["seconds_per_epoch"] / one["seconds_per_epoch"], 2)
        print(json.dumps(result))
    print(json.dumps({"test_accuracy_difference": round(more["test_accuracy"] - one["test_accuracy"], 4),
                      "folder": str(root)}))


if __name__ == "__main__":
    main()
