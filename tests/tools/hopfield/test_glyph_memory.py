"""Tests of ``pipeline.tools.hopfield.glyph_memory`` and its glyph bitmaps (``glyphs``): store kana, recall one."""

import numpy as np

from pipeline import config as config_module
from pipeline.tools.hopfield.glyph_memory import capacity, recall_glyph
from pipeline.tools.hopfield.glyphs import render_glyphs


def hopfield_config(data: dict):
    """A config for ``pipeline hopfield`` (its owner), from parsed TOML."""
    return config_module.from_dict(data, owner="hopfield")


def test_glyphs_are_distinct_pm1_bitmaps_with_ink():
    glyphs = render_glyphs("カナ", size=16, stroke_width=0.06)
    assert glyphs.shape == (2, 16, 16)
    assert set(np.unique(glyphs)) == {-1.0, 1.0}
    assert 0.1 < (glyphs > 0).mean() < 0.5  # ink, not a blank box (a missing glyph) nor a filled one
    assert not np.array_equal(glyphs[0], glyphs[1])


def test_a_half_corrupted_glyph_is_recalled_and_the_steps_are_drawn(tmp_path):
    config = hopfield_config({"seed": 0, "hopfield": {"characters": "カナ", "cue_character": "ナ"}})
    result = recall_glyph(config, tmp_path)
    first, last = result["steps"][0], result["steps"][-1]
    assert first["overlaps"]["ナ"] < 0.8 and last["overlaps"]["ナ"] == 1.0
    assert result["recalled"] == "ナ" and not result["cycle"]
    energies = [step["energy"] for step in result["steps"]]
    assert energies == sorted(energies, reverse=True)
    assert (tmp_path / "hopfield_recall.png").read_bytes()[:4] == b"\x89PNG"


def test_correlated_glyphs_need_the_projection_rule(tmp_path):
    """Five kana overlap too much for Hebb's rule (a mixture state); the projection rule recalls the glyph."""
    settings = {"characters": "アイウエオ", "cue_character": "ア"}
    hebbian = recall_glyph(hopfield_config({"seed": 0, "hopfield": settings}), tmp_path)
    projection = recall_glyph(hopfield_config({"seed": 0, "hopfield": {**settings, "rule": "projection"}}),
                              tmp_path)
    assert hebbian["final_overlap"] < 0.9
    assert projection["final_overlap"] == 1.0


def test_capacity_follows_the_config():
    config = hopfield_config({"hopfield": {"capacity_units": 60, "capacity_max_load": 0.1,
                                           "capacity_load_step": 0.05, "capacity_trials": 2}})
    result = capacity(config)
    assert result["units"] == 60 and result["loads"] == [0.05, 0.1]
    assert result["capacity"] == 0.1  # both loads are far below 0.138
