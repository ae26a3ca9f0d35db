"""Tests of the real command line, in subprocesses: ``python -m pipeline ...`` and the ``pipeline`` script.

The end-to-end tests (``@pytest.mark.slow``) run ``pipeline run tests/configs/e2e.toml`` once per
module into a temporary folder (about half a minute on 2 CPU cores), then classify with the run
folder in fresh processes. The other tests feed bad inputs and check what a user sees: one line on
stderr starting with ``error:``, exit status 2, no traceback, and nothing half-written.
"""

import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    KNB_LABELS,
    REPOSITORY,
    TOOL_COMMANDS,
    assert_user_error,
    cli,
    cli_each,
    cli_here,
    folders,
    tree_bytes,
    write_classifier_run,
    write_csv,
)

E2E_CONFIG = "tests/configs/e2e.toml"
CONSOLE_SCRIPT = Path(sys.executable).parent / "pipeline"
STAGES = ("prepare", "tokenize", "vectorize", "train", "evaluate")
COMMANDS = ("run", *STAGES, "classify")
SENTENCES = ["新しいスマホのバッテリーがすぐ切れて困っています。", "昨日の試合は延長戦の末にサヨナラ勝ちでした！"]


def with_config(command: str, config: str | Path, root: Path) -> list[str]:
    """``run CONFIG`` or ``<stage> --config CONFIG``, with work_dir/models_dir under root."""
    head = [command, str(config)] if command == "run" else [command, "--config", str(config)]
    return [*head, *folders(root)]


def written_files(root: Path) -> list[str]:
    """Every file (and every temporary dot-entry) under root/work and root/models."""
    found = []
    for folder in (root / "work", root / "models"):
        if folder.exists():
            found += [str(path.relative_to(root)) for path in folder.rglob("*")
                      if path.is_file() or path.name.startswith(".")]
    return sorted(found)


# ------------------------------------------------------------------ help
def test_top_level_help_lists_every_stage():
    result = cli("--help")
    assert result.returncode == 0, result.stderr
    listed = set(re.findall(r"^ {4}([a-z][\w-]*)(?: {2,}|$)", result.stdout, re.MULTILINE))
    assert set(COMMANDS) <= listed, result.stdout


def listed_commands() -> list[str]:
    result = cli("--help")
    return sorted(set(COMMANDS) | set(re.findall(r"^ {4}([a-z][\w-]*)(?: {2,}|$)", result.stdout, re.MULTILINE)))


@pytest.mark.parametrize("command", listed_commands())
def test_every_command_has_help(command):
    result = cli(command, "--help")
    assert result.returncode == 0, result.stderr
    assert f"usage: pipeline {command}" in result.stdout
    assert result.stderr == ""


def test_console_script_is_installed_and_runs():
    assert CONSOLE_SCRIPT.is_file(), f"{CONSOLE_SCRIPT}: run `pip install -e .` (make test does)"
    result = cli("--version", script=CONSOLE_SCRIPT)
    assert result.returncode == 0 and result.stdout.startswith("pipeline "), result.stderr


# ------------------------------------------------------------------ end to end
@dataclass
class EndToEnd:
    arguments: list[str]
    result: subprocess.CompletedProcess
    seconds: float
    root: Path

    @property
    def run_folder(self) -> Path:
        return self.root / "models" / "e2e"


@pytest.fixture(scope="module")
def e2e(tmp_path_factory) -> EndToEnd:
    """`pipeline run tests/configs/e2e.toml` into a temporary folder, once per module (in this process: a fresh
    one's run is tests/test_cli_determinism.py's, its stderr tests/test_cli_native_stderr.py's)."""
    root = tmp_path_factory.mktemp("e2e")
    arguments = ["run", E2E_CONFIG, *folders(root)]
    started = time.perf_counter()
    result = cli_here(*arguments)
    seconds = time.perf_counter() - started
    print(f"\n`pipeline run {E2E_CONFIG}`: {seconds:.1f} s wall time", file=sys.__stderr__)
    assert result.returncode == 0, f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-5000:]}"
    return EndToEnd(arguments, result, seconds, root)


@pytest.mark.slow
def test_run_prints_metrics_and_classifies_the_examples(e2e):
    stdout = e2e.result.stdout
    assert re.search(r"^test accuracy \d\.\d{3}  macro-F1 \d\.\d{3}  \(n=\d+\)$", stdout, re.MULTILINE), stdout
    assert "majority baseline" in stdout and "TF-IDF + logistic regression" in stdout
    example = re.search(r"^examples:\n(\w+)\t(\d\.\d{3})\t週末は嵐山で紅葉を見ました。$", stdout, re.MULTILINE)
    assert example and example.group(1) in KNB_LABELS, stdout
    for stage in STAGES:
        assert f"{stage}: running" in e2e.result.stderr
    assert "Traceback" not in e2e.result.stderr


@pytest.mark.slow
def test_run_writes_a_complete_run_folder_and_no_temporary_files(e2e):
    for name in ("model.keras", "config.json", "vocab.json", "labels.json", "history.csv", "metrics.json",
                 "plots/confusion_matrix.png", "plots/training_curves.png"):
        assert (e2e.run_folder / name).is_file(), name
    assert [p.name for p in (e2e.root / "models").iterdir()] == ["e2e"]
    leftovers = [str(p) for p in e2e.root.rglob(".*")]
    assert leftovers == []


@pytest.mark.slow
def test_run_beats_the_majority_baseline_by_a_clear_margin(e2e):
    metrics = json.loads((e2e.run_folder / "metrics.json").read_text(encoding="utf-8"))
    majority = metrics["baselines"]["majority"]["accuracy"]
    print(f"\ntest accuracy {metrics['accuracy']:.3f}, majority baseline {majority:.3f}", file=sys.__stderr__)
    assert metrics["accuracy"] >= majority + 0.2, metrics
    assert metrics["labels"] == KNB_LABELS


@pytest.mark.slow
def test_run_reports_the_share_of_test_tokens_the_model_reads_as_unknown(e2e):
    from pipeline.text.vectors import EncodedSplits

    metrics = json.loads((e2e.run_folder / "metrics.json").read_text(encoding="utf-8"))
    ids = np.concatenate(list(EncodedSplits.load(e2e.root / "work" / "knb_blog" / "ids.npz").sequences["test"]))
    assert metrics["unknown_token_share"] == pytest.approx(np.mean(ids == 1)) and 0 < np.mean(ids == 1) < 0.5
    assert f"test tokens outside the vocabulary (<unk>): {100 * np.mean(ids == 1):.1f}%" in e2e.result.stdout


@pytest.mark.slow
def test_run_beats_the_word_tfidf_baseline(e2e):
    """The recurrent model must earn its cost: better than TF-IDF + logistic regression on both measures
    (0.681 / 0.677 against 0.532 / 0.528 for tests/configs/e2e.toml on this corpus)."""
    metrics = json.loads((e2e.run_folder / "metrics.json").read_text(encoding="utf-8"))
    tfidf = metrics["baselines"]["tfidf_logistic_regression"]
    assert metrics["accuracy"] >= tfidf["accuracy"] + 0.05, metrics
    assert metrics["macro_f1"] >= tfidf["macro_f1"] + 0.05, metrics


@pytest.mark.slow
def test_a_second_run_with_only_unrelated_settings_changed_skips_every_stage(e2e):
    """A stage's fingerprint covers the settings it reads: the examples, the settings of a pretraining that is
    off and the number of tokenizer processes change no stage's result."""
    model_stamp = (e2e.run_folder / "model.keras").stat().st_mtime_ns
    tokens = e2e.root / "work" / "knb_blog" / "tokens.parquet"
    tokens_stamp = tokens.stat().st_mtime_ns
    started = time.perf_counter()
    result = cli_here(*e2e.arguments, "--set", 'classify.examples=["別の例文です。"]', "--set", "pretrain.epochs=2",
                      "--set", "tokenize.processes=2")
    seconds = time.perf_counter() - started
    print(f"\nsecond `pipeline run`: {seconds:.1f} s (first: {e2e.seconds:.1f} s)", file=sys.__stderr__)
    assert result.returncode == 0, result.stderr
    for stage in STAGES:
        assert f"{stage}: up to date" in result.stderr, result.stderr
        assert f"{stage}: running" not in result.stderr, result.stderr
    assert "Epoch" not in result.stdout
    assert "test accuracy" in result.stdout and re.search(r"\t別の例文です。$", result.stdout, re.MULTILINE)
    assert (e2e.run_folder / "model.keras").stat().st_mtime_ns == model_stamp
    assert tokens.stat().st_mtime_ns == tokens_stamp


@pytest.mark.slow
def test_tool_commands_with_their_defaults_leave_the_trained_run_byte_identical(e2e, tmp_path):
    models = tmp_path / "saved_models"
    shutil.copytree(e2e.run_folder, models / "default")
    trained = tree_bytes(models / "default")
    assert json.loads(trained["run.json"])["kind"] == "classifier"
    from concurrent.futures import ThreadPoolExecutor

    # two processes at once, each running two tools one after the other (a process start costs seconds): every
    # tool locks its own run folder
    names = list(TOOL_COMMANDS)
    halves = [names[::2], names[1::2]]
    with ThreadPoolExecutor(len(halves)) as pool:
        results = list(pool.map(lambda half: cli_each([TOOL_COMMANDS[name] for name in half], cwd=tmp_path), halves))
    for half, result in zip(halves, results):
        assert result.returncode == 0, f"{half}: exit {result.returncode}\n{result.stderr[-3000:]}"
    for name in names:
        assert json.loads((models / name / "run.json").read_text(encoding="utf-8"))["kind"] == name
    assert tree_bytes(models / "default") == trained
    assert sorted(path.name for path in models.iterdir()) == ["default", *sorted(TOOL_COMMANDS)]

    # A tool pointed at the classifier's run name is refused, naming both kinds and the way out ...
    error = assert_user_error(cli_here(*TOOL_COMMANDS["hopfield"], "--set", "run_name=default", cwd=tmp_path),
                              "holds a classifier run", "--force")
    assert str(Path("saved_models") / "default") in error
    assert tree_bytes(models / "default") == trained
    # ... and --force replaces it whole, with a complete hopfield run and nothing of the classifier left.
    result = cli_here(*TOOL_COMMANDS["hopfield"], "--set", "run_name=default", "--force", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(tree_bytes(models / "default")) == ["hopfield.json", "hopfield_recall.png", "run.json"]
    assert [path.name for path in models.glob(".*")] == []
    # A stage refuses in turn to train over a tool's run.
    assert_user_error(cli_here("train", "--config", E2E_CONFIG, "--set", "run_name=hopfield", *folders(tmp_path),
                               "--set", f'models_dir="{models}"'), "holds a hopfield run, not a classifier run")


def parse_label_lines(stdout: str, texts: list[str]) -> None:
    lines = stdout.splitlines()
    assert len(lines) == len(texts), stdout
    for line, text in zip(lines, texts):
        label, probability, echoed = line.split("\t")
        assert label in KNB_LABELS and 0.25 <= float(probability) <= 1.0 and echoed == text, line


@pytest.mark.slow
def test_classify_arguments_with_the_console_script(e2e):
    result = cli("classify", "--model", str(e2e.run_folder), *SENTENCES, script=CONSOLE_SCRIPT)
    assert result.returncode == 0, result.stderr
    parse_label_lines(result.stdout, SENTENCES)


@pytest.mark.slow
def test_classify_json_lines_hold_every_class_probability_and_line_errors(e2e):
    result = cli_here("classify", "--model", str(e2e.run_folder), "--json", stdin=f"{SENTENCES[0]}\n\n{SENTENCES[1]}\n")
    assert result.returncode == 2, result.stderr  # one line failed
    assert "Traceback" not in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [record["line"] for record in records] == [1, 2, 3]
    assert records[1]["text"] == "" and "empty" in records[1]["error"] and "label" not in records[1]
    for record, text in zip([records[0], records[2]], SENTENCES):
        assert record["text"] == text
        assert list(record["probabilities"]) == KNB_LABELS
        assert abs(sum(record["probabilities"].values()) - 1.0) < 1e-5
        assert record["label"] == max(record["probabilities"], key=record["probabilities"].get)
        assert record["probability"] == pytest.approx(max(record["probabilities"].values()))


@pytest.mark.slow
@pytest.mark.parametrize("source", ["file", "file-dash-stdin", "piped-stdin"])
def test_classify_reads_a_file_or_stdin(e2e, tmp_path, source):
    text = "\n".join(SENTENCES) + "\n"
    (tmp_path / "sentences.txt").write_text(text, encoding="utf-8")
    arguments = {"file": (["--file", str(tmp_path / "sentences.txt")], None),
                 "file-dash-stdin": (["--file", "-"], text),
                 "piped-stdin": ([], text)}[source]
    result = cli_here("classify", "--model", str(e2e.run_folder), *arguments[0], stdin=arguments[1])
    assert result.returncode == 0, result.stderr
    parse_label_lines(result.stdout, SENTENCES)


@pytest.mark.slow
def test_classify_empty_line_is_an_error_for_that_line_only(e2e, tmp_path):
    (tmp_path / "sentences.txt").write_text(f"{SENTENCES[0]}\n\n{SENTENCES[1]}\n", encoding="utf-8")
    result = cli_here("classify", "--model", str(e2e.run_folder), "--file", str(tmp_path / "sentences.txt"))
    assert_user_error(result, "line 2", "empty")
    parse_label_lines(result.stdout, SENTENCES)


@pytest.mark.slow
def test_classify_corrupt_run_folder(e2e, tmp_path):
    copy = Path(shutil.copytree(e2e.run_folder, tmp_path / "run"))
    data = (copy / "model.keras").read_bytes()
    (copy / "model.keras").write_bytes(data[: len(data) // 2])
    assert_user_error(cli_here("classify", "--model", str(copy), SENTENCES[0]), "model.keras")


@pytest.mark.parametrize("command, layers, key", [("run", '[{type="gru", units=32, dropout=1.5}]', "dropout"),
                                                  ("train", '[{type="gru", units=0}]', "units"),
                                                  ("run", '[{type="gru", unit=32}]', "unit")],
                         ids=["dropout-1.5", "units-0", "typo"])
def test_invalid_layer_options_fail_before_any_stage(tmp_path, command, layers, key):
    result = cli(*with_config(command, E2E_CONFIG, tmp_path), "--set", f"model.layers={layers}")
    assert_user_error(result, f"model.layers[0].{key}")
    assert written_files(tmp_path) == []


# ------------------------------------------------------------------ bad inputs
def test_missing_run_folder(tmp_path):
    assert_user_error(cli("classify", "--model", str(tmp_path / "no-such-run"), SENTENCES[0]), "no-such-run")


@pytest.mark.parametrize("arguments", [("--version",), ("classify", "--model", "no-such-run", SENTENCES[0]),
                                       ("run", "no-such-config.toml"), ("frobnicate",)],
                         ids=["version", "missing-run", "missing-config", "unknown-command"])
def test_main_in_this_process_answers_as_a_fresh_process(arguments):
    """The in-process variant tests (helpers.cli_here) see the exit status, stdout and stderr a user sees."""
    here, there = cli_here(*arguments), cli(*arguments)
    assert (here.returncode, here.stdout, here.stderr) == (there.returncode, there.stdout, there.stderr)


@pytest.mark.parametrize("command", ["run", "train"])
def test_missing_config_file(tmp_path, command):
    assert_user_error(cli(*with_config(command, tmp_path / "nope.toml", tmp_path)), "nope.toml", "not found")
    assert written_files(tmp_path) == []


def test_invalid_toml(tmp_path):
    (tmp_path / "broken.toml").write_text("[train\nepochs = 3\n", encoding="utf-8")
    assert_user_error(cli(*with_config("prepare", tmp_path / "broken.toml", tmp_path)), "broken.toml", "TOML")
    assert written_files(tmp_path) == []


@pytest.mark.parametrize("command, old, new, nearest", [("run", "epochs = 8", "epoch = 8", "epochs"),
                                                         ("prepare", "seed = 7", "sead = 7", "seed"),
                                                         ("train", "[train]", "[trian]", "train"),
                                                         ("vectorize", 'pooling = "mean"', 'poolng = "mean"',
                                                          "pooling")])
def test_unknown_config_key_names_the_nearest_valid_key(tmp_path, command, old, new, nearest):
    text = (REPOSITORY / E2E_CONFIG).read_text(encoding="utf-8")
    assert old in text
    (tmp_path / "typo.toml").write_text(text.replace(old, new), encoding="utf-8")
    message = assert_user_error(cli(*with_config(command, tmp_path / "typo.toml", tmp_path)), "typo.toml")
    assert f"did you mean '{nearest}'" in message
    assert written_files(tmp_path) == []


def test_unknown_key_in_a_set_override(tmp_path):
    message = assert_user_error(cli("run", E2E_CONFIG, *folders(tmp_path), "--set", "train.learning_rat=0.1"))
    assert "did you mean 'learning_rate'" in message
    assert written_files(tmp_path) == []


@pytest.mark.parametrize("command", ["prepare", "run"])
def test_quiet_config_error_is_exactly_one_line_on_stderr(tmp_path, command):
    """With --quiet nothing but the error reaches stderr (no log lines, no library start-up chatter)."""
    result = cli("--quiet", *with_config(command, E2E_CONFIG, tmp_path), "--set", "train.epoch=3")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [result.stderr.strip()] and result.stderr.startswith("error:"), result.stderr


def test_missing_corpus_path(tmp_path):
    result = cli("run", E2E_CONFIG, *folders(tmp_path), "--set", f'corpus.path="{tmp_path / "no-such-corpus"}"')
    assert_user_error(result, "no-such-corpus", "not found")
    assert written_files(tmp_path) == []


def table_corpus(path: Path) -> list[str]:
    return ["--set", 'corpus.format="table"', "--set", f'corpus.path="{path}"']


def knb_corpus(root: Path) -> list[str]:
    return ["--set", f'corpus.path="{root}"']


def bad_corpus(kind: str, folder: Path) -> tuple[list[str], tuple[str, ...]]:
    """Settings that point the e2e config at a broken corpus, and fragments the error must hold."""
    rows = [(f"{label}の文その{i}です。", label) for label in ("犬", "猫") for i in range(6)]
    if kind == "empty-knb-file":
        (folder / "knb" / "corpus2").mkdir(parents=True)
        (folder / "knb" / "corpus2" / "Empty.tsv").write_bytes(b"")
        return knb_corpus(folder / "knb"), ("knb", "no sentences")
    if kind == "empty-csv-file":
        (folder / "corpus.csv").write_bytes(b"")
        return table_corpus(folder / "corpus.csv"), ("corpus.csv",)
    if kind == "csv-header-only":
        return table_corpus(write_csv(folder / "corpus.csv", [])), ("corpus.csv", "no sentences")
    if kind == "too-few-examples":
        path = write_csv(folder / "corpus.csv", rows + [("鳥の文です。", "鳥"), ("鳥がいた。", "鳥")])
        return table_corpus(path), ("corpus.csv", "label '鳥'", "2 example")
    if kind == "missing-column":
        path = write_csv(folder / "corpus.csv", rows, header="sentence,label")
        return table_corpus(path), ("corpus.csv", "'text'", "sentence")
    if kind == "undecodable-bytes":
        # Latin-1 é followed by ',' is invalid UTF-8 (bad continuation), EUC-JP and cp932 (bad trail byte)
        path = write_csv(folder / "corpus.csv", [(f"café numéro {i}", "A" if i % 2 else "B") for i in range(12)],
                         encoding="latin-1")
        return table_corpus(path), ("corpus.csv:2", "utf-8", "euc-jp", "cp932")
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["empty-knb-file", "empty-csv-file", "csv-header-only", "too-few-examples",
                                  "missing-column", "undecodable-bytes"])
def test_bad_corpus_is_one_error_line_and_writes_nothing(tmp_path, kind):
    corpus_folder = tmp_path / "corpus"
    corpus_folder.mkdir()
    settings, fragments = bad_corpus(kind, corpus_folder)
    result = cli("prepare", "--config", E2E_CONFIG, *folders(tmp_path), *settings)
    assert_user_error(result, *fragments)
    assert written_files(tmp_path) == []


def test_bad_corpus_through_run_writes_nothing(tmp_path):
    corpus_folder = tmp_path / "corpus"
    corpus_folder.mkdir()
    settings, fragments = bad_corpus("too-few-examples", corpus_folder)
    assert_user_error(cli("run", E2E_CONFIG, *folders(tmp_path), *settings), *fragments)
    assert written_files(tmp_path) == []


@pytest.mark.parametrize("command, setting, key", [("run", "train.epochs=0", "train.epochs"),
                                                   ("prepare", "corpus.test_fraction=1.5", "corpus.test_fraction"),
                                                   ("train", 'train.optimizer="adamw"', "train.optimizer"),
                                                   ("prepare", 'train.batch_size="big"', "train.batch_size"),
                                                   ("prepare", "train.clipnorm=1.0", "train.clipvalue")])
def test_invalid_config_value(tmp_path, command, setting, key):
    overrides = ["--set", setting] + (["--set", "train.clipvalue=0.5"] if key == "train.clipvalue" else [])
    assert_user_error(cli(*with_config(command, E2E_CONFIG, tmp_path), *overrides), key)
    assert written_files(tmp_path) == []


def test_unreadable_config_encoding(tmp_path):
    (tmp_path / "latin.toml").write_bytes('run_name = "café"\n'.encode("latin-1"))
    assert_user_error(cli(*with_config("prepare", tmp_path / "latin.toml", tmp_path)), "latin.toml", "UTF-8")


@pytest.mark.slow
def test_classify_without_any_text(e2e):
    assert_user_error(cli("classify", "--model", str(e2e.run_folder)), "no text to classify")


def modules_imported(*arguments: str) -> list[str]:
    """Which of Keras, TensorFlow, JAX and spaCy the CLI imported for ``arguments``."""
    script = ("import sys\nfrom pipeline.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
              "print(sorted({'keras', 'tensorflow', 'jax', 'spacy'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", script, *arguments], cwd=REPOSITORY, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=120)
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("arguments", [["--help"], ["classify", "--model", "no/such/run", "x"],
                                       ["classify", "--model", "saved_models"]])
def test_help_and_user_errors_import_no_keras(arguments):
    """`--help` and a mistake answer at once: neither Keras nor TensorFlow is imported (benchmarks/cold_start.py)."""
    assert modules_imported(*arguments) == "[]"


@pytest.mark.parametrize("command", [["generate"], ["read", "x"], ["run", "configs/default.toml", "--set",
                                                                   'corpus.path="no/such/corpus"']])
def test_a_run_of_the_wrong_kind_or_a_missing_corpus_imports_no_keras(tmp_path, command):
    """A classifier run handed to generate or read, and a run whose corpus is missing, fail before Keras."""
    folder = write_classifier_run(tmp_path / "run")
    arguments = [command[0], "--model", str(folder), *command[1:]] if command[0] != "run" else command
    assert modules_imported(*arguments, *(folders(tmp_path) if command[0] == "run" else [])) == "[]"
