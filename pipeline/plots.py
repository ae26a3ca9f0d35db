"""The one place that draws with matplotlib: training curves, confusion matrix, forecasts, gradient norms.

matplotlib is imported on first use (not at import time) with the ``Agg``
backend, so no display is needed; every figure is written atomically as PNG.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.io import save_figure


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display; chosen here, not at import
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: str | os.PathLike) -> None:
    try:
        save_figure(figure, path)
    finally:
        _pyplot().close(figure)


def plot_confusion(matrix: np.ndarray, labels: list[str], path: Path) -> None:
    """``matrix[i, j]``: test examples of true class i predicted as j, as a heat map with counts."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(1.2 * len(labels) + 2, 1.2 * len(labels) + 1.5))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for (row, column), count in np.ndenumerate(matrix):
        axes.text(column, row, str(count), ha="center", va="center",
                  color="white" if count > matrix.max() / 2 else "black")
    axes.set_title("confusion matrix (test split)")
    _save(figure, path)


def plot_history(history: pd.DataFrame, path: Path) -> None:
    """One panel per metric (loss, accuracy, ...), training and validation curves by epoch."""
    plt = _pyplot()
    metrics = [c for c in history.columns if c != "epoch" and not c.startswith("val_") and c != "learning_rate"]
    figure, axes = plt.subplots(1, max(1, len(metrics)), figsize=(5 * max(1, len(metrics)), 3.5), squeeze=False)
    epochs = np.arange(1, len(history) + 1)
    for axis, metric in zip(axes[0], metrics):
        axis.plot(epochs, history[metric], marker="o", label="train")
        if f"val_{metric}" in history:
            axis.plot(epochs, history[f"val_{metric}"], marker="o", label="validation")
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.legend()
    _save(figure, path)


def plot_forecast(result: dict[str, Any], path: str | os.PathLike) -> None:
    """Target vs prediction for both modes of a ``forecast`` result (one step ahead, generative)."""
    plt = _pyplot()
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
    _save(figure, path)


def plot_gradient_norms(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Mean ||dL/dh_t|| by distance from the loss, one curve per architecture and phase (log scale)."""
    plt = _pyplot()
    line_styles = {"initial": "-", "trained": "--", "trained_clipped": ":"}
    figure, axes = plt.subplots(figsize=(7, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (architecture, rows) in enumerate(table.groupby("architecture", sort=False)):
        for phase, phase_rows in rows.groupby("phase", sort=False):
            label = architecture if phase == "initial" else f"{architecture} ({phase.replace('_', ', ')})"
            axes.plot(
                phase_rows["distance_from_loss"], phase_rows["grad_norm"],
                line_styles.get(phase, "-"), color=colors[index % len(colors)], label=label,
                linewidth=max(0.8, 3.0 - 0.6 * index),  # wider first: coinciding curves stay visible
            )
    axes.set_yscale("log")
    axes.set_xlabel("distance from the loss (time steps)")
    axes.set_ylabel("mean ||dL/dh_t||")
    axes.set_title("Gradient reaching the hidden state, by distance from the loss")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    _save(figure, path)
