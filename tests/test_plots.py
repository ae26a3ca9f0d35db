"""Tests of ``pipeline.plots``: every figure is written as a PNG, atomically."""

import numpy as np
import pandas as pd

from pipeline.plots import plot_confusion, plot_history


def test_plots_are_written(tmp_path):
    plot_confusion(np.array([[2, 1], [0, 3]]), ["京都", "携帯"], tmp_path / "confusion.png")
    history = pd.DataFrame({"epoch": [0, 1], "loss": [1.0, 0.5], "val_loss": [1.1, 0.7],
                            "accuracy": [0.5, 0.8], "val_accuracy": [0.4, 0.7], "learning_rate": [1e-3, 1e-3]})
    plot_history(history, tmp_path / "curves.png")
    for name in ("confusion.png", "curves.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion.png", "curves.png"]


def test_japanese_labels_find_a_font_with_their_glyphs(tmp_path):
    """The configured family resolves to IPAexGothic (not DejaVu), and drawing 日本語 warns of no missing glyph."""
    import warnings

    from matplotlib import font_manager

    from pipeline.plots import pyplot, save

    plt = pyplot()
    font_path = font_manager.findfont(font_manager.FontProperties(family=plt.rcParams["font.family"]))
    assert "ipaexg" in font_path.lower() and "dejavu" not in font_path.lower()
    figure, axes = plt.subplots(figsize=(3, 2))
    axes.set_title("日本語のラベル テスト 試験 −1")
    axes.set_xlabel("京都・携帯")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph 26085 (\N{CJK UNIFIED IDEOGRAPH-65E5}) missing from font(s) ..."
        save(figure, tmp_path / "japanese.png")
    assert (tmp_path / "japanese.png").read_bytes()[:4] == b"\x89PNG"
