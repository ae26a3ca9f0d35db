"""Tests of pipeline.distribution: TF_CONFIG parsing, the chief rule, each worker's share of the batches, and two
real workers on 127.0.0.1 (a classifier, killed and relaunched; a language model under a time limit)."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import REPOSITORY, TEST_CONFIGS, cli_here, explain

from pipeline import config as config_module
from pipeline.distribution import (
    Distribution,
    WorkerShare,
    cluster_task,
    is_chief_task,
    local_tf_configs,
    make_distribution,
    tf_config,
)
from pipeline.errors import PipelineError
from pipeline.paths import RunPaths
from pipeline.text.batches import SequenceBatches

RUN_FILES = ("model.keras", "config.json", "vocab.json", "labels.json", "history.csv")


def test_cluster_task_reads_tf_config():
    cluster, task_type, index = cluster_task({"TF_CONFIG": tf_config(["127.0.0.1:1", "127.0.0.1:2"], 1)})
    assert cluster == {"worker": ["127.0.0.1:1", "127.0.0.1:2"]} and (task_type, index) == ("worker", 1)


@pytest.mark.parametrize("value, fragment", [("", "needs the TF_CONFIG"), ("{", "TF_CONFIG is not valid"),
                                             ('{"cluster": {}}', "TF_CONFIG is not valid"),
                                             (tf_config(["127.0.0.1:1"], 3), "out of range")])
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


def worker_shares(count: int, batch_size: int, workers: int) -> list[WorkerShare]:
    """The shares of ``workers`` one-replica workers of one seed's batches of ``count`` sentences."""
    lengths = np.random.default_rng(0).integers(1, 30, count)
    return [WorkerShare(SequenceBatches([np.ones(n, np.int32) for n in lengths], np.zeros(count, np.int64),
                                        batch_size, 100, np.random.default_rng(7)), range(worker, worker + 1), workers)
            for worker in range(workers)]


@pytest.mark.parametrize("count", [101, 97])  # 97 = 3 x 32 + 1: the last batch has fewer rows than workers
def test_each_worker_reads_its_own_rows_of_every_batch(count):
    shares = worker_shares(count, 32, 2)
    for _ in range(2):  # and again after the next epoch's shuffle
        rows = [share.rows() for share in shares]
        assert len(np.intersect1d(*rows)) == 0 and sorted(np.concatenate(rows)) == list(range(count))
        assert [len(each) for each in rows] == [(count + 1) // 2, count // 2]
        assert len(shares[0]) == len(shares[1]) and min(len(share.dataset.batches[i]) for share in shares
                                                        for i in range(len(share))) >= 1  # every step has rows
        for share in shares:
            share.on_epoch_end()


def test_one_worker_reads_every_batch_as_it_is():
    batches = SequenceBatches([np.ones(3, np.int32)] * 5, np.zeros(5, np.int64), 2, 10)
    assert Distribution().share(batches) is batches and Distribution().feed(batches) == (batches, [])


def test_a_share_reads_a_copy_and_the_batches_keep_every_row():
    """What the classifier's train does on worker 1 of 2: its share of the validation batches (fixed order, so
    the same in every epoch) reads a copy, and the batches themselves still predict every row afterwards."""
    validation = SequenceBatches([np.full(n % 5 + 1, n + 1, np.int32) for n in range(11)], None, 4, 10)
    plan = [rows.copy() for rows in validation.batches]
    worker = Distribution(kind="multi_worker", replicas=2, worker=1, workers=2)
    share = worker.share(validation)
    assert sorted(share.rows()) == list(range(1, 11, 2)) and len(share) == len(plan)
    assert all(np.array_equal(ours, theirs) for ours, theirs in zip(validation.batches, plan, strict=True))
    assert Distribution().feed_validation(validation) is validation and Distribution().feed_validation(None) is None


def test_a_stateful_language_model_is_not_distributed():
    config_module.load(TEST_CONFIGS / "generator_small.toml", ['train.distribute="multi_worker"'])  # sentences: fine
    with pytest.raises(PipelineError, match="'train.distribute' = 'multi_worker' is invalid.*tbptt"):
        config_module.load(TEST_CONFIGS / "generator_tbptt.toml", ['train.distribute="multi_worker"'])


def launch(options: list[str], logs: Path, count: int = 2, *per_worker: list[str]) -> list[subprocess.Popen]:
    """``count`` `pipeline train` workers on 127.0.0.1 (TF_CONFIG), logs in ``logs/worker<i>.log``;
    ``per_worker[i]``: more options for worker i."""
    configs = local_tf_configs(count)
    logs.mkdir(parents=True, exist_ok=True)
    return [subprocess.Popen([sys.executable, "-m", "pipeline", "train", *options,
                              "--set", 'train.distribute="multi_worker"', *(per_worker[index] if per_worker else [])],
                             cwd=REPOSITORY, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=(logs / f"worker{index}.log").open("w"),
                             env={**os.environ, "TF_CONFIG": configs[index]}) for index in range(count)]


def finished(workers: list[subprocess.Popen], logs: Path, timeout: float = 300) -> list[str]:
    """Each worker's log once all exited 0."""
    for worker in workers:
        worker.wait(timeout=timeout)
    texts = [(logs / f"worker{index}.log").read_text() for index in range(len(workers))]
    for worker, text in zip(workers, texts):
        assert worker.returncode == 0, f"exit {worker.returncode}\n{text[-4000:]}"
    return texts


def examples_read(log: str) -> list[int]:
    return [int(count) for count in re.findall(r"worker \d of 2 read (\d+) training examples", log)]


@pytest.mark.slow
def test_two_workers_share_the_data_survive_a_killed_worker_and_match_one_worker(small_work_dir, small_trained,
                                                                                  tmp_path):
    """Two `pipeline train` processes of a small classifier: worker 1 is killed (SIGKILL) in epoch 2 and the
    chief stops with one line instead of waiting; relaunched, both resume after epoch 1 from the chief's saved
    state, each reads its half of the training sentences, and the chief's run folder is complete, with the
    metrics of one worker (the same global batches: ``small_trained``, the same config on one worker)."""
    models = tmp_path / "models"
    corpus = REPOSITORY / "corpora" / "knb_blog"
    options = ["--config", str(TEST_CONFIGS / "small.toml"), "--set", f'corpus.path="{corpus}"',
               "--set", f'work_dir="{small_work_dir}"', "--set", f'models_dir="{models}"',
               "--set", 'run_name="two_workers"']
    upstream = cli_here("pretrain", *options)  # every stage before train, once, so the workers only read them
    assert upstream.returncode == 0, explain(upstream)
    workers = launch(options, tmp_path / "killed")
    log_1 = tmp_path / "killed" / "worker1.log"
    deadline = time.monotonic() + 240
    while "epoch 1: worker 1 of 2 read" not in log_1.read_text() and time.monotonic() < deadline:
        assert workers[1].poll() is None, log_1.read_text()[-4000:]
        time.sleep(0.1)
    workers[1].send_signal(signal.SIGKILL)
    workers[0].wait(timeout=120)  # the chief notices (a broken connection, or the cluster's heartbeat) and stops
    chief_log = (tmp_path / "killed" / "worker0.log").read_text()
    assert workers[0].returncode == 2 and "error: a worker of the cluster stopped" in chief_log, chief_log[-4000:]
    assert "training resumes after epoch 1" in chief_log

    logs = finished(launch(options, tmp_path / "relaunched"), tmp_path / "relaunched")
    for text in logs:
        assert "resuming training after epoch 1" in text, text[-4000:]
    train_count = int(re.search(r"(\d+) training / \d+ validation sentences", logs[0])[1])
    reads = [examples_read(text) for text in logs]  # epoch 2, per worker
    assert len(reads[0]) == len(reads[1]) == 1 and reads[0][0] + reads[1][0] == train_count
    assert abs(reads[0][0] - reads[1][0]) <= 1
    run = RunPaths(models / "two_workers")
    for name in RUN_FILES:
        assert (run.root / name).is_file(), name
    # nothing from worker 1 (hidden entries are the stages' lock files)
    assert sorted(path.name for path in models.iterdir() if not path.name.startswith(".")) == ["two_workers"]
    both, alone = pd.read_csv(run.history), pd.read_csv(RunPaths(small_trained[1]).history)
    assert len(both) == len(alone) == 2
    for column in ("loss", "val_loss"):
        assert np.allclose(both[column], alone[column], atol=0.005), (both, alone)


@pytest.mark.slow
def test_two_workers_train_a_language_model_and_stop_together(tmp_path):
    """A small (character) language model on two workers; worker 1 alone reaches a (tiny) time limit, as a
    slower clock would: both stop after epoch 1 of 2, and the chief writes the run folder."""
    work, models = tmp_path / "work", tmp_path / "models"
    options = ["--config", str(TEST_CONFIGS / "generator_small.toml"), "--set", f'work_dir="{work}"',
               "--set", f'models_dir="{models}"', "--set", "train.epochs=2",
               "--set", 'tokenize.method="char"']  # characters: no GiNZA to load
    upstream = cli_here("vectorize", *options)
    assert upstream.returncode == 0, explain(upstream)
    logs = finished(launch(options, tmp_path / "logs", 2, [], ["--set", "train.time_limit_minutes=0.0001"]),
                    tmp_path / "logs")
    assert "stopping after epoch 1 with the other workers" in logs[0], logs[0][-4000:]
    assert "time limit: stopping after epoch 1" in logs[1], logs[1][-4000:]
    reads = [examples_read(text) for text in logs]
    assert len(reads[0]) == len(reads[1]) == 1 and abs(reads[0][0] - reads[1][0]) <= 1
    run = RunPaths(models / "generator_small")
    for name in RUN_FILES:
        assert (run.root / name).is_file(), name
    assert len(pd.read_csv(run.history)) == 1
