"""How the pipeline draws with matplotlib, and the plots every task shares: training curves, confusion matrix.

Tasks and tools keep their own figures next to their code (``forecast/plots.py``,
``seq2seq/plots.py``, ``tools/*/``) and draw them through :func:`pyplot` and :func:`save`.

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


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display; chosen here, not at import
    import matplotlib.pyplot as plt
    import matplotlib_fontja  # noqa: F401  (importing it registers its IPAexGothic font)

    # Set once, on first use: Japanese labels (京都, テスト) would otherwise be empty boxes.
    plt.rcParams["font.family"] = list(JAPANESE_FONT_FAMILY)
    return plt


def save(figure: Any, path: str | os.PathLike) -> None:
    try:
        save_figure(figure, path)
    finally:
        pyplot().close(figure)


def plot_confusion(matrix: np.ndarray, labels: list[str], path: Path) -> None:
    """``matrix[i, j]``: test examples of true class i predicted as j, as a heat map with counts."""
    plt = pyplot()
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
    save(figure, path)


def plot_history(history: pd.DataFrame, path: Path) -> None:
    """One panel per metric (loss, accuracy, ...), training and validation curves by epoch; with a ``member``
    column (a language model of ``model.members``), each member's curves of its own epochs."""
    plt = pyplot()
    metrics = [c for c in history.columns
               if c not in ("epoch", "learning_rate", "member") and not c.startswith("val_")]
    figure, axes = plt.subplots(1, max(1, len(metrics)), figsize=(5 * max(1, len(metrics)), 3.5), squeeze=False)
    groups = list(history.groupby("member", sort=True)) if "member" in history else [(None, history)]
    for axis, metric in zip(axes[0], metrics):
        for member, rows in groups:
            epochs = np.arange(1, len(rows) + 1)
            own = "" if member is None else f" (member {int(member) + 1})"
            axis.plot(epochs, rows[metric], marker="o", label="train" + own)
            if f"val_{metric}" in rows:
                axis.plot(epochs, rows[f"val_{metric}"], marker="o", label="validation" + own)
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.legend()
    save(figure, path)
