"""``pipeline train`` and ``pipeline generate`` through the real command line, in fresh processes.

A tiny word-level language model (tests/configs/generator_small.toml: the shipped KNB corpus,
GiNZA words, two epochs) is trained once per module by ``python -m pipeline train`` into pytest's
temporary folder; every ``generate`` then runs in a process of its own, as a user would run it.
The error tests check what a user sees: exit status 2, one ``error:`` line, no traceback. Each
command pays the TensorFlow import (a few seconds), hence ``@pytest.mark.slow``.
"""

import itertools
import json
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from helpers import (
    assert_user_error,
    cli,
    cli_here,
    explain,
    folders,
    write_classifier_run,
)

SMALL_CONFIG = "tests/configs/generator_small.toml"
TEXT_CONFIG = "tests/configs/generator_text.toml"
PROMPT = "京都の"


TEXT_SPLITS = {
    "train": ["the cat sat on the mat", "the dog sat on the rug", "a cat saw the dog", "the dog ran to the park",
              "a dog saw a cat in the park", "the cat ran home", "the bird sat on the tree", "a bird saw the cat"],
    "valid": ["the cat sat under the tree", "the dog sat on the mat"],
    "test": ["the bird ran to the tree", "a cat ran to the mat"],
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    """``pipeline train --config tests/configs/generator_small.toml`` into a temporary folder."""
    root = tmp_path_factory.mktemp("cli-generator")
    result = cli_here("train", "--config", SMALL_CONFIG, *folders(root))
    assert result.returncode == 0, explain(result)
    folder = root / "models" / "generator_small"
    assert {"model.keras", "config.json", "vocab.json", "labels.json", "history.csv"} <= {
        path.name for path in folder.iterdir()}
    return folder


def generate(run_folder: Path, *arguments: str) -> subprocess.CompletedProcess:
    return cli("generate", "--model", str(run_folder), *arguments)


SAMPLING = ("--prompt", PROMPT, "--temperature", "0.8", "--max-tokens", "10", "--num", "3", "--seed", "1")
REPETITION = ("--repetition-penalty", "1.3", "--no-repeat-ngram", "2")
PROMPT_TOKENS = ["京都", "の"]  # GiNZA's words of PROMPT


def assert_no_repeated_bigram(tokens: list[str]) -> None:
    bigrams = list(itertools.pairwise(tokens))
    assert len(bigrams) == len(set(bigrams)), tokens


# ------------------------------------------------------------------ generate
@pytest.fixture(scope="module")
def plain_output(run_folder) -> str:
    """stdout of ``pipeline generate --prompt 京都の --temperature 0.8 --max-tokens 10 --num 3 --seed 1``."""
    result = generate(run_folder, *SAMPLING)
    assert result.returncode == 0, explain(result)
    return result.stdout


def test_generate_prints_num_lines_starting_with_the_prompt(plain_output):
    lines = plain_output.splitlines()
    assert len(lines) == 3, plain_output
    for line in lines:
        assert line.startswith(PROMPT) and " " not in line, line


def test_generate_json_lines_hold_tokens_and_probabilities_and_repeat_the_seeds_samples(run_folder, plain_output):
    """``--json`` in this process with the seed of the plain output's fresh one: the same samples, with their
    tokens."""
    result = cli_here("generate", "--model", str(run_folder), *SAMPLING, "--json")
    assert result.returncode == 0, explain(result)
    samples = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(samples) == 3
    vocab = json.loads((run_folder / "vocab.json").read_text(encoding="utf-8"))["tokens"]
    for sample in samples:
        assert sample["prompt"] == PROMPT
        assert len(sample["tokens"]) == len(sample["probabilities"]) <= 10
        assert all(token in vocab for token in sample["tokens"])
        assert all(0 < probability <= 1 for probability in sample["probabilities"])
        assert sample["text"] == PROMPT + "".join(sample["tokens"])
        assert sample["ended"] == (len(sample["tokens"]) < 10)
    # the same seed in another process: the same samples as the plain output
    assert plain_output.splitlines() == [sample["text"] for sample in samples]


def test_generate_help_explains_temperature():
    result = cli("generate", "--help")
    assert result.returncode == 0 and result.stderr == "", explain(result)
    text = result.stdout
    assert "usage: pipeline generate" in text and "--temperature" in text
    # what a low and a high temperature do
    assert re.search(r"T < 1|low", text) and re.search(r"T > 1|high", text), text
    assert "greedy" in text and "--top-k" in text and "--top-p" in text and "--seed" in text
    assert "--repetition-penalty" in text and "--no-repeat-ngram" in text


def test_run_command_evaluates_and_samples_with_the_configured_repetition_controls(run_folder):
    """``pipeline run`` on the trained config with [generate] repetition controls set: earlier stages skipped,
    perplexities, then the config's prompts sampled with no token twice (no_repeat_ngram = 1)."""
    root = run_folder.parent.parent
    result = cli_here("run", SMALL_CONFIG, *folders(root), "--set", "generate.repetition_penalty=1.3",
                      "--set", "generate.no_repeat_ngram=1", "--set", "generate.max_tokens=8")
    assert result.returncode == 0, explain(result)
    assert "train: up to date" in result.stderr or "train: up to date" in result.stdout, explain(result)
    lines = result.stdout.splitlines()
    assert any(line.startswith("perplexity train") for line in lines), result.stdout
    assert any("Kneser-Ney" in line for line in lines), result.stdout
    samples = lines[lines.index("samples:") + 1:]
    assert len(samples) == 2 and all(line.startswith(PROMPT) for line in samples), result.stdout  # [generate] num = 2
    assert all(" " not in line for line in samples), result.stdout  # Japanese words joined without spaces
    metrics = json.loads((run_folder / "metrics.json").read_text(encoding="utf-8"))
    assert set(metrics["perplexity"]) == {"train", "validation", "test"}


def test_generate_with_repetition_controls(run_folder):
    """--repetition-penalty and --no-repeat-ngram: no bigram twice (prompt included), text without spaces."""
    arguments = (*SAMPLING, *REPETITION)
    result = cli_here("generate", "--model", str(run_folder), *arguments, "--json")
    assert result.returncode == 0, explain(result)
    samples = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(samples) == 3 and any(sample["tokens"] for sample in samples), result.stdout
    for sample in samples:
        assert_no_repeated_bigram(PROMPT_TOKENS + sample["tokens"])
        assert sample["text"] == PROMPT + "".join(sample["tokens"]) and " " not in sample["text"]


@pytest.mark.parametrize("override, value", [
    ("generate.repetition_penalty", "0.5"), ("generate.no_repeat_ngram", "-1"),
])
def test_invalid_repetition_config_is_a_user_error(tmp_path, override, value):
    result = cli("run", SMALL_CONFIG, *folders(tmp_path), "--set", f"{override}={value}")
    assert_user_error(result, override, value, stdout_empty=True)


# ------------------------------------------------------------------ user errors
@pytest.mark.parametrize("option, value, fragment", [
    ("--temperature", "0", "temperature"), ("--temperature", "-1", "temperature"),
    ("--top-p", "0", "top_p"), ("--top-p", "1.5", "top_p"),
    ("--repetition-penalty", "0.5", "--repetition-penalty"), ("--repetition-penalty", "nan", "--repetition-penalty"),
    ("--no-repeat-ngram", "-1", "--no-repeat-ngram"),
], ids=["temperature-0", "temperature-negative", "top-p-0", "top-p-above-1", "repetition-penalty-below-1",
        "repetition-penalty-nan", "no-repeat-ngram-negative"])
def test_invalid_sampling_settings_are_user_errors(run_folder, option, value, fragment):
    result = generate(run_folder, "--prompt", PROMPT, option, value)
    assert_user_error(result, fragment, value, stdout_empty=True)


def test_classifier_run_passed_to_generate_is_a_user_error(tmp_path):
    folder = write_classifier_run(tmp_path / "classifier")
    assert_user_error(generate(folder, "--prompt", PROMPT), "classifier", str(folder), stdout_empty=True)


def test_classify_with_a_generator_run_points_to_generate(run_folder):
    assert_user_error(cli("classify", "--model", str(run_folder), "今日は晴れ"), "generator", "pipeline generate",
                      stdout_empty=True)


def test_missing_run_folder_is_a_user_error(tmp_path):
    assert_user_error(generate(tmp_path / "no-such-run", "--prompt", PROMPT), "not found", "no-such-run",
                      stdout_empty=True)


# ------------------------------------------------------------------ plain text, whitespace tokens
def write_text_folder(folder: Path) -> Path:
    folder.mkdir()
    for split, lines in TEXT_SPLITS.items():
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def write_text_file(path: Path) -> Path:
    lines = [line for split_lines in TEXT_SPLITS.values() for line in split_lines]
    paragraphs = [lines[i:i + 3] for i in range(0, len(lines), 3)]  # paragraphs are the documents kept whole
    path.write_text("\n\n".join("\n".join(p) for p in paragraphs) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("layout", ["file", "folder"])
def test_plain_text_corpus_trains_on_whitespace_tokens_and_generates_spaced_text(tmp_path, layout):
    """Both layouts are prepared through the CLI; the folder's run (its own splits) then trains and generates
    (the layouts differ only in how ``prepare`` splits)."""
    corpus = write_text_folder(tmp_path / "text") if layout == "folder" else write_text_file(tmp_path / "text.txt")
    stage = "train" if layout == "folder" else "prepare"
    done = cli_here(stage, "--config", TEXT_CONFIG, "--set", f'corpus.path="{corpus}"', *folders(tmp_path))
    assert done.returncode == 0, explain(done)
    prepared = pd.read_parquet(next((tmp_path / "work").glob("*/prepared.parquet")))
    if layout == "file":  # one file: a split drawn by paragraph (the documents)
        assert set(prepared["split"]) == {"train", "validation", "test"}
        assert len(prepared) == sum(len(lines) for lines in TEXT_SPLITS.values())
        return
    for split, name in (("train", "train"), ("validation", "valid"), ("test", "test")):  # nothing drawn at random
        assert sorted(prepared.loc[prepared["split"] == split, "text"]) == sorted(TEXT_SPLITS[name])
    run = tmp_path / "models" / "generator_text"
    vocab = json.loads((run / "vocab.json").read_text(encoding="utf-8"))["tokens"]
    result = cli_here("generate", "--model", str(run), "--prompt", "the cat", "--num", "4", "--max-tokens", "6",
                      "--seed", "0", "--json")
    assert result.returncode == 0, explain(result)
    samples = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(samples) == 4 and any(sample["tokens"] for sample in samples)
    for sample in samples:
        assert sample["text"] == " ".join(["the", "cat", *sample["tokens"]])
        assert "  " not in sample["text"]
        assert set(sample["tokens"]) <= set(vocab[4:])
