"""``pipeline lsm`` through the real CLI, on a small liquid and short tasks; and a config error."""

import json

import pytest
from helpers import assert_success, assert_user_error, cli_here

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

SMALL = ["lsm.units=40", "lsm.train_patterns=48", "lsm.test_patterns=32", "lsm.pattern_duration=100.0",
         "lsm.jitter=4.0", "lsm.train_length=200", "lsm.test_length=60", "lsm.washout=20",
         "lsm.steps_per_value=5"]


def overrides(*settings: str) -> list[str]:
    return [argument for setting in settings for argument in ("--set", setting)]


@pytest.mark.slow
def test_lsm_prints_and_writes_metrics_and_raster(tmp_path):
    result = cli_here("lsm", "--config", "configs/lsm.toml", *overrides(*SMALL, f'models_dir="{tmp_path}"'))
    assert_success(result)
    run = tmp_path / "lsm"
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    patterns, series = metrics["patterns"], metrics["mackey_glass"]
    for key in ("lsm_accuracy", "esn_accuracy", "spike_count_accuracy", "majority_class_accuracy"):
        assert 0.0 <= patterns[key] <= 1.0
    assert patterns["lsm_accuracy"] > 2 * patterns["majority_class_accuracy"]  # timing is learnt
    assert patterns["lsm_mean_rate_hz"] > 0
    for key in ("lsm_nrmse", "esn_nrmse", "persistence_nrmse"):
        assert series[key] > 0
    assert series["esn_nrmse"] < series["persistence_nrmse"]
    assert metrics["config"]["units"] == 40 and metrics["seed"] == 0
    assert (run / "raster.png").read_bytes()[:8] == PNG_SIGNATURE
    assert f"lsm: {patterns['lsm_accuracy']:.3f}" in result.stdout
    assert f"persistence: {series['persistence_nrmse']:.4f}" in result.stdout


def test_lsm_config_error_names_the_key(tmp_path):
    result = cli_here("lsm", "--config", "configs/lsm.toml", *overrides("lsm.washout=5000", f'models_dir="{tmp_path}"'))
    assert_user_error(result, "lsm.washout")
    assert not (tmp_path / "lsm").exists()
