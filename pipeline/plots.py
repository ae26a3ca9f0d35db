"""The one place that draws with matplotlib: training curves, confusion matrix, forecasts, gradient norms,
glyph bitmaps and Hopfield recall steps.

matplotlib is imported on first use (not at import time) with the ``Agg``
backend, so no display is needed; every figure is written atomically as PNG.
Japanese text renders in IPAexGothic (the font ``matplotlib-fontja`` ships), set on that first use.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.io import save_figure


# IPAexGothic ships inside matplotlib-fontja; DejaVu Sans (matplotlib's own) covers what it lacks.
JAPANESE_FONT_FAMILY = ("IPAexGothic", "DejaVu Sans")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display; chosen here, not at import
    import matplotlib.pyplot as plt
    import matplotlib_fontja  # noqa: F401  (importing it registers its IPAexGothic font)

    # Set once, on first use: Japanese labels (京都, テスト) would otherwise be empty boxes.
    plt.rcParams["font.family"] = list(JAPANESE_FONT_FAMILY)
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


def plot_window_forecast(result: dict[str, Any], path: str | os.PathLike, title: str = "") -> None:
    """Test part of a windowed forecast (``pipeline.forecast.windowed``): truth vs model and baselines.

    Top: one step ahead. Bottom: recursive ``horizon``-step paths from non-overlapping origins.
    """
    plt = _pyplot()
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


def render_glyphs(characters: str, size: int = 16, stroke_width: float = 0.15) -> np.ndarray:
    """Each character drawn in the Japanese font as a ``(size, size)`` image of ±1 (+1: ink).

    Drawn at 4x resolution on a one-inch canvas, averaged over 4x4 blocks and thresholded
    at half ink. ``stroke_width`` (a fraction of the glyph box) thickens the strokes: more
    ink means less overlap between glyphs, which Hebb's rule needs. Returns ``(len, size, size)``.
    """
    from matplotlib import patheffects
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    plt = _pyplot()
    oversample = 4
    glyphs = []
    for character in characters:
        figure = Figure(figsize=(1, 1), dpi=size * oversample)
        canvas = FigureCanvasAgg(figure)
        text = figure.text(0.5, 0.5, character, ha="center", va="center_baseline", fontsize=0.95 * 72,
                           family=list(plt.rcParams["font.family"]))
        if stroke_width > 0:  # an outline of that width (in points; the canvas is 72 points wide)
            text.set_path_effects([patheffects.withStroke(linewidth=stroke_width * 72, foreground="black")])
        canvas.draw()
        lightness = np.asarray(canvas.buffer_rgba())[..., :3].mean(axis=-1) / 255.0
        ink = 1.0 - lightness.reshape(size, oversample, size, oversample).mean(axis=(1, 3))
        glyphs.append(np.where(ink > 0.5, 1.0, -1.0))
    return np.array(glyphs).reshape(len(characters), size, size)


def plot_hopfield_recall(states: list[np.ndarray], target: np.ndarray, titles: list[str],
                         path: str | os.PathLike) -> None:
    """One panel per state ``(size, size)`` of ±1 (ink black): the stored pattern, the cue, each step."""
    plt = _pyplot()
    panels = [target, *states]
    figure, axes = plt.subplots(1, len(panels), figsize=(1.6 * len(panels), 2.0), squeeze=False)
    for axis, image, title in zip(axes[0], panels, ["stored", *titles]):
        axis.imshow(image, cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
        axis.set_title(title, fontsize="small")
        axis.set_xticks([])
        axis.set_yticks([])
    figure.tight_layout()
    _save(figure, path)


def plot_attention(alpha: np.ndarray, source: list[str], output: list[str], path: str | os.PathLike) -> None:
    """Encoder–decoder attention ``alpha`` ``(output characters [+ </s>], source characters)`` as a heat map.

    Rows are the characters the decoder wrote (top to bottom), columns the sentence it read; a
    bright cell says where it looked while writing that character (the reading model's ``--plot``).
    """
    plt = _pyplot()
    rows = list(output) + ["</s>"] * (alpha.shape[0] - len(output))
    figure, axes = plt.subplots(figsize=(0.35 * len(source) + 2, 0.3 * len(rows) + 1.5))
    image = axes.imshow(alpha, cmap="viridis", aspect="auto", vmin=0.0, vmax=max(1e-6, float(alpha.max())))
    axes.set_xticks(range(len(source)), source)
    axes.set_yticks(range(len(rows)), rows)
    axes.xaxis.tick_top()
    axes.set_xlabel("input characters")
    axes.set_ylabel("output (reading)")
    figure.colorbar(image, ax=axes, fraction=0.03, pad=0.02)
    _save(figure, path)


def plot_spike_raster(raster: dict[str, Any], path: str | os.PathLike) -> None:
    """Input spike trains above the liquid's spikes for one pattern (``pipeline lsm``).

    ``raster``: ``input`` ``(timesteps, channels)`` and ``spikes`` ``(timesteps, units)`` in {0, 1},
    ``excitatory`` ``(units,)`` bool, ``dt`` (ms) and ``label``; excitatory neurons in blue, inhibitory in red.
    """
    plt = _pyplot()
    figure, (input_axis, liquid_axis) = plt.subplots(
        2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [1, 4]})
    for axis, spikes, colors in ((input_axis, raster["input"], None), (liquid_axis, raster["spikes"],
                                 np.where(raster["excitatory"], "tab:blue", "tab:red"))):
        steps, neurons = np.nonzero(spikes)
        axis.scatter(steps * raster["dt"], neurons, s=2, marker="|",
                     c="black" if colors is None else colors[neurons])
    input_axis.set_ylabel("input channel")
    input_axis.set_title(f"one test pattern (class {raster['label']}) and the liquid's spikes")
    liquid_axis.set_ylabel("neuron (blue: excitatory, red: inhibitory)")
    liquid_axis.set_xlabel("time (ms)")
    figure.tight_layout()
    _save(figure, path)
