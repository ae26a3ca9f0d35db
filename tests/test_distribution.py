"""Tests of pipeline.distribution: TF_CONFIG parsing, the chief rule, and two real workers on 127.0.0.1."""

import json
import os
import socket
import subprocess
import sys

import pandas as pd
import pytest
from helpers import REPOSITORY, TEST_CONFIGS, cli, explain

from pipeline.distribution import Distribution, cluster_task, is_chief_task, make_distribution
from pipeline.errors import PipelineError
from pipeline.paths import RunPaths

RUN_FILES = ("model.keras", "config.json", "vocab.json", "labels.json", "history.csv")


def tf_config(ports: list[int], index: int) -> str:
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
                       "task": {"type": "worker", "index": index}})


def free_ports(count: int) -> list[int]:
    """Ports the system has just handed out (bound to port 0, then released)."""
    sockets = [socket.socket() for _ in range(count)]
    for each in sockets:
        each.bind(("127.0.0.1", 0))
    ports = [each.getsockname()[1] for each in sockets]
    for each in sockets:
        each.close()
    return ports


def test_cluster_task_reads_tf_config():
    cluster, task_type, index = cluster_task({"TF_CONFIG": tf_config([1, 2], 1)})
    assert cluster == {"worker": ["127.0.0.1:1", "127.0.0.1:2"]} and (task_type, index) == ("worker", 1)


@pytest.mark.parametrize("value, fragment", [("", "needs the TF_CONFIG"), ("{", "TF_CONFIG is not valid"),
                                             ('{"cluster": {}}', "TF_CONFIG is not valid"),
                                             (tf_config([1], 3), "out of range")])
def test_bad_tf_config_is_a_pipeline_error(value, fragment):
    with pytest.raises(PipelineError, match=fragment):
        cluster_task({"TF_CONFIG": value})


def test_the_chief_is_worker_0_unless_a_chief_is_named():
    assert is_chief_task({"worker": ["a", "b"]}, "worker", 0)
    assert not is_chief_task({"worker": ["a", "b"]}, "worker", 1)
    assert not is_chief_task({"chief": ["c"], "worker": ["a"]}, "worker", 0)
    assert is_chief_task({"chief": ["c"], "worker": ["a"]}, "chief", 0)


def test_none_is_plain_training(tmp_path):
    distribution = make_distribution("none", 1)
    assert distribution == Distribution() and distribution.is_chief and distribution.replicas == 1
    with distribution.output_folder(tmp_path / "run") as folder:
        (folder / "file").write_text("x")
    assert (tmp_path / "run" / "file").is_file()


def test_a_worker_writes_into_a_temporary_folder_that_is_deleted(tmp_path):
    with Distribution("multi_worker", is_chief=False).output_folder(tmp_path / "run") as folder:
        (folder / "model.keras").write_text("x")
    assert not folder.exists() and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_two_workers_train_a_small_classifier_to_completion(small_work_dir, tmp_path):
    """Two `pipeline train` processes on 127.0.0.1 with TF_CONFIG: both exit 0, the chief's run folder is
    complete, and its metrics are those of one worker within noise (the same global batches)."""
    models = tmp_path / "models"
    corpus = REPOSITORY / "corpora" / "knb_blog"
    options = ["--config", str(TEST_CONFIGS / "small.toml"), "--set", f'corpus.path="{corpus}"',
               "--set", f'work_dir="{small_work_dir}"', "--set", f'models_dir="{models}"', "--set", "train.epochs=1"]
    upstream = cli("pretrain", *options)  # every stage before train, once, so the workers only read them
    assert upstream.returncode == 0, explain(upstream)
    ports = free_ports(2)
    workers = [subprocess.Popen([sys.executable, "-m", "pipeline", "train", *options,
                                 "--set", 'train.distribute="multi_worker"', "--set", 'run_name="two_workers"'],
                                cwd=REPOSITORY, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "TF_CONFIG": tf_config(ports, index)}) for index in (0, 1)]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (stdout, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, f"exit {worker.returncode}\n{stdout[-2000:]}\n{stderr[-4000:]}"
    run = RunPaths(models / "two_workers")
    for name in RUN_FILES:
        assert (run.root / name).is_file(), name
    # nothing from worker 1 (hidden entries are the stages' lock files)
    assert sorted(path.name for path in models.iterdir() if not path.name.startswith(".")) == ["two_workers"]
    one = cli("train", *options, "--set", 'run_name="one_worker"')
    assert one.returncode == 0, explain(one)
    both, alone = pd.read_csv(run.history), pd.read_csv(RunPaths(models / "one_worker").history)
    assert len(both) == len(alone) == 1
    assert abs(both["val_loss"][0] - alone["val_loss"][0]) < 0.01
    assert abs(both["loss"][0] - alone["loss"][0]) < 0.01
