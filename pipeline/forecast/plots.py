"""The forecast figures: the series, the model's and the baselines' predictions."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from pipeline.plots import pyplot, save


def plot_forecast(result: dict[str, Any], path: str | os.PathLike) -> None:
    """Target vs prediction for both modes of a ``forecast`` result (one step ahead, generative)."""
    plt = pyplot()
    metrics = result["metrics"]
    figure, (one_step_axis, generative_axis) = plt.subplots(2, 1, figsize=(10, 6), sharex=False)
    panels = ((one_step_axis, "one_step", "one step ahead"), (generative_axis, "generative", "generative"))
    for axis, key, title in panels:
        axis.plot(result[f"{key}_target"], label="target", linewidth=1.5)
        axis.plot(result[f"{key}_prediction"], label="ESN", linewidth=1.0, linestyle="--")
        axis.set_title(f"{title}: NRMSE = {metrics[f'{key}_nrmse']:.3g}")
        axis.set_xlabel("step after training")
        axis.legend(loc="upper right")
    figure.tight_layout()
    save(figure, path)

def plot_window_forecast(result: dict[str, Any], path: str | os.PathLike, title: str = "") -> None:
    """Test part of a windowed forecast (``pipeline.forecast.windowed``): truth vs model and baselines.

    Top: one step ahead. Bottom: recursive ``horizon``-step paths from non-overlapping origins.
    """
    plt = pyplot()
    metrics, one_step, multi_step = result["metrics"], result["one_step"], result["multi_step"]
    figure, (one_axis, multi_axis) = plt.subplots(2, 1, figsize=(10, 7))
    index = result["test_index"]
    styles = {"model": ("-", 1.4), "persistence": (":", 1.0), "seasonal_naive": ("-.", 1.0)}
    one_axis.plot(index, one_step["truth"], color="black", linewidth=1.8, label="truth")
    for name, (style, width) in styles.items():
        rmse = metrics["one_step"][name]["rmse"]
        label = f"{result['kind'] if name == 'model' else name} (RMSE {rmse:.3g})"
        one_axis.plot(index, one_step[name], style, linewidth=width, label=label)
    one_axis.set_title(f"{title}one step ahead (test part)")
    horizon = multi_step["truth"].shape[1]
    multi_axis.plot(index, one_step["truth"], color="black", linewidth=1.8, label="truth")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for path_number, row in enumerate(range(0, len(multi_step["origins"]), horizon)):
        steps = multi_step["origins"][row] + np.arange(horizon)
        for position, (name, (style, width)) in enumerate(styles.items()):
            rmse = metrics["multi_step"][name]["rmse"]
            label = f"{result['kind'] if name == 'model' else name} (RMSE {rmse:.3g})" if path_number == 0 else None
            multi_axis.plot(steps, multi_step[name][row], style, color=colors[position], linewidth=width, label=label)
    multi_axis.set_title(f"{title}{horizon}-step recursive forecasts (RMSE over every origin)")
    for axis in (one_axis, multi_axis):
        axis.set_xlabel("time index")
        axis.legend(fontsize="small", loc="best")
    figure.tight_layout()
    save(figure, path)
