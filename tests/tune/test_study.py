"""pipeline.tune.study: what a trial's config keeps and changes of the config being tuned."""

from __future__ import annotations

import keras
from helpers import TEST_CONFIGS

from pipeline import backend_process
from pipeline.tune.study import load_job, trial_data, trial_paths


def test_a_trial_trains_in_this_process_whatever_train_backend_says(tmp_path):
    """The pruner is a callback in this process: a trial never goes to a child on another backend."""
    job = load_job(TEST_CONFIGS / "small.toml", ['train.backend="jax"', "train.learning_rate=0.01"])
    data = trial_data(job, {"train.learning_rate": 0.003}, tmp_path, 3)
    config = job.build(data, where="trial 3")
    assert config.train.backend == backend_process.current() == keras.backend.backend()
    assert config.train.learning_rate == 0.003 and config.run_name == trial_paths(tmp_path, 3).run.name
    assert job.data["train"]["backend"] == "jax"  # the best config, written from the job's data, keeps it
