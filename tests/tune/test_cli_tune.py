"""``pipeline tune`` through the real CLI on the shipped corpus with the small config (tests/configs/small.toml).

Two trials, then the same command with ``--trials 3`` continues the study by exactly one trial; the best
config loads and differs from the input only in searched keys; trials read no test split and leave an
existing run byte-identical; bad input is a one-line error with exit status 2.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
from helpers import (
    REPOSITORY,
    TEST_CONFIGS,
    assert_success,
    assert_user_error,
    cli_here,
    tree_bytes,
    write_classifier_run,
)

from pipeline import config as config_module
from pipeline.io import read_json
from pipeline.tune.space import get_value

SMALL = TEST_CONFIGS / "small.toml"


def overrides(work_dir, models_dir) -> list[str]:
    """The options that make the CLI use the session's vectorized corpus (tests/conftest.py small_work_dir), one
    epoch a trial."""
    values = [f'corpus.path="{REPOSITORY / "corpora" / "knb_blog"}"', f'work_dir="{work_dir}"',
              f'models_dir="{models_dir}"', "train.epochs=1"]  # one epoch a trial: the search, not the models
    return [option for value in values for option in ("--set", value)]


def flatten(data: dict, prefix: str = "") -> dict:
    """``{"model.layers.units": 8, ...}`` of nested config dicts."""
    flat = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            for index, item in enumerate(value):  # model.layers.units: the first table's; [1]: the second's
                flat.update(flatten(item, f"{name}." if index == 0 else f"{name}[{index}]."))
        else:
            flat[name] = value
    return flat


def test_tune_writes_the_best_config_and_resumes_its_study(small_work_dir, tmp_path):
    models = tmp_path / "models"
    existing = write_classifier_run(models / "small")  # a run under the config's own name: never touched
    before = tree_bytes(existing)
    options = overrides(small_work_dir, models)

    assert_success(result := cli_here("tune", str(SMALL), "--trials", "2", *options))
    tuned = models / "small-tune"
    assert "best validation macro_f1" in result.stdout
    assert read_json(tuned / "run.json")["kind"] == "tune"
    trials = pd.read_csv(tuned / "trials.csv")
    assert list(trials["number"]) == [0, 1]
    assert set(trials["state"]) == {"complete"}
    assert trials["from_config"].tolist() == [True, False]  # trial 0 trains the config as given
    assert trials["validation_macro_f1"].between(0, 1).all()
    assert (tuned / "search.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the best config is a valid config and differs from the input only in searched keys, with the best values
    summary = read_json(tuned / "tune.json")
    best = config_module.load(tuned / "best_config.toml")
    assert best.model.task == "classifier"
    given = config_module.apply_overrides(tomllib.loads(SMALL.read_text(encoding="utf-8")),
                                          [value for value in options if value != "--set"])
    written = tomllib.loads((tuned / "best_config.toml").read_text(encoding="utf-8"))
    changed = {key for key in flatten(written) | flatten(given) if flatten(written).get(key) != flatten(given).get(key)}
    assert changed <= set(summary["best_params"]), changed
    for key, value in summary["best_params"].items():
        assert get_value(written, key) == value
    assert summary["best_value"] == trials["validation_macro_f1"].max()

    # trials saw no test split: their corpus copy has none, and each score counts validation sentences
    study = Path(summary["study"])
    with np.load(study / "view" / "ids.npz") as ids:
        assert not [name for name in ids.files if name.startswith("test_")]
        validation_size = len(ids["validation_labels"])
    view_tokens = pd.read_parquet(study / "view" / "tokens.parquet", columns=["split"])
    assert "test" not in set(view_tokens["split"]) and (view_tokens["split"] == "validation").sum() == validation_size
    correct = trials["validation_accuracy"] * validation_size
    np.testing.assert_allclose(correct, correct.round(), atol=1e-6)  # k / (validation sentences) for each trial
    assert not list((study / "trials").iterdir())  # scratch runs are deleted

    # the same command with --trials 3 continues the study: one new trial, the first two unchanged
    assert_success(cli_here("tune", str(SMALL), "--trials", "3", *options))
    resumed = pd.read_csv(tuned / "trials.csv")
    assert list(resumed["number"]) == [0, 1, 2]
    pd.testing.assert_frame_equal(resumed.iloc[:2].drop(columns="duration_seconds"),
                                  trials.drop(columns="duration_seconds"))
    assert tree_bytes(existing) == before
    assert sorted(path.name for path in models.iterdir()) == ["small", "small-tune"]


def test_tune_bad_input_is_a_one_line_error(tmp_path):
    options = overrides(tmp_path, tmp_path)
    error = assert_user_error(cli_here("tune", str(SMALL), "--trials", "0", *options), "--trials 0")
    assert "at least 1" in error
    config = tmp_path / "typo.toml"
    config.write_text(SMALL.read_text(encoding="utf-8") + "\n[tune]\ntrails = 3\n", encoding="utf-8")
    assert_user_error(cli_here("tune", str(config), "--trials", "2", *overrides(tmp_path, tmp_path)),
                      "typo.toml", "tune.trails")
    assert not (tmp_path / "knb_blog").exists()  # nothing ran
