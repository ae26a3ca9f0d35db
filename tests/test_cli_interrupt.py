"""A killed ``pipeline run`` loses nothing: real SIGKILL and SIGINT sent to a real ``pipeline`` process.

tests/configs/interrupt.toml on a small table corpus the tests write (character tokens, random vectors,
a GRU over several short epochs) keeps every process at a few seconds. The checks:

* SIGKILL mid-training of a first run: the finished stages stay recorded and nothing is published;
  the rerun continues after the last finished epoch and ends with the same history and metrics as
  an uninterrupted run with the same seed, leaving no temporary files or training state behind;
* SIGKILL and SIGINT mid-training of ``run --force`` over a complete run: the run folder is byte for
  byte the one before and the lock file still records it;
* SIGKILL mid-tokenize: the prepared table stays, nothing else appears;
* a second process on a locked work folder stops with one line;
* SIGKILL of every tool command (forecast, lsm, diagnose, hopfield) while it imports and while it
  writes its run folder: every existing run folder stays byte for byte as it was.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
from filelock import FileLock
from helpers import (
    REPOSITORY,
    TOOL_COMMANDS,
    assert_success,
    assert_user_error,
    cli,
    cli_here,
    explain,
    folders,
    tree_bytes,
    write_csv,
)

from pipeline import io as artifact_io
from pipeline import workarea
from pipeline.paths import lock_file

pytestmark = pytest.mark.slow

CONFIG = "tests/configs/interrupt.toml"
FOOD = ["ラーメン", "寿司", "天ぷら", "うどん", "カレー", "焼肉", "そば", "餃子"]
SPORT = ["野球", "サッカー", "テニス", "相撲", "卓球", "水泳", "柔道", "陸上"]
ENDINGS = ["が好きです。", "を楽しみました。", "は最高だった。", "について話した。", "を見に行きます。"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Two themes, 240 rows; a few sentences mention the other theme's words too."""
    rows = []
    for index in range(240):
        theme, words, others = ("food", FOOD, SPORT) if index % 2 else ("sport", SPORT, FOOD)
        extra = others[index % 8] if index % 5 == 0 else words[(index // 3) % 8]
        rows.append((f"{words[index % 8]}と{extra}{ENDINGS[(index // 2) % 5]}{'！' * (index % 3)}", theme))
    return write_csv(tmp_path_factory.mktemp("interrupt-corpus") / "themes.csv", sorted(set(rows)))


def arguments(root: Path, corpus: Path, *extra: str) -> list[str]:
    return ["run", CONFIG, "--set", f'corpus.path="{corpus}"', *folders(root), *extra]


def start(root: Path, corpus: Path, *extra: str) -> subprocess.Popen:
    """``pipeline run`` in the background; its stderr goes to ``root/stderr.log``."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "stderr.log", "w", encoding="utf-8") as log:
        return subprocess.Popen([sys.executable, "-m", "pipeline", *arguments(root, corpus, *extra)], cwd=REPOSITORY,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)


def wait_until(process: subprocess.Popen, condition, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the process ended (exit {process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def saved_epochs(root: Path) -> int:
    """Epochs in the training state that the running process saved (0 when none yet)."""
    try:
        return artifact_io.read_json(root / "work" / "themes" / "resume" / "interrupt" / "state.json")["epoch"]
    except (FileNotFoundError, ValueError, KeyError):
        return 0


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def run_records(work: Path) -> dict:
    """The lock-file entries of the run stages: what says the run folder is up to date."""
    recorded = json.loads((work / "pipeline.lock.json").read_text(encoding="utf-8"))
    return {key: entry for key, entry in recorded.items() if key.startswith(("train:", "evaluate:"))}


def temporaries(root: Path) -> list[str]:
    """Temporary files and folders (``.<name>.<pid>.<random>.tmp|building|old``) anywhere under root."""
    return [str(path) for path in root.rglob(".*") if artifact_io.TEMPORARY_NAME.match(path.name)]


@pytest.fixture(scope="module")
def uninterrupted(corpus, tmp_path_factory) -> Path:
    """The root of one complete, uninterrupted ``pipeline run``."""
    root = tmp_path_factory.mktemp("uninterrupted")
    assert_success(cli_here(*arguments(root, corpus)))
    return root


def test_sigkill_mid_training_keeps_finished_stages_and_the_rerun_resumes_to_the_same_metrics(corpus, tmp_path,
                                                                                              uninterrupted):
    process = start(tmp_path, corpus)
    wait_until(process, lambda: saved_epochs(tmp_path) >= 2, "the end of epoch 2")
    process.send_signal(signal.SIGKILL)
    process.wait()
    work = tmp_path / "work" / "themes"
    recorded = json.loads((work / "pipeline.lock.json").read_text(encoding="utf-8"))
    assert {"prepare", "tokenize", "vectorize"} <= set(recorded)
    assert not (tmp_path / "models" / "interrupt").exists()  # nothing half-done was published
    killed_at = saved_epochs(tmp_path)

    rerun = cli_here(*arguments(tmp_path, corpus))  # (in this process: a fresh one adds nothing here)
    assert_success(rerun)
    assert f"resuming training after epoch {killed_at}" in rerun.stderr, explain(rerun)
    for stage in ("prepare", "tokenize", "vectorize"):
        assert f"{stage}: up to date" in rerun.stderr, explain(rerun)
    resumed, reference = tmp_path / "models" / "interrupt", uninterrupted / "models" / "interrupt"
    assert (resumed / "history.csv").read_text() == (reference / "history.csv").read_text()
    assert json.loads((resumed / "metrics.json").read_text()) == json.loads((reference / "metrics.json").read_text())
    assert (resumed / "confusion_matrix.csv").is_file() and (resumed / "plots" / "training_curves.png").is_file()
    assert temporaries(tmp_path) == []
    assert not (work / "resume" / "interrupt").exists() and not (work / "staging" / "interrupt").exists()


@pytest.mark.parametrize("signal_number", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_killed_forced_retraining_leaves_the_previous_run_folder_untouched(corpus, uninterrupted, signal_number):
    run_folder, work = uninterrupted / "models" / "interrupt", uninterrupted / "work" / "themes"
    before, recorded_before = snapshot(run_folder), run_records(work)
    shutil.rmtree(work / "resume" / "interrupt", ignore_errors=True)  # what an earlier killed test left
    # more epochs and no early stopping: the process is still training when the signal comes, however fast
    process = start(uninterrupted, corpus, "--force", "--set", "train.epochs=60", "--set", "train.patience=0")
    wait_until(process, lambda: saved_epochs(uninterrupted) >= 1, "the end of the first forced epoch")
    process.send_signal(signal_number)
    assert process.wait(timeout=120) == (130 if signal_number == signal.SIGINT else -signal.SIGKILL)
    assert snapshot(run_folder) == before
    assert run_records(work) == recorded_before  # (--force re-ran prepare .. vectorize: same contents)
    if signal_number == signal.SIGINT:  # Python cleans up on the way out; after SIGKILL the next run does
        stderr = (uninterrupted / "stderr.log").read_text(encoding="utf-8")
        assert "interrupted" in stderr and "Traceback" not in stderr, stderr[-3000:]
        assert temporaries(uninterrupted) == []


def test_sigkill_mid_tokenize_keeps_the_prepared_table(corpus, tmp_path):
    process = start(tmp_path, corpus, "--set", 'tokenize.method="ginza"')  # loading GiNZA takes seconds
    wait_until(process, lambda: "tokenize: running" in (tmp_path / "stderr.log").read_text(encoding="utf-8"),
               "the tokenize stage")
    process.send_signal(signal.SIGKILL)
    process.wait()
    work = tmp_path / "work" / "themes"
    recorded = json.loads((work / "pipeline.lock.json").read_text(encoding="utf-8"))
    assert set(recorded) == {"prepare"}
    prepared = work / "prepared.parquet"
    assert recorded["prepare"]["outputs"][str(prepared)] == [prepared.stat().st_size, prepared.stat().st_mtime_ns]
    assert not (work / "tokens.parquet").exists() and not (tmp_path / "models" / "interrupt").exists()


def test_a_second_process_on_a_locked_work_folder_stops_with_one_line(corpus, tmp_path):
    work = tmp_path / "work" / "themes"
    work.mkdir(parents=True)
    # as a running `pipeline` process holds it; the second waits a second (PIPELINE_LOCK_WAIT_SECONDS), not ten
    with FileLock(lock_file(work)), mock.patch.dict(os.environ, {workarea.LOCK_WAIT_VARIABLE: "1"}):
        result = cli("prepare", "--config", CONFIG, "--set", f'corpus.path="{corpus}"', *folders(tmp_path))
    assert_user_error(result, str(work), "another `pipeline` process")
    assert not (work / "prepared.parquet").exists()


@pytest.mark.parametrize("tool, moment", [("forecast", "start"), ("forecast", "building"), ("lsm", "building"),
                                          ("diagnose", "building"), ("hopfield", "building")])
def test_a_tool_killed_at_any_moment_leaves_every_run_intact(uninterrupted, tmp_path, tool, moment):
    """``moment``: "start", as soon as the process exists (it is starting Python and importing), or "building",
    as soon as its new run folder appears beside the others (the files are being written)."""
    models = tmp_path / "saved_models"
    shutil.copytree(uninterrupted / "models" / "interrupt", models / "default")
    with workarea.new_run(models / tool, "hopfield") as building:  # an older run under the tool's name
        (building / "hopfield.json").write_text('{"older": true}', encoding="utf-8")
    before = {folder.name: tree_bytes(folder) for folder in models.iterdir()}
    process = subprocess.Popen([sys.executable, "-m", "pipeline", *TOOL_COMMANDS[tool], "--force"], cwd=tmp_path,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if moment == "building":
        wait_until(process, lambda: any(models.glob(f".{tool}.*.building")), "the tool's new run folder")
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert {folder.name: tree_bytes(folder) for folder in models.iterdir() if not folder.name.startswith(".")} \
        == before
    # the next run of any tool cleans up and publishes (the same new_run for all; hopfield is the quickest)
    assert_success(cli_here(*TOOL_COMMANDS["hopfield"], "--set", f"run_name={tool}", "--force", cwd=tmp_path))
    assert json.loads((models / tool / "run.json").read_text(encoding="utf-8"))["kind"] == "hopfield"
    assert tree_bytes(models / "default") == before["default"] and temporaries(tmp_path) == []
