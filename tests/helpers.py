"""What many test modules share: the repository root, running the real CLI, and checking what a user sees.

Importable as ``helpers`` (``pythonpath = tests`` in pyproject.toml); fixtures live in ``conftest.py``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import subprocess
import sys
import traceback
from pathlib import Path
from unittest import mock

REPOSITORY = Path(__file__).resolve().parents[1]
TEST_CONFIGS = REPOSITORY / "tests" / "configs"
KNB_LABELS = ["Gourmet", "Keitai", "Kyoto", "Sports"]  # the themes of the shipped corpus, sorted
# short sentences of the four themes, three times: texts for the char n-gram member and its distillation teacher
SHORT_TEXTS = ["京都の寺で紅葉を見た", "スマホの電池が切れた", "野球の試合に勝った", "嵐山で湯豆腐", "新しいケータイ",
               "サッカーの決勝戦", "清水寺へ行きました", "充電器を買った", "延長戦でサヨナラ勝ち"] * 3

# Our log records: "I pipeline.stages: prepare: running" (cli.configure_logging's format).
LOG_RECORD = re.compile(r"^[DIWEC] [\w.]+: ")
# TensorFlow's C++ start-up lines (absl, before its logging is initialised; TF_CPP_MIN_LOG_LEVEL does not
# silence them; pipeline.cli.native_stderr keeps them off stderr, so a user sees none):
# "I0000 00:00:1795325617.110748   15998 port.cc:153] oneDNN custom operations are on..."
TENSORFLOW_NOISE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
                              r"|[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.]+:\d+\] "
                              r"|To enable the following instructions: )")


# ``python -c RUN_EACH '[ARGV, ...]'``: ``pipeline ARGV`` for each ARGV of the JSON list, one after the other in one
# fresh process (a process start costs seconds); exits with the first status that is not 0
RUN_EACH = ("import json, sys; from pipeline.cli import main\n"
            "for argv in json.loads(sys.argv[1]):\n"
            "    status = main(argv)\n"
            "    if status: sys.exit(status)\n")


def cli(*arguments: str, stdin: str | None = None, script: Path | None = None,
        timeout: float = 600, cwd: Path = REPOSITORY) -> subprocess.CompletedProcess:
    """Run the CLI (``python -m pipeline`` or the ``script``) in a fresh process, from the repository root or
    ``cwd``."""
    command = [str(script)] if script else [sys.executable, "-m", "pipeline"]
    return subprocess.run([*command, *arguments], cwd=cwd, input=stdin,
                          stdin=None if stdin is not None else subprocess.DEVNULL,
                          capture_output=True, text=True, encoding="utf-8", timeout=timeout)


def cli_each(commands: list[list[str]], cwd: Path = REPOSITORY, timeout: float = 600) -> subprocess.CompletedProcess:
    """``pipeline COMMAND`` for each command, one after the other in one fresh process (:data:`RUN_EACH`); the
    status is the first that is not 0."""
    return subprocess.run([sys.executable, "-c", RUN_EACH, json.dumps(commands, ensure_ascii=False)], cwd=cwd,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, encoding="utf-8",
                          timeout=timeout)


def cli_here(*arguments: str, stdin: str | None = None, cwd: Path = REPOSITORY) -> subprocess.CompletedProcess:
    """``pipeline ARGUMENTS`` through :func:`pipeline.cli.main` in this process, answered as :func:`cli` answers:
    the same parser, handlers and one-line errors, without a fresh interpreter's 5-6 s of importing TensorFlow.

    For the variants of a command (where its input comes from, its output formats, its errors); what only a
    process shows (the console script, native stderr, signals, a fresh process's numbers) keeps a :func:`cli`
    test. An exception main does not handle becomes exit status 1 and its traceback on stderr, as in a
    process; the working directory, environment and logging handlers are restored afterwards."""
    from pipeline.cli import main

    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with contextlib.chdir(cwd), mock.patch.dict(os.environ), \
                mock.patch.object(sys, "stdin", io.StringIO(stdin or "")), \
                contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(list(arguments))
            except SystemExit as exit:  # argparse's usage errors and --help
                status = exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 1
            except Exception:  # noqa: BLE001 (what a process would print before dying)
                traceback.print_exc()
                status = 1
    finally:
        root.handlers[:] = handlers  # main's logging.basicConfig(force=True) replaced them
        root.setLevel(level)
    return subprocess.CompletedProcess(["pipeline", *arguments], status, out.getvalue(), err.getvalue())


def explain(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-4000:]}"


def folders(root: Path) -> list[str]:
    """``--set`` options that put work_dir and models_dir under ``root``."""
    return ["--set", f'work_dir="{root / "work"}"', "--set", f'models_dir="{root / "models"}"']


def assert_success(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, explain(result)
    assert "Traceback" not in result.stderr, explain(result)


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str, stdout_empty: bool = False) -> str:
    """Exit 2, no traceback, exactly one 'error:' line on stderr, nothing else but log records."""
    assert result.returncode == 2, explain(result)
    assert "Traceback" not in result.stderr + result.stdout, explain(result)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, explain(result)
    strays = [line for line in lines
              if not line.startswith("error:") and not LOG_RECORD.match(line)]  # no TensorFlow noise either
    assert strays == [], explain(result)
    for fragment in fragments:
        assert fragment in errors[0], explain(result)
    if stdout_empty:
        assert result.stdout == "", explain(result)
    return errors[0]


def write_csv(path: Path, rows: list[tuple[str, str]], header: str = "text,label", encoding: str = "utf-8") -> Path:
    """A small CSV corpus, one ``text,label`` row per pair."""
    path.write_bytes((header + "\n" + "".join(f"{text},{label}\n" for text, label in rows)).encode(encoding))
    return path


def write_classifier_run(folder: Path) -> Path:
    """A real (untrained) classifier run folder: model.keras, config.json, vocab.json, labels.json."""
    import numpy as np

    from pipeline import config as config_module
    from pipeline.classifier.model import build_classifier
    from pipeline.paths import RunPaths
    from pipeline.runs import write_run_metadata
    from pipeline.text.vocab import Vocabulary

    config = config_module.from_dict({"run_name": folder.name, "vectorize": {"vectors": "none"},
                                      "model": {"task": "classifier", "layers": [{"type": "gru", "units": 4}]}})
    vocab = Vocabulary(["<pad>", "<unk>", "京都", "の"])
    model = build_classifier(config.model, np.zeros((len(vocab), 8), np.float32), 2, seed=0)
    folder.mkdir(parents=True)
    model.save(RunPaths(folder).model)
    write_run_metadata(folder, config, vocab, ["a", "b"])
    return folder


def knb_config(name: str, work_dir: Path, models_dir: Path, *overrides: str):
    """tests/configs/<name>.toml on the shipped KNB corpus (found from any cwd), artifacts in the given folders."""
    from pipeline import config as config_module

    return config_module.load(TEST_CONFIGS / f"{name}.toml", [
        f'corpus.path="{REPOSITORY / "corpora" / "knb_blog"}"', f'work_dir="{work_dir}"',
        f'models_dir="{models_dir}"', *overrides])


# ------------------------------------------------------------------ tiny classifiers
VOCABULARY, DIMENSION, CLASSES = 20, 8, 3


def embedding_matrix(seed: int = 0):
    """A random ``(VOCABULARY, DIMENSION)`` matrix whose padding row 0 is zero."""
    import numpy as np

    matrix = np.random.default_rng(seed).normal(0.0, 0.5, size=(VOCABULARY, DIMENSION)).astype(np.float32)
    matrix[0] = 0.0
    return matrix


def classifier(layers, pooling="last", seed=0, **settings):
    """``build_classifier`` over ``layers`` (``[[model.layers]]`` tables) with CLASSES outputs."""
    from pipeline.classifier.model import build_classifier
    from pipeline.sections import ModelConfig

    model_settings = ModelConfig(layers=tuple(layers), pooling=pooling, **settings)
    return build_classifier(model_settings, embedding_matrix(), CLASSES, seed)


def token_ids(batch: int = 5, timesteps: int = 6, seed: int = 1):
    """Random non-padding ids ``(batch, timesteps)``."""
    import numpy as np

    return np.random.default_rng(seed).integers(1, VOCABULARY, size=(batch, timesteps)).astype(np.int32)


# Every command that is not a stage, as a user types it with its defaults (small sizes, but no --config,
# run_name or models_dir): each writes saved_models/<its own name>/, never the trained saved_models/default.
TOOL_COMMANDS = {
    "forecast": ["forecast", "--set", "forecast.units=100", "--set", "forecast.n_steps=1200",
                 "--set", "forecast.train_length=600", "--set", "forecast.test_length=200",
                 "--set", "forecast.generative_steps=100"],
    "lsm": ["lsm", "--set", "lsm.units=30", "--set", "lsm.train_patterns=24", "--set", "lsm.test_patterns=16",
            "--set", "lsm.pattern_duration=60.0", "--set", "lsm.train_length=120", "--set", "lsm.test_length=40",
            "--set", "lsm.washout=10", "--set", "lsm.steps_per_value=3"],
    "diagnose": ["diagnose", "gradients", "--set", "diagnose.timesteps=12", "--set", "diagnose.train_steps=1",
                 "--set", 'diagnose.architectures=["elman", "lstm"]'],
    "hopfield": ["hopfield", "--set", "hopfield.glyph_size=12"],
}


def tree_bytes(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (and every temporary dot-entry) with its bytes."""
    return {str(path.relative_to(folder)): path.read_bytes() if path.is_file() else b"<dir>"
            for path in sorted(folder.rglob("*"))}


# ------------------------------------------------------------------ the spiking (LIF) reservoir
# A small liquid that fires under sparse input spikes (tests/layers/test_lsm.py, test_reload.py)
SMALL_LIQUID = dict(units=12, connectivity=0.5, recurrent_weight=3.0, input_scaling=20.0, input_connectivity=0.5,
                    background_current=14.0, background_spread=1.0, dt=0.5, membrane_time_constant=20.0,
                    synaptic_time_constant=4.0, filter_time_constant=10.0, refractory_period=2.0,
                    rest_potential=-65.0, threshold=-50.0, reset_potential=-51.5, seed=3)


def input_spikes(shape, probability=0.05, seed=0):
    """Random input spikes (0.0 or 1.0, float64) of ``shape``, each 1 with ``probability``."""
    import numpy as np

    return (np.random.default_rng(seed).random(shape) < probability).astype("float64")
