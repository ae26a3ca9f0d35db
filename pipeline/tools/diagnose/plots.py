"""The gradient-norm figure of ``pipeline diagnose gradients``."""

from __future__ import annotations

import os

import pandas as pd

from pipeline.plots import pyplot, save


def plot_gradient_norms(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Mean ||dL/dh_t|| by distance from the loss, one curve per architecture and phase (log scale)."""
    plt = pyplot()
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
    save(figure, path)
