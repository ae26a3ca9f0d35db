"""The attention heat map of a reading (``pipeline read --plot``, evaluate)."""

from __future__ import annotations

import os

import numpy as np

from pipeline.plots import pyplot, save


def plot_attention(alpha: np.ndarray, source: list[str], output: list[str], path: str | os.PathLike) -> None:
    """Encoder–decoder attention ``alpha`` ``(output characters [+ </s>], source characters)`` as a heat map.

    Rows are the characters the decoder wrote (top to bottom), columns the sentence it read; a
    bright cell says where it looked while writing that character (the reading model's ``--plot``).
    """
    plt = pyplot()
    rows = list(output) + ["</s>"] * (alpha.shape[0] - len(output))
    figure, axes = plt.subplots(figsize=(0.35 * len(source) + 2, 0.3 * len(rows) + 1.5))
    image = axes.imshow(alpha, cmap="viridis", aspect="auto", vmin=0.0, vmax=max(1e-6, float(alpha.max())))
    axes.set_xticks(range(len(source)), source)
    axes.set_yticks(range(len(rows)), rows)
    axes.xaxis.tick_top()
    axes.set_xlabel("input characters")
    axes.set_ylabel("output (reading)")
    figure.colorbar(image, ax=axes, fraction=0.03, pad=0.02)
    save(figure, path)
