"""``pipeline classify --explain`` through the real command line: text, colours, --json and --html.

Two tiny GRU runs trained once per module on the shipped corpus (tests/conftest.py): one with
attention pooling (its weights are shown) and one with mean pooling (occlusion). Each command runs through
the CLI's ``main`` in this process (helpers.cli_here: the parser, handlers and one-line errors of a fresh one);
what it prints must match what the Python API computes.
"""

import json
import re

import pytest
from helpers import KNB_LABELS, assert_success, assert_user_error, cli_here

from pipeline.classifier.explain import explain
from pipeline.runs import load_run

SENTENCES = ["新しいスマホのバッテリーがすぐ切れて困っています。", "週末は嵐山で紅葉を見てから湯豆腐を食べました。"]
TOKEN = re.compile(r"(\S+)\((-?\d\.\d\d)\)")


@pytest.fixture(scope="module")
def attention_folder(small_attention_trained):
    return small_attention_trained[1]


@pytest.fixture(scope="module")
def mean_folder(small_trained):
    return small_trained[1]


def test_explain_text_and_html_of_an_attention_model(attention_folder, tmp_path):
    page = tmp_path / "out" / "explain.html"
    result = cli_here("classify", "--model", str(attention_folder), "--explain", "--html", str(page),
                      stdin=SENTENCES[0] + "\n\n" + SENTENCES[1] + "\n")
    assert_user_error(result, "line 2", "empty")  # one empty line: exit 2, the others explained
    expected = explain(load_run(attention_folder), SENTENCES)
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and "\x1b[" not in result.stdout  # not a terminal: no colours
    for (label_line, token_line), want in zip([lines[0:2], lines[2:4]], expected):
        assert label_line == f"{want['label']}\t{want['probability']:.3f}\t{want['text']}"
        assert token_line.startswith("  attention: ")
        shown = TOKEN.findall(token_line)
        assert [word for word, _ in shown] == [word for word, _ in want["tokens"]]
        assert [float(weight) for _, weight in shown] == pytest.approx([w for _, w in want["tokens"]], abs=0.006)
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "line 2: empty text" in html
    for want in expected:
        assert f"<b>{want['label']}</b> {want['probability']:.3f} · attention" in html
        for word, weight in want["tokens"]:
            assert f"title='{weight:.4f}'>{word}</span>" in html
    assert [path.name for path in page.parent.iterdir()] == ["explain.html"]  # written atomically, no leftovers


def test_explain_json_of_an_occlusion_model_with_colours(mean_folder):
    result = cli_here("classify", "--model", str(mean_folder), "--explain", "--json", SENTENCES[1])
    assert_success(result)
    record = json.loads(result.stdout)
    assert record["method"] == "occlusion" and record["truncated"] == 0 and record["label"] in KNB_LABELS
    assert record["tokens"] == [[word, pytest.approx(weight, abs=1e-5)]
                                for word, weight in explain(load_run(mean_folder), SENTENCES[1:])[0]["tokens"]]
    coloured = cli_here("classify", "--model", str(mean_folder), "--explain", "--color", "always", SENTENCES[1])
    assert_success(coloured)
    label_line, token_line = coloured.stdout.splitlines()
    assert token_line.startswith("  occlusion: ")
    words = re.findall(r"\x1b\[48;5;\d+m\x1b\[38;5;16m([^\x1b]+)\x1b\[0m", token_line)
    assert words == [word for word, _ in record["tokens"]]


def test_html_into_a_folder_is_a_user_error(mean_folder, tmp_path):
    assert_user_error(cli_here("classify", "--model", str(mean_folder), "--html", str(tmp_path), SENTENCES[0]),
                      str(tmp_path), "--html", stdout_empty=True)
