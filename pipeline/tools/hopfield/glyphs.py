"""Glyph bitmaps drawn in the Japanese font, and the recall steps of ``pipeline hopfield``."""

from __future__ import annotations

import os

import numpy as np

from pipeline.plots import pyplot, save


def render_glyphs(characters: str, size: int = 16, stroke_width: float = 0.15) -> np.ndarray:
    """Each character drawn in the Japanese font as a ``(size, size)`` image of ±1 (+1: ink).

    Drawn at 4x resolution on a one-inch canvas, averaged over 4x4 blocks and thresholded
    at half ink. ``stroke_width`` (a fraction of the glyph box) thickens the strokes: more
    ink means less overlap between glyphs, which Hebb's rule needs. Returns ``(len, size, size)``.
    """
    from matplotlib import patheffects
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    plt = pyplot()
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
    plt = pyplot()
    panels = [target, *states]
    figure, axes = plt.subplots(1, len(panels), figsize=(1.6 * len(panels), 2.0), squeeze=False)
    for axis, image, title in zip(axes[0], panels, ["stored", *titles]):
        axis.imshow(image, cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
        axis.set_title(title, fontsize="small")
        axis.set_xticks([])
        axis.set_yticks([])
    figure.tight_layout()
    save(figure, path)
