"""Tests of pipeline.io: atomic files and directories, JSON with Japanese text."""

import numpy as np
import pytest

from pipeline import io as artifact_io


class Boom(Exception):
    pass


def test_atomic_path_replaces_the_file_on_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old", encoding="utf-8")
    with artifact_io.atomic_path(target) as temporary:
        assert temporary != target and temporary.parent == tmp_path
        assert target.read_text(encoding="utf-8") == "old"  # not visible before the block ends
        temporary.write_text("new", encoding="utf-8")
    assert target.read_text(encoding="utf-8") == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_path_leaves_the_old_file_and_no_temporary_when_the_block_raises(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(Boom):
        with artifact_io.atomic_path(target) as temporary:
            temporary.write_text("half written", encoding="utf-8")
            raise Boom()
    assert target.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_path_creates_no_file_when_the_first_write_fails(tmp_path):
    target = tmp_path / "nested" / "out.json"
    with pytest.raises(Boom):
        with artifact_io.atomic_path(target):
            raise Boom()
    assert not target.exists()
    assert list((tmp_path / "nested").iterdir()) == []


def test_atomic_path_keeps_the_suffix_writers_look_at(tmp_path):
    with artifact_io.atomic_path(tmp_path / "plot.png", suffix=".png") as temporary:
        assert temporary.name.endswith(".png")
        temporary.write_bytes(b"x")
    assert (tmp_path / "plot.png").read_bytes() == b"x"


def test_np_save_and_savez_through_atomic_path_give_loadable_files(tmp_path):
    matrix = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    with artifact_io.atomic_path(tmp_path / "embeddings.npy", suffix=".npy") as temporary:
        np.save(temporary, matrix)
    with artifact_io.atomic_path(tmp_path / "ids.npz", suffix=".npz") as temporary:
        np.savez(temporary, ids=np.array([1, 2, 3], dtype=np.int32), labels=np.array(["京都", "スポーツ"]))
    loaded = np.load(tmp_path / "embeddings.npy")
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, matrix)
    with np.load(tmp_path / "ids.npz") as arrays:
        np.testing.assert_array_equal(arrays["ids"], [1, 2, 3])
        assert arrays["labels"].tolist() == ["京都", "スポーツ"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["embeddings.npy", "ids.npz"]


def test_write_json_round_trip_keeps_japanese_readable(tmp_path):
    data = {"labels": ["京都", "グルメ"], "count": 3, "nested": {"ｶﾅ": [1.5, None, True]}}
    path = tmp_path / "sub" / "data.json"
    artifact_io.write_json(path, data)
    assert artifact_io.read_json(path) == data
    text = path.read_text(encoding="utf-8")
    assert "京都" in text and "\\u" not in text
    assert text.endswith("\n")


def test_write_json_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "data.json"
    artifact_io.write_json(path, {"version": 1})
    with pytest.raises(TypeError):
        artifact_io.write_json(path, {"version": object()})
    assert artifact_io.read_json(path) == {"version": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.json"]


def test_write_text_is_utf8(tmp_path):
    artifact_io.write_text(tmp_path / "a.txt", "京都に行った。\n")
    assert (tmp_path / "a.txt").read_bytes() == "京都に行った。\n".encode()


def test_atomic_directory_replaces_a_directory_as_a_whole(tmp_path):
    target = tmp_path / "run"
    target.mkdir()
    (target / "old.txt").write_text("old", encoding="utf-8")
    (target / "shared.txt").write_text("old", encoding="utf-8")
    with artifact_io.atomic_directory(target) as building:
        assert building.is_dir() and list(building.iterdir()) == []
        (building / "shared.txt").write_text("new", encoding="utf-8")
        (building / "sub").mkdir()
        (building / "sub" / "model.keras").write_bytes(b"m")
        assert (target / "old.txt").exists()  # the old directory is intact while building
    assert sorted(p.name for p in target.iterdir()) == ["shared.txt", "sub"]
    assert (target / "shared.txt").read_text(encoding="utf-8") == "new"
    assert (target / "sub" / "model.keras").read_bytes() == b"m"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no .building or .old leftovers


def test_atomic_directory_creates_a_new_directory(tmp_path):
    target = tmp_path / "models" / "run"
    with artifact_io.atomic_directory(target) as building:
        (building / "a.txt").write_text("a", encoding="utf-8")
    assert [p.name for p in target.iterdir()] == ["a.txt"]
    assert [p.name for p in target.parent.iterdir()] == ["run"]


def test_atomic_directory_keeps_the_old_directory_on_failure(tmp_path):
    target = tmp_path / "run"
    target.mkdir()
    (target / "old.txt").write_text("old", encoding="utf-8")
    with pytest.raises(Boom):
        with artifact_io.atomic_directory(target) as building:
            (building / "new.txt").write_text("new", encoding="utf-8")
            raise Boom()
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert (target / "old.txt").read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_save_figure_writes_a_png(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots()
    axes.plot([0, 1], [1, 0])
    artifact_io.save_figure(figure, tmp_path / "curve.png")
    plt.close(figure)
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["curve.png"]


# ------------------------------------------------------------------ temporaries of killed processes
DEAD_PID = 2**22 + 12345  # above Linux's pid_max default: no such process


def test_temporary_names_carry_the_process_id(tmp_path):
    import os

    with artifact_io.atomic_path(tmp_path / "out.txt") as temporary:
        match = artifact_io.TEMPORARY_NAME.match(temporary.name)
        assert match and match["target"] == "out.txt" and int(match["pid"]) == os.getpid()
        temporary.write_text("x", encoding="utf-8")
    with artifact_io.atomic_directory(tmp_path / "run") as building:
        assert artifact_io.TEMPORARY_NAME.match(building.name)["kind"] == "building"


def test_remove_stale_deletes_what_dead_processes_left_and_keeps_live_ones(tmp_path):
    import os

    (tmp_path / "tokens.parquet").write_text("done", encoding="utf-8")
    dead_file = tmp_path / f".tokens.parquet.{DEAD_PID}.abcd_123.tmp.parquet"
    dead_file.write_text("half", encoding="utf-8")
    dead_folder = tmp_path / "staging" / f".run.{DEAD_PID}.k2j3h4g5.building"
    (dead_folder / "plots").mkdir(parents=True)
    live_file = tmp_path / f".vocab.json.{os.getpid()}.qwertyui.tmp"
    live_file.write_text("being written", encoding="utf-8")
    removed = artifact_io.remove_stale(tmp_path, recursive=True)
    assert sorted(removed) == sorted([dead_file, dead_folder])
    assert not dead_file.exists() and not dead_folder.exists() and live_file.exists()
    assert (tmp_path / "tokens.parquet").read_text(encoding="utf-8") == "done"
    assert artifact_io.remove_stale(tmp_path / "missing") == []


def test_remove_stale_puts_back_a_run_folder_moved_aside_by_a_killed_replace(tmp_path):
    aside = tmp_path / f".run.{DEAD_PID}.aaaabbbb.old"
    (aside / "run").mkdir(parents=True)
    (aside / "run" / "metrics.json").write_text("{}", encoding="utf-8")
    artifact_io.remove_stale(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert (tmp_path / "run" / "metrics.json").read_text(encoding="utf-8") == "{}"


def test_replace_directory_and_copy_directory_keep_file_times(tmp_path):
    import os

    source = tmp_path / "source"
    source.mkdir()
    (source / "model.keras").write_text("new", encoding="utf-8")
    os.utime(source / "model.keras", ns=(1_000_000_123, 1_000_000_123))
    artifact_io.copy_directory(source, tmp_path / "copy")
    assert (tmp_path / "copy" / "model.keras").stat().st_mtime_ns == 1_000_000_123
    target = tmp_path / "run"
    target.mkdir()
    (target / "old.txt").write_text("old", encoding="utf-8")
    artifact_io.replace_directory(source, target)
    assert [p.name for p in target.iterdir()] == ["model.keras"]
    assert (target / "model.keras").stat().st_mtime_ns == 1_000_000_123
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy", "run"]


def test_parquet_file_reads_a_path_or_an_open_file_batch_by_batch_across_row_groups(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"text": [f"文{i}" for i in range(1000)], "n": np.arange(1000)})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=128)  # 8 row groups
    with open(tmp_path / "t.parquet", "rb") as handle:
        for source in (tmp_path / "t.parquet", handle):
            opened = artifact_io.parquet_file(source)
            assert opened.metadata.num_row_groups == 8
            batches = list(opened.iter_batches(batch_size=300))
            assert pa.Table.from_batches(batches).equals(table)
