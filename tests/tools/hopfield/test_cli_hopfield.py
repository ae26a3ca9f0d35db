"""End to end: ``pipeline hopfield`` through the real CLI."""

import json

from helpers import assert_success, assert_user_error, cli_here

SMALL_CAPACITY = ["--set", "hopfield.capacity_units=100", "--set", "hopfield.capacity_trials=6",
                  "--set", "hopfield.capacity_max_load=0.2"]


def test_hopfield_recalls_a_glyph_and_measures_the_capacity(tmp_path):
    result = cli_here("hopfield", "--set", f'models_dir="{tmp_path}"', "--capacity", *SMALL_CAPACITY)
    assert_success(result)
    assert "m(カ)" in result.stdout and "recalled カ (m = 1.000)" in result.stdout
    assert "capacity: P/N = " in result.stdout
    written = json.loads((tmp_path / "hopfield" / "hopfield.json").read_text(encoding="utf-8"))
    assert 0.10 <= written["capacity"]["capacity"] <= 0.18
    assert (tmp_path / "hopfield" / "hopfield_recall.png").read_bytes()[:4] == b"\x89PNG"


def test_hopfield_json_and_a_synchronous_run(tmp_path):
    result = cli_here("hopfield", "--json", "--set", f'models_dir="{tmp_path}"',
                      "--set", 'hopfield.update="synchronous"')
    assert_success(result)
    printed = json.loads(result.stdout)
    assert printed["update"] == "synchronous" and printed["steps"][0]["step"] == 0


def test_hopfield_bad_cue_is_a_one_line_error(tmp_path):
    result = cli_here("hopfield", "--set", f'models_dir="{tmp_path}"', "--set", 'hopfield.cue_character="ア"')
    assert_user_error(result, "hopfield.cue_character")
