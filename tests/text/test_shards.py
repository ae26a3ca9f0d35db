"""The tokenize stage in shards (pipeline.text.shards): same table as one shard, resuming after a kill, --shard I/N.

The shipped corpus (1,241 sentences) in shards of 50 sentences (25 shards). Worker processes are forked from this
one (the tokenizer's model already loaded) and run the real CLI entry point, so each costs no start-up.
"""

import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pandas as pd
import pyarrow.parquet as pq
import pytest
from helpers import REPOSITORY, TEST_CONFIGS, knb_config

from pipeline import front_end, stages
from pipeline.paths import Paths
from pipeline.text import shards
from pipeline.text.tokenize import tokenize_table

SHARD_ROWS = 50


def small(root, *overrides):
    return knb_config("small", root / "work", root / "models", f"tokenize.shard_rows={SHARD_ROWS}", *overrides)


def cli_arguments(config_root, *extra):
    """``pipeline tokenize`` of :func:`small` in ``config_root`` (the CLI's own options)."""
    settings = {"corpus.path": f'"{REPOSITORY / "corpora" / "knb_blog"}"', "work_dir": f'"{config_root / "work"}"',
                "models_dir": f'"{config_root / "models"}"', "tokenize.shard_rows": str(SHARD_ROWS)}
    options = [item for key, value in settings.items() for item in ("--set", f"{key}={value}")]
    return ["tokenize", "--config", str(TEST_CONFIGS / "small.toml"), *options, *extra]


def _main(arguments):
    from pipeline.cli import main

    sys.exit(main(arguments))


def fork_cli(arguments) -> multiprocessing.Process:
    """The CLI in a forked process (started)."""
    process = multiprocessing.get_context("fork").Process(target=_main, args=(arguments,))
    process.start()
    return process


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> bytes:
    """tokens.parquet of an uninterrupted run in one process (shards of 50)."""
    config = small(tmp_path_factory.mktemp("reference"))
    stages.run_stage("tokenize", config)
    return Paths.from_config(config).tokens.read_bytes()


def prepared(root):
    config = small(root)
    stages.run_stage("prepare", config)
    return config, Paths.from_config(config)


def test_shards_give_the_table_of_one_shard_and_of_the_tokenizer_in_memory(reference, tmp_path):
    config, paths = prepared(tmp_path / "sharded")
    stages.run_stage("tokenize", config)
    assert paths.tokens.read_bytes() == reference
    assert pq.ParquetFile(paths.tokens).metadata.num_row_groups == 25  # one row group a shard
    assert not (paths.work / shards.SHARDS).exists()  # merged, then removed
    whole = small(tmp_path / "whole", "tokenize.shard_rows=100000")
    stages.run_stage("tokenize", whole)
    table = pd.read_parquet(paths.tokens)
    pd.testing.assert_frame_equal(table, pd.read_parquet(Paths.from_config(whole).tokens))
    in_memory = tokenize_table(pd.read_parquet(paths.prepared), config.tokenize)
    pd.testing.assert_frame_equal(table, in_memory)


def test_two_processes_over_whole_shards_write_the_same_bytes(reference, tmp_path):
    config, paths = prepared(tmp_path)
    two = replace(config, tokenize=replace(config.tokenize, processes=2))
    assert stages.fingerprint(stages.STAGES["tokenize"], two, paths) == front_end.tokenize_job(config, paths).digest
    stages.run_stage("tokenize", two)
    assert paths.tokens.read_bytes() == reference


def test_few_shards_are_cut_into_slices_for_the_workers_and_joined_into_the_same_bytes(tmp_path, caplog):
    """Two shards of 700 and 541 rows on 2 workers: 2 slices a shard (4 tasks, none under 256 rows); the joined
    shard files and so tokens.parquet are byte for byte one process's. A slice left by a killed run is used."""
    whole = small(tmp_path / "one", "tokenize.shard_rows=700")
    stages.run_stage("tokenize", whole)
    config = small(tmp_path / "two", "tokenize.shard_rows=700", "tokenize.processes=2")
    paths = Paths.from_config(config)
    stages.run_stage("prepare", config)
    job = front_end.tokenize_job(config, paths)
    shards.tokenize_shards(job.in_one_process(), [1], piece=(0, 2))  # as a killed run leaves it
    assert job.piece_path(1, 0, 2).is_file() and not job.path(1).exists()
    with caplog.at_level(logging.INFO, logger="pipeline.text.shards"):
        stages.run_stage("tokenize", config)
    assert "2 shards in 2 slices each over 2 processes" in caplog.text
    assert paths.tokens.read_bytes() == Paths.from_config(whole).tokens.read_bytes()
    assert not (paths.work / shards.SHARDS).exists()


@pytest.mark.parametrize(("rows", "workers", "pieces"), [
    ([20000] * 5, 2, 2),  # 10 tasks: 5 and 5 instead of 3 and 2 shards
    ([20000] * 50, 2, 1),  # enough shards
    ([20000] * 2, 4, 8),
    ([300, 41], 2, 1),  # slices would be under MIN_PIECE_ROWS
    ([1000], 2, 3),
])
def test_shard_pieces_gives_each_worker_several_tasks_of_enough_rows(rows, workers, pieces):
    assert shards.shard_pieces(rows, workers) == pieces
    assert shards.piece_bounds(41, 0, 3) == (0, 13) and shards.piece_bounds(41, 2, 3) == (27, 41)


@pytest.mark.parametrize("row_group_rows", [7, 333, 1000])
def test_read_shards_gives_each_wanted_slice_whatever_the_row_groups(tmp_path, row_group_rows):
    import pyarrow as pa

    texts = [f"文{index}" for index in range(1000)]
    pq.write_table(pa.table({"text": texts}), tmp_path / "prepared.parquet", row_group_size=row_group_rows)
    source = pq.ParquetFile(tmp_path / "prepared.parquet")
    for size, wanted in ((50, set(range(20))), (13, {0, 41, 76}), (999, {1}), (2000, {0}), (50, {25})):
        got = list(shards.read_shards(source, size, wanted))
        assert [index for index, _ in got] == sorted(index for index in wanted if index * size < 1000)
        for index, rows in got:
            assert rows.column("text").to_pylist() == texts[index * size:(index + 1) * size]


def test_shard_rows_names_the_shard_folder_not_the_fingerprint(tmp_path):
    config, paths = prepared(tmp_path)
    other = replace(config, tokenize=replace(config.tokenize, shard_rows=100))
    tokenize = stages.STAGES["tokenize"]
    assert stages.fingerprint(tokenize, config, paths) == stages.fingerprint(tokenize, other, paths)
    one, two = front_end.tokenize_job(config, paths), front_end.tokenize_job(other, paths)
    assert one.folder != two.folder and (one.count, two.count) == (25, 13)
    assert two.size(12) == 1241 - 1200


def test_a_run_killed_by_sigkill_continues_from_its_last_finished_shard(reference, tmp_path, caplog):
    config, paths = prepared(tmp_path)
    job = front_end.tokenize_job(config, paths)
    process = fork_cli(cli_arguments(tmp_path))
    deadline = time.monotonic() + 60
    while not list(job.folder.glob("part-*.arrow")) and process.is_alive() and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    finished = sorted(job.folder.glob("part-*.arrow"))
    assert process.exitcode == -signal.SIGKILL and not paths.tokens.exists()
    assert 0 < len(finished) < job.count, "the run ended before the kill: nothing to resume"
    with caplog.at_level(logging.INFO, logger="pipeline.text.shards"):
        stages.run_stage("tokenize", config)
    assert f"{len(finished)} of 25 shards already tokenized, kept" in caplog.text
    assert paths.tokens.read_bytes() == reference
    assert not [path for path in paths.work.rglob(".*") if path.name.startswith(".part-")]  # temporaries gone


def test_a_shard_that_fails_keeps_the_shards_before_it(reference, tmp_path, caplog):
    """A shard whose file cannot be written (its name taken by a folder) stops the stage after three shards."""
    config, paths = prepared(tmp_path)
    job = front_end.tokenize_job(config, paths)
    job.path(3).mkdir(parents=True)
    with pytest.raises(IsADirectoryError):
        stages.run_stage("tokenize", config)
    assert [path.name for path in sorted(job.folder.iterdir())] == [f"part-0000{i}.arrow" for i in range(4)]
    assert not paths.tokens.exists() and not list(job.folder.glob(".*"))  # no partial shard, no merge
    job.path(3).rmdir()
    with caplog.at_level(logging.INFO, logger="pipeline.text.shards"):
        stages.run_stage("tokenize", config)
    assert "3 of 25 shards already tokenized, kept" in caplog.text
    assert paths.tokens.read_bytes() == reference


def test_a_shard_that_fails_in_a_worker_stops_the_merge_running_meanwhile(reference, tmp_path):
    """tokenize.processes = 2: the parent merges the shards as the workers write them; a worker's failure stops it
    with that error, leaves no tokens.parquet (nor its temporary), and a rerun merges the same bytes."""
    config, paths = prepared(tmp_path)
    two = replace(config, tokenize=replace(config.tokenize, processes=2))
    job = front_end.tokenize_job(two, paths)
    job.path(3).mkdir(parents=True)
    with pytest.raises(IsADirectoryError):
        stages.run_stage("tokenize", two)
    assert job.path(3).is_dir() and not paths.tokens.exists() and not list(paths.work.glob(".tokens*"))
    job.path(3).rmdir()
    stages.run_stage("tokenize", two)
    assert paths.tokens.read_bytes() == reference and not (paths.work / shards.SHARDS).exists()


def test_two_shard_processes_at_once_then_a_plain_run_merges(reference, tmp_path, caplog):
    config, paths = prepared(tmp_path)
    job = front_end.tokenize_job(config, paths)
    workers = [fork_cli(cli_arguments(tmp_path, "--shard", f"{index}/2")) for index in range(2)]
    for process in workers:  # no lock between them: neither waits for the other
        process.join(60)
    assert [process.exitcode for process in workers] == [0, 0]
    assert len(list(job.folder.glob("part-*.arrow"))) == 25 and not paths.tokens.exists()
    with caplog.at_level(logging.INFO, logger="pipeline.text.shards"):
        stages.run_stage("tokenize", config)
    assert "25 of 25 shards already tokenized, kept" in caplog.text
    assert paths.tokens.read_bytes() == reference


SCRIPT = """
import sys
from pipeline.cli import main
for extra in ({cases}):
    print(main([*sys.argv[1:], *extra]))
"""


def test_shard_and_dask_options_are_checked_with_one_line_each(tmp_path):
    cases = [["--shard", "3/2"], ["--shard", "x/2"], ["--shard", "0/2", "--dask", "local:2"], ["--dask", "local:0"],
             ["--shard", "0/2"], ["--shard", "1/2", "--set", 'tokenize.method="sentencepiece"']]
    result = subprocess.run([sys.executable, "-c", SCRIPT.format(cases=repr(cases)[1:-1]), *cli_arguments(tmp_path)],
                            capture_output=True, text=True, cwd=REPOSITORY, timeout=300)
    assert result.stdout.split() == ["2"] * len(cases), result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in result.stderr and len(errors) == len(cases), result.stderr
    for error, expected in zip(errors, ["--shard '3/2': give I/N", "--shard 'x/2': give I/N", "--shard and --dask",
                                        "--dask 'local:0': give local:N", "run `pipeline prepare` first",
                                        'tokenize.method = "sentencepiece"'], strict=True):
        assert expected in error, error


def test_shard_rows_must_be_positive(tmp_path):
    from pipeline.errors import PipelineError

    with pytest.raises(PipelineError, match=r"'tokenize.shard_rows' = 0 is invalid: it must be >= 1"):
        small(tmp_path, "tokenize.shard_rows=0")


def test_force_tokenizes_again_instead_of_merging_the_shards_left_behind(reference, tmp_path, caplog):
    """A killed run's shards are kept for the next run; ``--force`` is asked to do everything again, so it removes
    them (here a shard no run wrote: merged, it would change the table)."""
    config, paths = prepared(tmp_path)
    job = front_end.tokenize_job(config, paths)
    stages.run_stage("tokenize", config)
    job.folder.mkdir(parents=True)
    (job.folder / "part-00000.arrow").write_bytes(b"not the tokens of shard 0")
    with caplog.at_level(logging.INFO, logger="pipeline.stages"):
        stages.run_stage("tokenize", config, force=True)
    assert f"{paths.work / shards.SHARDS}: removed (--force)" in caplog.text
    assert paths.tokens.read_bytes() == reference and not (paths.work / shards.SHARDS).exists()
