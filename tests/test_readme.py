"""README.md stays true for users: its first screen describes what `make run` really trains (configs/default.toml)
and prints, and every config, benchmark and `pipeline` command it names exists. Reads files only: no training."""

import argparse
import re
import tomllib
from pathlib import Path

import pytest

from pipeline import config as config_module
from pipeline.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DEFAULT_CONFIG = ROOT / "configs" / "default.toml"
LAYER_NAMES = {"lstm": "LSTM", "gru": "GRU", "bilstm": "BiLSTM", "bigru": "BiGRU", "simple_rnn": "SimpleRNN",
               "elman": "Elman RNN", "esn": "ESN"}
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def first_screen(readme) -> str:
    """Everything above the command-line reference: the stages and `make run`."""
    end = readme.find("\n## Command line")
    assert end > 0, "README.md has no '## Command line' section"
    return readme[:end]


@pytest.fixture(scope="module")
def default_paragraph(first_screen) -> str:
    """The paragraph that says what `make run` trains."""
    paragraphs = [p for p in first_screen.split("\n\n") if p.startswith("`make run` runs ")]
    assert len(paragraphs) == 1, "README.md's opening must have one paragraph starting '`make run` runs '"
    return " ".join(paragraphs[0].split())  # one line: a phrase may break across lines


@pytest.fixture(scope="module")
def default_config():
    return config_module.load(DEFAULT_CONFIG)


def layer_field(layer, name: str):
    return layer[name] if isinstance(layer, dict) else getattr(layer, name)


def setting(config, key: str):
    value = config
    for part in key.split("."):
        value = getattr(value, part)
    return value


def claims(paragraph: str) -> dict[str, object]:
    """The settings the text states in code spans: `model.pooling = "attention"` -> {"model.pooling": "attention"}."""
    return {key: tomllib.loads(f"value = {value}")["value"]
            for key, value in re.findall(r"`([\w.]+) = ([^`]+)`", paragraph)}


def test_make_run_trains_configs_default(default_paragraph):
    assert "pipeline run configs/default.toml" in (ROOT / "Makefile").read_text(encoding="utf-8")
    assert default_paragraph.startswith("`make run` runs `pipeline run configs/default.toml`")


def test_the_stated_settings_are_those_of_the_default_config(default_paragraph, default_config):
    stated = claims(default_paragraph)
    # pooling, layer kind, ensemble and embeddings: what the opening must state, and state truly
    assert {"model.pooling", "type", "model.ensemble", "model.trainable_embeddings"} <= set(stated), stated
    layer_types = [layer_field(layer, "type") for layer in default_config.model.layers]
    for key, value in stated.items():
        actual = layer_types if key == "type" else setting(default_config, key)
        assert (value in actual if key == "type" else value == actual), \
            f"README says `{key} = {value!r}`, configs/default.toml has {actual!r}"


def test_the_words_match_the_default_config(default_paragraph, default_config):
    model, train = default_config.model, default_config.train
    [layer] = model.layers  # the opening describes one recurrent layer: "a BiLSTM of 64 units"
    kind, units = layer_field(layer, "type"), layer_field(layer, "units")
    assert re.search(rf"\ba {re.escape(LAYER_NAMES.get(kind, kind))} of {units} units", default_paragraph), \
        f"the opening should say 'a {LAYER_NAMES.get(kind, kind)} of {units} units'"
    assert f"{model.pooling} pooling" in default_paragraph
    assert ("`ja_ginza` vectors" in default_paragraph) == (default_config.vectorize.vectors == "ja_ginza")
    assert ("vectors that adapt" in default_paragraph) == model.trainable_embeddings
    assert ("frozen" in default_paragraph) == (not model.trainable_embeddings or train.freeze_embeddings_epochs > 0)
    if model.trainable_embeddings and train.freeze_embeddings_epochs:
        frozen = re.search(r"frozen for the first (\w+) epochs", default_paragraph)
        assert frozen and NUMBER_WORDS.get(frozen[1], frozen[1]) == train.freeze_embeddings_epochs
        factor = re.search(r"([\d.]+)× the rate", default_paragraph)
        assert factor and float(factor[1]) == train.embedding_learning_rate_factor
    assert ("character CNN per token" in default_paragraph) == (model.char_encoder == "cnn")
    assert ("character 1–3-gram" in default_paragraph) == (model.ensemble == "char_ngram")
    assert f"(seed {default_config.seed})" in default_paragraph


def test_the_printed_metrics_are_the_measured_ones(first_screen, readme):
    """The output shown under `make run` matches the measured table of the default (README, 'Measured figures')."""
    accuracy, macro_f1 = re.search(r"^test accuracy ([\d.]+) +macro-F1 ([\d.]+)", first_screen, re.MULTILINE).groups()
    char = re.search(r"^  char 1-3-gram TF-IDF .*: accuracy ([\d.]+) +macro-F1 ([\d.]+)", first_screen, re.MULTILINE)
    measured = readme[readme.index("## Measured figures"):]
    default_row = re.search(r"^\| default: .*\| \**([\d.]+)\** \| \**([\d.]+)\** \|$", measured, re.MULTILINE)
    char_row = re.search(r"^\| TF-IDF of character 1–3-grams .*\| ([\d.]+) \| ([\d.]+) \|$", measured, re.MULTILINE)
    assert default_row and char_row and char
    assert (accuracy, macro_f1) == default_row.groups()
    assert char.groups() == char_row.groups()


def code_in(markdown: str) -> list[str]:
    """Fenced blocks, indented (4-space) blocks and inline code spans."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", markdown, re.MULTILINE | re.DOTALL)
    rest = re.sub(r"^```[^\n]*\n.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    indented = re.findall(r"^ {4}(.*)$", rest, re.MULTILINE)
    inline = re.findall(r"`([^`]*)`", rest)  # `` (an empty span) is one too
    return fenced + indented + inline


def test_named_configs_and_benchmarks_exist(readme):
    named = set(re.findall(r"(?<![\w/.-])((?:tests/)?configs/[\w.-]+\.toml|benchmarks/\w+\.py)", readme))
    assert "configs/default.toml" in named
    missing = sorted(path for path in named if not (ROOT / path).is_file())
    assert not missing, f"README.md names files that do not exist: {missing}"


def test_named_commands_exist(readme):
    parser = build_parser()
    [subcommands] = [action.choices for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    named = {match for code in code_in(readme)
             for match in re.findall(r"(?<![\w./-])(?<!from )pipeline\s+([a-z][\w-]*)", code)}
    assert {"run", "classify", "generate"} <= named  # the extraction works
    unknown = sorted(named - set(subcommands))
    assert not unknown, f"README.md shows `pipeline` commands that do not exist: {unknown}"


def test_no_absolute_paths(readme):
    """Commands use paths relative to the checkout (../shared/corpora/...), never this machine's /work/...."""
    found = re.findall(r"(?<![\w.~])/(?:work|home|root|Users|tmp)/[^\s`'\"]*", readme)
    assert not found, f"README.md has absolute paths: {found}"
