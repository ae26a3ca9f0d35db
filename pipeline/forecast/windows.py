"""Sliding windows, a time-ordered split, training-only scaling, baselines and error measures (NumPy only).

Notation: ``y`` is the series ``(n,)``; a forecast *of index t* uses only ``y[:t]``. The model
sees a transformed series ``z``: ``z = y`` (levels), or with ``difference`` ``z[t] = y[t] - y[t-1]``
(``z[0]`` undefined), which removes a trend such as CO2's so that the test part is not outside
the range seen in training. ``z`` is standardised with the mean and standard deviation of the
*training* part only, so nothing of validation or test leaks into the scaling.

The window for target ``t`` is ``z[t - window : t]`` ``(window,)``; the model predicts ``z[t]``;
the level forecast is ``ŷ[t] = z[t]`` or ``y[t-1] + z[t]``. Multi-step forecasts are recursive:
each prediction is appended to the window for the next step (from origin ``t``, the last known
value is ``y[t-1]``).

Baselines: persistence ``ŷ[t + h] = y[t - 1]`` and seasonal naive
``ŷ[t + h] = y[t + h - m * ceil((h + 1) / m)]`` (the value one season before, from the known part).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipeline.errors import PipelineError


@dataclass(frozen=True)
class Split:
    """Target indices of each part, in time order: ``[first, train_end)``, ``[train_end, validation_end)``, rest."""

    first: int  # the first index with a full window before it
    train_end: int
    validation_end: int
    length: int

    def targets(self, part: str) -> np.ndarray:
        bounds = {"train": (self.first, self.train_end), "validation": (self.train_end, self.validation_end),
                  "test": (self.validation_end, self.length)}[part]
        return np.arange(*bounds)


def time_split(length: int, window: int, train_fraction: float, validation_fraction: float, *,
               difference: bool = False, horizon: int = 1) -> Split:
    """Split ``length`` time steps in order; each part must hold enough targets for its use.

    Raises:
        PipelineError: the series is too short for the window, fractions and horizon.
    """
    first = window + (1 if difference else 0)
    train_end = int(math.floor(train_fraction * length))
    validation_end = train_end + int(math.floor(validation_fraction * length))
    split = Split(first, train_end, validation_end, length)
    needs = {"train": max(2, window), "validation": 2, "test": max(2, horizon)}
    for part, minimum in needs.items():
        if len(split.targets(part)) < minimum:
            raise PipelineError(
                f"the series has {length} values, leaving {len(split.targets(part))} {part} targets with "
                f"forecast.window = {window} (at least {minimum} needed); shorten forecast.window or "
                f"forecast.horizon, or change forecast.train_fraction / forecast.validation_fraction")
    return split


@dataclass(frozen=True)
class Standardiser:
    """``(z - mean) / scale`` with statistics of the training part only."""

    mean: float
    scale: float

    @classmethod
    def fit(cls, values: np.ndarray) -> Standardiser:
        scale = float(np.std(values))
        return cls(float(np.mean(values)), scale if scale > 0 else 1.0)

    def transform(self, values):
        return (np.asarray(values, dtype=np.float64) - self.mean) / self.scale

    def inverse(self, values):
        return np.asarray(values, dtype=np.float64) * self.scale + self.mean


def model_series(series: np.ndarray, difference: bool) -> np.ndarray:
    """``z``: the series itself, or its first differences with ``z[0] = nan`` (never used as input)."""
    if not difference:
        return series.astype(np.float64)
    return np.concatenate([[np.nan], np.diff(series)])


def windows(values: np.ndarray, targets: np.ndarray, window: int) -> np.ndarray:
    """The inputs ``values[t - window : t]`` for each target ``t``: ``(len(targets), window)``."""
    offsets = np.arange(-window, 0)
    return values[targets[:, None] + offsets[None, :]]


def recursive_forecast(predict: Callable[[np.ndarray], np.ndarray], scaled: np.ndarray, series: np.ndarray,
                       origins: np.ndarray, window: int, horizon: int, scaler: Standardiser,
                       difference: bool) -> np.ndarray:
    """Forecast ``horizon`` steps from every origin, feeding each prediction back as input.

    Args:
        predict: ``(batch, window)`` scaled inputs -> ``(batch,)`` scaled next values.
        scaled: the scaled model series ``(n,)``; only values before each origin are read.
        series: the original series ``y`` ``(n,)`` (the last known level for differences).
        origins: first forecast index of each path ``(paths,)``.

    Returns:
        Level forecasts ``(paths, horizon)``: row ``i`` forecasts ``y[origins[i] : origins[i] + horizon]``.
    """
    history = windows(scaled, origins, window)
    steps = np.empty((len(origins), horizon))
    for step in range(horizon):
        following = np.asarray(predict(history), dtype=np.float64).reshape(-1)
        steps[:, step] = following
        history = np.concatenate([history[:, 1:], following[:, None]], axis=1)
    values = scaler.inverse(steps)
    if difference:
        return series[origins - 1][:, None] + np.cumsum(values, axis=1)
    return values


def persistence(series: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """The last known value repeated: ``(paths, horizon)``."""
    return np.repeat(series[origins - 1][:, None], horizon, axis=1)


def seasonal_naive(series: np.ndarray, origins: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """The value one season before each forecast step, from the known part only: ``(paths, horizon)``."""
    if season < 1 or np.any(origins < season):
        raise ValueError(f"seasonal_naive needs season >= 1 and every origin >= season. Received season={season}")
    steps = np.arange(1, horizon + 1)
    lags = season * np.ceil(steps / season).astype(int)  # smallest multiple of the season >= step
    return series[origins[:, None] + steps[None, :] - 1 - lags[None, :]]


def errors(truth, prediction) -> dict[str, float]:
    """RMSE, MAE and NRMSE (RMSE / population std of ``truth``) over all values given."""
    truth = np.asarray(truth, dtype=np.float64).reshape(-1)
    prediction = np.asarray(prediction, dtype=np.float64).reshape(-1)
    if truth.shape != prediction.shape or truth.size == 0:
        raise ValueError(f"errors need equal, non-empty shapes. Received: {truth.shape} and {prediction.shape}")
    residual = truth - prediction
    rmse = float(np.sqrt(np.mean(residual ** 2)))
    spread = float(np.std(truth))
    return {"rmse": rmse, "mae": float(np.mean(np.abs(residual))),
            "nrmse": rmse / spread if spread > 0 else float("nan")}
