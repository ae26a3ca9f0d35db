"""Property-based tests (Hypothesis) of pipeline.text.corpora: arbitrary Unicode never crashes normalisation
and never loses a line silently.

Inputs: emoji, control characters, 100,000-character lines, mixed scripts, half-width kana
(``text_strategies``). A line is dropped only when nothing is left of it after normalisation
(whitespace, URLs), never for what its characters are.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from text_strategies import is_line_break, lines

from pipeline.sections import CorpusConfig
from pipeline.text.corpora import clean, normalize, read_plain_text

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(lines)
def test_normalize_never_crashes_and_gives_one_trimmed_line(line):
    result = normalize(line)
    assert isinstance(result, str)
    assert not any(is_line_break(char) for char in result)
    assert result == result.strip() and "  " not in result
    assert normalize(result) == result  # idempotent: prepare and classify see the same text


@PROPERTY
@given(st.lists(lines, min_size=1, max_size=8))
def test_a_text_corpus_keeps_every_line_with_text_left(tmp_path_factory, line_list):
    folder = tmp_path_factory.mktemp("corpus")
    path = folder / "corpus.txt"
    path.write_text("\n".join(line_list) + "\n", encoding="utf-8")
    table = read_plain_text(path, CorpusConfig(format="text", path=str(path)))
    text = "\n".join(line_list)
    expected_lines = (text[1:] if text.startswith("\ufeff") else text).split("\n")  # a leading BOM is the encoding's
    assert table["text"].tolist() == [line for line in expected_lines if line.strip()]
    cleaned = clean(table.assign(label=""), deduplicate=False)
    assert cleaned["text"].tolist() == [normalize(line) for line in expected_lines if normalize(line)]


@pytest.mark.parametrize("line", ["\x00", "\x07\x1b[31m", "ｶﾞｷﾞｸﾞ", "👨‍👩‍👧" * 3, "e\u0301", "\ufeff京都", "ｱ" * 100_000])
def test_examples_that_once_mattered(line):
    assert normalize(line) == normalize(normalize(line))
    assert normalize(line)  # none of these is empty after normalisation
