"""``pipeline forecast`` with ``method = "windowed"`` through the real command line (a fresh process).

The shipped config forecasts the CO2 series that statsmodels ships (no download) with an LSTM;
it must beat the persistence baseline. User errors are one ``error:`` line, exit 2, no folder.
"""

import json
import re

import pandas as pd
import pytest
from helpers import assert_success, assert_user_error, cli, cli_here

CO2_CONFIG = "configs/forecast_co2_lstm.toml"


def models_dir(root) -> list[str]:
    return ["--set", f'models_dir="{root}"']


@pytest.mark.slow
def test_lstm_beats_persistence_on_shipped_co2(tmp_path):
    result = cli_here("forecast", "--config", CO2_CONFIG, *models_dir(tmp_path))
    assert_success(result)
    assert re.search(r"^one_step: lstm beats persistence", result.stdout, re.MULTILINE), result.stdout
    run = tmp_path / "forecast_co2_lstm"
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["beats_persistence"]["one_step"] is True
    printed = float(re.search(r"^one step lstm\s+(\S+)", result.stdout, re.MULTILINE).group(1))
    assert metrics["one_step"]["model"]["rmse"] == pytest.approx(printed, rel=1e-3)
    assert set(metrics["one_step"]) == {"model", "persistence", "seasonal_naive"}
    assert metrics["config"]["kind"] == "lstm" and metrics["config"]["dataset"] == "co2"
    predictions = pd.read_csv(run / "predictions.csv")
    assert list(predictions.columns) == ["index", "truth", "model", "persistence", "seasonal_naive"]
    assert len(predictions) == metrics["test_targets"]
    assert (run / "forecast.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run / "history.csv").is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["forecast_co2_lstm"]  # no temporary leftovers


# Config errors, caught before TensorFlow is imported (an unknown kind and a too-long window are
# checked the same way before the run folder is opened; tests/forecast/test_windowed.py covers their messages).
@pytest.mark.parametrize("settings, fragments", [
    (['forecast.method="reservoir"'], ["'forecast.kind'", "method = \"windowed\""]),
    (['forecast.dataset="co3"'], ["'forecast.dataset'", "'co3'"]),
], ids=["kind-needs-windowed", "unknown-dataset"])
def test_user_errors_are_one_line_and_write_nothing(tmp_path, settings, fragments):
    arguments = [item for setting in settings for item in ("--set", setting)]
    result = cli("forecast", "--config", CO2_CONFIG, *arguments, *models_dir(tmp_path / "models"))
    assert_user_error(result, *fragments)
    assert not (tmp_path / "models").exists()
