"""``pipeline run`` with a reading config and ``pipeline read`` through the real command line, in fresh processes.

A tiny reading model (tests/configs/reading_small.toml) is trained once per module on 40 sentences of
corpora/blog_text by ``python -m pipeline run``; every ``read`` then runs in a process of its own and
reloads the run folder (safe_mode), as a user would. Errors: exit status 2, one ``error:`` line.
"""

import json
from pathlib import Path

import pytest
from helpers import REPOSITORY, assert_success, assert_user_error, cli_here, explain, folders

CONFIG = "tests/configs/reading_small.toml"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli-reading")
    lines = [line for line in (REPOSITORY / "corpora/blog_text/blog.txt").read_text(encoding="utf-8").splitlines()
             if line.strip()][:40]
    corpus = root / "corpus.txt"
    documents = ["\n".join(lines[start:start + 5]) for start in range(0, len(lines), 5)]  # blank line: next one
    corpus.write_text("\n\n".join(documents) + "\n", encoding="utf-8")
    result = cli_here("run", CONFIG, *folders(root), "--set", f'corpus.path="{corpus}"')
    assert_success(result)
    for fragment in ("character error rate", "greedy:", "kana-copy baseline", "model − kana copy", "examples:"):
        assert fragment in result.stdout, explain(result)
    folder = root / "models" / "reading_small"
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    assert set(metrics) >= {"greedy", "beam", "kana_copy", "examples"} and 0 <= metrics["beam"]["cer"]
    assert (folder / "plots" / "attention.png").is_file()
    return folder


def test_read_json_with_attention_and_plot(run_folder, tmp_path):
    plot = tmp_path / "attention.png"
    result = cli_here("read", "--model", str(run_folder), "--json", "--beam", "3", "--plot", str(plot), "今日は晴れ。")
    assert_success(result)
    (line,) = [json.loads(text) for text in result.stdout.splitlines()]
    assert line["text"] == "今日は晴れ。" and line["source"] == list("今日は晴れ。")
    assert line["reading"] == "".join(c for c in line["output"] if c != "</s>")  # </s> unless cut at the limit
    attention = line["attention"]
    assert len(attention) == len(line["output"]) and all(len(row) == 6 for row in attention)
    assert all(abs(sum(row) - 1) < 1e-3 for row in attention)
    assert plot.is_file() and plot.stat().st_size > 1000


def test_read_stdin_reports_an_empty_line_and_reads_the_others(run_folder):
    result = cli_here("read", "--model", str(run_folder), "--greedy", stdin="今日は晴れ。\n\n京都へ行く\n")
    assert result.returncode == 2, explain(result)
    readings = result.stdout.splitlines()
    assert [line.split("\t")[1] for line in readings] == ["今日は晴れ。", "京都へ行く"]
    assert "error: line 2: empty line" in result.stderr


def test_read_user_errors(run_folder, tmp_path):
    assert_user_error(cli_here("read", "--model", str(run_folder), "--beam", "0", "文"), "--beam")
    assert_user_error(cli_here("read", "--model", str(tmp_path / "missing"), "文"), "run folder not found")
