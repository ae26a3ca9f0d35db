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
