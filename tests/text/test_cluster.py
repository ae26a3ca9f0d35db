"""The Dask driver of the tokenize stage (pipeline.text.cluster) on a real local cluster of two worker processes.

One test: starting the cluster and loading the tokenizer in each spawned worker costs most of its 10-20 seconds.
"""

import psutil
import pytest
from helpers import knb_config

from pipeline import stages
from pipeline.errors import PipelineError
from pipeline.paths import Paths
from pipeline.text import cluster


def test_a_local_cluster_of_two_workers_writes_the_bytes_of_one_process(tmp_path):
    one, dask = (knb_config("small", tmp_path / name, tmp_path / "models", "tokenize.shard_rows=50")
                 for name in ("one", "dask"))
    stages.run_stage("tokenize", one)
    stages.run_stage("prepare", dask)
    with cluster.dask_runner("local:2"):
        assert stages.run_stage("tokenize", dask)["skipped"] is False
    assert Paths.from_config(dask).tokens.read_bytes() == Paths.from_config(one).tokens.read_bytes()
    left = [" ".join(child.cmdline()) for child in psutil.Process().children(recursive=True)]
    assert [command for command in left if "resource_tracker" not in command] == [], left  # the workers are gone
    with pytest.raises(PipelineError, match="give local:N"):
        cluster.check_address("tcp://no-port")
