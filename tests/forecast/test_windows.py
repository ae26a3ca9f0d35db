"""Tests of the windowing, time split, training-only scaling, baselines and error measures (NumPy only)."""

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.forecast import windows as W


def test_time_split_is_in_order_and_checks_lengths():
    split = W.time_split(100, window=10, train_fraction=0.7, validation_fraction=0.15)
    assert (split.first, split.train_end, split.validation_end, split.length) == (10, 70, 85, 100)
    np.testing.assert_array_equal(split.targets("test"), np.arange(85, 100))
    assert W.time_split(100, 10, 0.7, 0.15, difference=True).first == 11  # z[0] is undefined
    with pytest.raises(PipelineError, match=r"leaving 1 test targets .*forecast.window = 10") as raised:
        W.time_split(100, 10, 0.9, 0.09)
    assert "\n" not in str(raised.value)
    with pytest.raises(PipelineError, match="forecast.horizon"):
        W.time_split(100, 10, 0.7, 0.15, horizon=20)


def test_windows_and_scaling_use_only_the_past_and_the_training_part():
    values = np.arange(10.0)
    np.testing.assert_array_equal(W.windows(values, np.array([3, 7]), 3), [[0, 1, 2], [4, 5, 6]])
    series = np.concatenate([np.zeros(5), np.full(5, 100.0)])
    scaler = W.Standardiser.fit(series[:4])  # a constant training part: scale 1, never a division by 0
    assert (scaler.mean, scaler.scale) == (0.0, 1.0)
    scaler = W.Standardiser.fit(np.array([1.0, 3.0]))
    np.testing.assert_allclose(scaler.transform([1.0, 3.0, 5.0]), [-1, 1, 3])
    np.testing.assert_allclose(scaler.inverse(scaler.transform([2.5, 7.0])), [2.5, 7.0])
    z = W.model_series(np.array([1.0, 4.0, 9.0]), difference=True)
    assert np.isnan(z[0]) and list(z[1:]) == [3.0, 5.0]


def test_baselines_use_the_known_part_only():
    series = np.arange(30.0)
    origins = np.array([20, 25])
    np.testing.assert_array_equal(W.persistence(series, origins, 3), [[19, 19, 19], [24, 24, 24]])
    # season 4, horizon 6: steps 1-4 repeat y[t-4 : t], steps 5-6 repeat y[t-4 : t-2] again
    np.testing.assert_array_equal(W.seasonal_naive(series, origins, 6, 4)[0], [16, 17, 18, 19, 16, 17])
    np.testing.assert_array_equal(W.seasonal_naive(series, origins, 1, 1), W.persistence(series, origins, 1))
    with pytest.raises(ValueError, match="season"):
        W.seasonal_naive(series, np.array([2]), 1, 4)


@pytest.mark.parametrize("difference", [False, True])
def test_recursive_forecast_feeds_predictions_back(difference):
    """An exact linear predictor of a line reproduces it; with differences the levels are rebuilt by summing."""
    series = 2.0 * np.arange(40.0) + 5.0
    z = W.model_series(series, difference)
    scaler = W.Standardiser.fit(z[1:30] if difference else z[:30])
    scaled = scaler.transform(z)
    if difference:
        def predict(batch):  # differences are constant: the next one is the last one
            return batch[:, -1]
    else:
        def predict(batch):  # a line: next = 2 * last - second last (in scaled units too)
            return 2 * batch[:, -1] - batch[:, -2]
    origins = np.array([30, 33])
    forecast = W.recursive_forecast(predict, scaled, series, origins, 3, 5, scaler, difference)
    np.testing.assert_allclose(forecast, series[origins[:, None] + np.arange(5)], atol=1e-9)
    # The predictor sees only values before the origin: corrupting the future changes nothing.
    future_corrupted = scaled.copy()
    future_corrupted[30:] = 1e6
    np.testing.assert_allclose(W.recursive_forecast(predict, future_corrupted, series, origins[:1], 3, 5, scaler,
                                                    difference), forecast[:1], atol=1e-9)


def test_errors():
    truth, prediction = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 1.5, 3.5, 3.5])
    result = W.errors(truth, prediction)
    assert result["rmse"] == pytest.approx(0.5) and result["mae"] == pytest.approx(0.5)
    assert result["nrmse"] == pytest.approx(0.5 / np.std(truth))
    with pytest.raises(ValueError, match="equal"):
        W.errors(truth, prediction[:2])
