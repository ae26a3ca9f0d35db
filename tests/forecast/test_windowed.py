"""Windowed forecasting with registry kinds: the ESN ridge path, trained kinds, baselines, errors."""

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.forecast.plots import plot_window_forecast
from pipeline.forecast.windowed import check_kind, forecast_windowed


def noisy_sine(length: int = 300, period: float = 12.0, trend: float = 0.0) -> np.ndarray:
    steps = np.arange(length)
    noise = np.random.default_rng(0).normal(0, 0.05, length)
    return np.sin(2 * np.pi * steps / period) + trend * steps + noise


def test_esn_ridge_readout_beats_both_baselines_and_is_deterministic(tmp_path):
    series = noisy_sine()
    options = dict(kind="esn", window=24, horizon=6, season=12, layer_options={"units": 50, "spectral_radius": 0.9},
                   seed=3)
    result = forecast_windowed(series, **options)
    metrics = result["metrics"]
    assert metrics["beats_persistence"] == {"one_step": True, "multi_step": True}
    assert metrics["one_step"]["model"]["rmse"] < 0.5 * metrics["one_step"]["persistence"]["rmse"]
    assert metrics["epochs_run"] == 0  # closed form, no gradient descent
    # Shapes: test targets 255..299 (the last 15%); multi-step origins leave room for the horizon.
    np.testing.assert_array_equal(result["test_index"], np.arange(255, 300))
    assert result["multi_step"]["model"].shape == (40, 6)
    np.testing.assert_array_equal(result["one_step"]["truth"], series[255:])
    np.testing.assert_array_equal(result["one_step"]["persistence"], series[254:299])
    np.testing.assert_array_equal(result["one_step"]["seasonal_naive"], series[243:288])
    # The first recursive step is the one-step forecast.
    np.testing.assert_allclose(result["multi_step"]["model"][:, 0], result["one_step"]["model"][:40], atol=1e-9)
    np.testing.assert_array_equal(forecast_windowed(series, **options)["one_step"]["model"],
                                  result["one_step"]["model"])
    plot_window_forecast(result, tmp_path / "forecast.png", title="sine: ")
    assert (tmp_path / "forecast.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lstm_with_differences_follows_a_trend_beyond_the_training_range(tmp_path):
    """A rising series leaves the training range; modelling differences still beats persistence."""
    series = noisy_sine(length=200, trend=0.05)
    assert series[170:].min() > series[:140].max() - 1.5  # the test part sits well above most training values
    result = forecast_windowed(series, kind="lstm", window=12, horizon=6, season=12, difference=True, epochs=15,
                               patience=5, learning_rate=1e-2, layer_options={"units": 16}, seed=0,
                               folder=tmp_path)
    metrics = result["metrics"]
    assert metrics["beats_persistence"]["one_step"] and metrics["beats_persistence"]["multi_step"]
    assert 1 <= metrics["epochs_run"] <= 15
    assert (tmp_path / "history.csv").is_file()  # written by pipeline.training.callbacks


@pytest.mark.parametrize("kind", ["gru", "elman"])
def test_every_trained_kind_runs_and_returns_finite_forecasts(kind):
    result = forecast_windowed(noisy_sine(length=120), kind=kind, window=8, horizon=3, season=12, epochs=1,
                               layer_options={"units": 4, "leak_rate": 0.5}, seed=0)  # leak_rate: not an rnn option
    assert result["kind"] == kind and result["metrics"]["epochs_run"] == 1
    assert np.all(np.isfinite(result["multi_step"]["model"]))


def test_unknown_kind_and_short_series_are_user_errors():
    with pytest.raises(PipelineError, match=r"'forecast.kind' = 'lstn'.*did you mean 'lstm'"):
        check_kind("lstn")
    with pytest.raises(PipelineError, match="forecast.window"):
        forecast_windowed(np.arange(30.0), kind="esn", window=24)
    with pytest.raises(PipelineError, match="forecast.season"):
        forecast_windowed(noisy_sine(length=60), kind="esn", window=4, horizon=2, season=60)
