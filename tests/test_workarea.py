"""Tests of pipeline.workarea: the folder locks, the staging folder and its publication, the resume marker.

The real-process checks (SIGKILL and SIGINT sent to ``pipeline run``, a second process on a locked
folder) are in ``tests/test_cli_interrupt.py``.
"""

import subprocess
import sys

import pytest

from pipeline import config as config_module
from pipeline import workarea
from pipeline.errors import PipelineError
from pipeline.paths import Paths

HOLDER = ("import filelock, sys, time; lock = filelock.FileLock(sys.argv[1]); lock.acquire(); "
          "print('held', flush=True); time.sleep(120)")


def small_config(root):
    return config_module.from_dict({"run_name": "tiny", "work_dir": str(root / "work"),
                                    "models_dir": str(root / "models"), "corpus": {"path": str(root / "c.csv")}})


def test_hold_stops_with_one_line_naming_the_busy_folder_and_a_killed_holder_frees_it(tmp_path, monkeypatch):
    config = small_config(tmp_path)
    paths = Paths.from_config(config)
    paths.work.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(paths.work_lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setattr(workarea, "LOCK_WAIT_SECONDS", 0.2)
        with pytest.raises(PipelineError, match="another `pipeline` process is working on this folder") as raised:
            with workarea.hold(config):
                pass
        assert str(paths.work) in str(raised.value) and "\n" not in str(raised.value)
    finally:
        holder.kill()  # SIGKILL: the kernel releases its lock
        holder.wait()
    with workarea.hold(config) as held:
        with workarea.hold(config):  # nested: free, no deadlock on our own lock
            assert held == paths
    assert workarea._held == {}


@pytest.mark.parametrize("value, seconds", [(None, workarea.LOCK_WAIT_SECONDS), ("", workarea.LOCK_WAIT_SECONDS),
                                            ("0", 0.0), (" 2.5 ", 2.5), ("600", 600.0)])
def test_the_lock_wait_comes_from_the_environment_or_the_default(monkeypatch, value, seconds):
    monkeypatch.delenv(workarea.LOCK_WAIT_VARIABLE, raising=False)
    if value is not None:
        monkeypatch.setenv(workarea.LOCK_WAIT_VARIABLE, value)
    assert workarea.lock_wait_seconds() == seconds


@pytest.mark.parametrize("value", ["-1", "ten", "nan", "inf"])
def test_a_bad_lock_wait_is_one_line_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv(workarea.LOCK_WAIT_VARIABLE, value)
    with pytest.raises(PipelineError, match=f"PIPELINE_LOCK_WAIT_SECONDS='{value}'.*0 or more") as raised:
        workarea.lock_wait_seconds()
    assert "\n" not in str(raised.value)


def test_hold_removes_what_killed_processes_left(tmp_path):
    config = small_config(tmp_path)
    paths = Paths.from_config(config)
    stale = paths.work / "staging" / ".tiny.4206604.abcdefgh.building"
    stale.mkdir(parents=True)
    with workarea.hold(config):
        assert not stale.exists()


def test_evaluate_works_on_a_copy_and_publish_replaces_the_run_folder_in_one_go(tmp_path):
    paths = Paths.from_config(small_config(tmp_path))
    assert workarea.current(paths) == paths
    paths.run.mkdir(parents=True)
    (paths.run / "model.keras").write_text("trained", encoding="utf-8")
    staged = workarea.stage_from_published(paths)
    assert staged.run == paths.staging and workarea.current(paths) == staged
    (staged.run / "metrics.json").write_text("{}", encoding="utf-8")
    assert sorted(p.name for p in paths.run.iterdir()) == ["model.keras"]  # untouched until published
    workarea.publish(small_config(tmp_path), paths)
    assert sorted(p.name for p in paths.run.iterdir()) == ["metrics.json", "model.keras"]
    assert not paths.staging.exists() and workarea.current(paths) == paths


def test_saved_training_state_is_kept_only_for_the_same_fingerprint_without_force(tmp_path):
    paths = Paths.from_config(small_config(tmp_path))
    workarea.reset_resume(paths, "digest-a", force=False)
    paths.resume.mkdir(parents=True)
    (paths.resume / "state.json").write_text("{}", encoding="utf-8")
    workarea.reset_resume(paths, "digest-a", force=False)
    assert (paths.resume / "state.json").is_file()
    workarea.reset_resume(paths, "digest-a", force=True)
    assert not paths.resume.exists()
    paths.resume.mkdir()
    workarea.reset_resume(paths, "digest-b", force=False)
    assert not paths.resume.exists()


def test_a_run_of_another_kind_is_replaced_only_with_force(tmp_path):
    folder = tmp_path / "models" / "default"
    assert workarea.run_kind(folder) is None
    workarea.check_replace(folder, "forecast", force=False)  # nothing there: anything may be written
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model": {"task": "classifier"}}', encoding="utf-8")
    assert workarea.run_kind(folder) == "classifier"  # a run folder from before run.json
    workarea.check_replace(folder, "classifier", force=False)
    with pytest.raises(PipelineError, match=r"holds a classifier run, not a forecast run; .*--force") as raised:
        workarea.check_replace(folder, "forecast", force=False)
    assert str(folder) in str(raised.value) and "\n" not in str(raised.value)
    workarea.check_replace(folder, "forecast", force=True)
    workarea.mark_run(folder, "lsm")
    assert workarea.run_kind(folder) == "lsm"  # run.json wins over config.json
    other = tmp_path / "models" / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine", encoding="utf-8")
    assert workarea.run_kind(other) == "unknown"
    with pytest.raises(PipelineError, match="holds a unknown run"):
        workarea.check_replace(other, "lsm", force=False)


def test_new_run_publishes_a_complete_folder_and_an_error_keeps_the_old_one(tmp_path):
    folder = tmp_path / "models" / "forecast"
    with workarea.new_run(folder, "forecast") as building:
        assert building.parent == folder.parent and building != folder
        (building / "metrics.json").write_text("{}", encoding="utf-8")
    assert sorted(path.name for path in folder.iterdir()) == ["metrics.json", "run.json"]
    assert workarea.run_kind(folder) == "forecast"
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    with pytest.raises(RuntimeError):
        with workarea.new_run(folder, "forecast") as building:
            (building / "metrics.json").write_text('{"half": true}', encoding="utf-8")
            raise RuntimeError("the tool failed half way")
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before
    assert [path.name for path in folder.parent.iterdir()] == ["forecast"]  # no temporary folder left
    with pytest.raises(PipelineError, match="holds a forecast run, not a lsm run"):
        with workarea.new_run(folder, "lsm"):
            raise AssertionError("must not be reached")
    assert workarea._held == {}


WRITER = """
import sys, time
from pathlib import Path
from pipeline import workarea
with workarea.new_run(Path(sys.argv[1]), "forecast") as building:
    (building / "metrics.json").write_text("{}", encoding="utf-8")
    print("building", flush=True)
    time.sleep(120)
"""


def test_a_tool_killed_while_it_builds_its_run_leaves_the_old_run_and_the_next_one_cleans_up(tmp_path):
    folder = tmp_path / "models" / "forecast"
    with workarea.new_run(folder, "forecast") as building:
        (building / "metrics.json").write_text('{"old": true}', encoding="utf-8")
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "building"
    finally:
        writer.kill()  # SIGKILL inside the block: the folder it built is left beside the run
        writer.wait()
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before
    assert len(list(folder.parent.glob(".forecast.*.building"))) == 1
    with workarea.new_run(folder, "forecast") as building:  # the next writer removes the dead one's folder
        (building / "metrics.json").write_text('{"new": true}', encoding="utf-8")
    assert sorted(path.name for path in folder.parent.iterdir()) == ["forecast"]
    assert (folder / "metrics.json").read_text(encoding="utf-8") == '{"new": true}'
