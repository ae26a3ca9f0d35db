"""What ``pipeline forecast`` does with a ``[forecast]`` section: pick the series, run, write the run folder.

The CLI parses arguments and prints; this module loads the series (generated, CSV or shipped),
runs the windowed forecaster and writes ``metrics.json``, ``predictions.csv`` (test part,
one step ahead), ``history.csv`` (trained kinds) and ``forecast.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.forecast.sections import ForecastConfig

FORECASTERS = ("model", "persistence", "seasonal_naive")


def load_series(settings: ForecastConfig) -> np.ndarray:
    """The series the config names: ``(n,)`` float64 (the CSV column, the shipped data set or Mackey-Glass)."""
    from pipeline.forecast import timeseries

    if settings.series == "csv":
        return timeseries.read_series_csv(Path(settings.csv_path), settings.column)
    if settings.series == "dataset":
        from pipeline.forecast.datasets import load_dataset

        return load_dataset(settings.dataset)
    return timeseries.mackey_glass(settings.n_steps, tau=settings.tau)


def check_windowed(settings: ForecastConfig) -> np.ndarray:
    """Check the kind and the series' length for the windows before anything is written; the series."""
    from pipeline.forecast.windowed import check_kind
    from pipeline.forecast.windows import time_split

    check_kind(settings.kind)
    series = load_series(settings)
    time_split(series.size, settings.window, settings.train_fraction, settings.validation_fraction,
               difference=settings.difference, horizon=settings.horizon)
    return series


def run_windowed(settings: ForecastConfig, series: np.ndarray, seed: int, folder: Path,
                 config: dict[str, Any]) -> dict[str, Any]:
    """Forecast ``series`` with ``settings.kind`` over sliding windows; write every artifact into ``folder``.

    ``folder`` is the run folder under construction (:func:`pipeline.workarea.new_run`).
    """
    import pandas as pd

    from pipeline import io as artifact_io
    from pipeline.forecast.plots import plot_window_forecast
    from pipeline.forecast.windowed import LAYER_OPTIONS, forecast_windowed

    result = forecast_windowed(
        series, kind=settings.kind, window=settings.window, horizon=settings.horizon, season=settings.season,
        train_fraction=settings.train_fraction, validation_fraction=settings.validation_fraction,
        difference=settings.difference, epochs=settings.epochs, batch_size=settings.batch_size,
        learning_rate=settings.learning_rate, patience=settings.patience, clipnorm=settings.clipnorm,
        ridge=settings.ridge, layer_options={key: getattr(settings, key) for key in LAYER_OPTIONS}, seed=seed,
        folder=folder)
    artifact_io.write_json(folder / "metrics.json", {**result["metrics"], "config": config})
    table = pd.DataFrame({"index": result["test_index"], "truth": result["one_step"]["truth"],
                          **{name: result["one_step"][name] for name in FORECASTERS}})
    artifact_io.write_text(folder / "predictions.csv", table.to_csv(index=False, float_format="%.6g"))
    name = settings.dataset if settings.series == "dataset" else settings.series
    plot_window_forecast(result, folder / "forecast.png", title=f"{name}, {settings.kind}: ")
    return result


def summary_lines(result: dict[str, Any]) -> list[str]:
    """The table ``pipeline forecast`` prints: RMSE / MAE / NRMSE of model and baselines, both modes."""
    metrics = result["metrics"]
    lines = [f"{'':<38}{'RMSE':>10}{'MAE':>10}{'NRMSE':>10}"]
    for mode, label in (("one_step", "one step"), ("multi_step", f"{metrics['horizon']} steps (recursive)")):
        for name in FORECASTERS:
            values = metrics[mode][name]
            shown = result["kind"] if name == "model" else name
            lines.append(f"{label + ' ' + shown:<38}{values['rmse']:>10.4g}{values['mae']:>10.4g}"
                         f"{values['nrmse']:>10.4g}")
    for mode in ("one_step", "multi_step"):
        verdict = "beats" if metrics["beats_persistence"][mode] else "does not beat"
        lines.append(f"{mode}: {result['kind']} {verdict} persistence (RMSE "
                     f"{metrics[mode]['model']['rmse']:.4g} vs {metrics[mode]['persistence']['rmse']:.4g})")
    return lines
