"""The spike raster of ``pipeline lsm``."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from pipeline.plots import pyplot, save


def plot_spike_raster(raster: dict[str, Any], path: str | os.PathLike) -> None:
    """Input spike trains above the liquid's spikes for one pattern (``pipeline lsm``).

    ``raster``: ``input`` ``(timesteps, channels)`` and ``spikes`` ``(timesteps, units)`` in {0, 1},
    ``excitatory`` ``(units,)`` bool, ``dt`` (ms) and ``label``; excitatory neurons in blue, inhibitory in red.
    """
    plt = pyplot()
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
    save(figure, path)
