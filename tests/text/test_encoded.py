"""Tests of pipeline.text.encoded: the RaggedIds view and the uncompressed .npz written from and mapped to disk."""

import os
import pickle
import zipfile

import numpy as np
import pytest

from pipeline.text.encoded import RaggedIds, StoredArray, load_npz, write_npz

SENTENCES = [[3, 4, 5], [], [7], [2, 2]]


def ragged(sentences=SENTENCES) -> RaggedIds:
    lengths = [len(sentence) for sentence in sentences]
    return RaggedIds(np.array([i for s in sentences for i in s], dtype=np.int32),
                     np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))


def test_ragged_ids_index_iterate_and_measure_without_copying():
    ids = ragged()
    assert len(ids) == 4 and bool(ids)
    assert [item.tolist() for item in ids] == SENTENCES
    assert ids[0].tolist() == [3, 4, 5] and ids[-1].tolist() == [2, 2] and ids[1].tolist() == []
    assert np.shares_memory(ids[0], ids.flat)
    assert ids.lengths().tolist() == [3, 0, 1, 2] and ids.lengths().dtype == np.int64
    assert ids.lengths(np.array([3, 0])).tolist() == [2, 3] and ids.lengths(np.array([1])).dtype == np.int64
    with pytest.raises(IndexError):
        ids[4]
    assert [item.tolist() for item in ids[1:]] == SENTENCES[1:]  # a slice: a list, as of the list of arrays
    assert [item.tolist() for item in ids[::-2]] == SENTENCES[::-2]
    assert [item.tolist() for item in ids.reversed()[:2]] == [s[::-1] for s in SENTENCES[:2]]
    assert not RaggedIds(np.zeros(0, dtype=np.int32), np.zeros(1, dtype=np.int64))


def test_reversed_and_concatenated_views():
    assert [item.tolist() for item in ragged().reversed()] == [s[::-1] for s in SENTENCES]
    assert [item.tolist() for item in ragged().reversed().reversed()] == SENTENCES
    joined = RaggedIds.concatenate([ragged(), ragged([[9], [8, 7]])])
    assert [item.tolist() for item in joined] == [*SENTENCES, [9], [8, 7]]
    single = ragged()
    assert RaggedIds.concatenate([single]) is single


def test_write_npz_is_read_by_np_load_and_mapped_by_load_npz(tmp_path):
    big = np.arange(100_000, dtype=np.int32)  # past the size below which members are read, not mapped
    arrays = {"labels": np.array(["a", "bb"]), "big": big, "empty": np.zeros(0, dtype=np.int64)}
    files = {}
    for name, array in arrays.items():
        files[name] = tmp_path / f"{name}.npy"
        np.save(files[name], array)
    write_npz(tmp_path / "ids.npz", files)
    with np.load(tmp_path / "ids.npz") as loaded:
        assert loaded.files == list(arrays)
        for name, array in arrays.items():
            np.testing.assert_array_equal(loaded[name], array)
    mapped = load_npz(tmp_path / "ids.npz")
    assert list(mapped) == list(arrays)
    for name, array in arrays.items():
        assert mapped[name].dtype == array.dtype
        np.testing.assert_array_equal(mapped[name], array)
    assert isinstance(mapped["big"].base, np.memmap) and not mapped["big"].flags.writeable


def test_load_npz_reads_a_compressed_archive_too(tmp_path):
    np.savez_compressed(tmp_path / "ids.npz", train_ids=np.arange(50_000, dtype=np.int32))
    with zipfile.ZipFile(tmp_path / "ids.npz") as archive:
        assert archive.infolist()[0].compress_type == zipfile.ZIP_DEFLATED
    np.testing.assert_array_equal(load_npz(tmp_path / "ids.npz")["train_ids"], np.arange(50_000))


def stored(tmp_path, array: np.ndarray, name: str = "train_ids") -> dict:
    np.save(tmp_path / f"{name}.npy", array)
    write_npz(tmp_path / "ids.npz", {name: tmp_path / f"{name}.npy"})
    return load_npz(tmp_path / "ids.npz", read_on_demand=lambda member: member.endswith("_ids"))


def test_stored_array_reads_what_numpy_indexing_gives(tmp_path):
    array = np.arange(100_000, dtype=np.int32) * 7 - 3
    ids = stored(tmp_path, array)["train_ids"]
    assert isinstance(ids, StoredArray)
    assert (len(ids), ids.shape, ids.size, ids.dtype) == (len(array), array.shape, array.size, array.dtype)
    for index in (slice(0, 10), slice(99_990, 100_005), slice(500, 500), slice(40, 10), slice(-5, None),
                  slice(3, 300, 7), slice(None, None, -1), slice(None)):
        np.testing.assert_array_equal(ids[index], array[index])
    assert ids[0] == array[0] and ids[-1] == array[-1] and ids[12_345] == array[12_345]
    with pytest.raises(IndexError):
        ids[100_000]
    np.testing.assert_array_equal(np.asarray(ids), array)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(ids))[10:20], array[10:20])
    small = load_npz(tmp_path / "ids.npz", read_on_demand=lambda member: False)["train_ids"]
    assert isinstance(small.base, np.memmap)  # only the members asked for are read on demand


def test_stored_array_reads_in_chunks_and_says_when_its_file_is_cut(tmp_path, monkeypatch):
    array = np.arange(100_000, dtype=np.int64)
    ids = stored(tmp_path, array)["train_ids"]
    monkeypatch.setattr(StoredArray, "CHUNK", 4096)  # several reads for one slice
    np.testing.assert_array_equal(ids[100:90_000], array[100:90_000])
    (tmp_path / "cut.npz").write_bytes((tmp_path / "ids.npz").read_bytes()[:ids.offset + 500 * 8])
    cut = StoredArray(tmp_path / "cut.npz", ids.offset, ids.dtype, ids.size)  # a file cut short
    np.testing.assert_array_equal(cut[:500], array[:500])
    with pytest.raises(OSError, match="cut.npz: ends before its array does"):
        cut[400:600]


@pytest.mark.parametrize("reverse", [False, True])
def test_ragged_ids_over_a_stored_array_are_the_in_memory_ones(tmp_path, reverse, monkeypatch):
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 30, size=10_000)
    flat = rng.integers(0, 500, size=int(lengths.sum()), dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    memory = RaggedIds(flat, offsets, reverse)
    monkeypatch.setattr(RaggedIds, "ITERATION_BLOCK", 333)  # blocks that do not divide the sentences
    on_disk = RaggedIds(stored(tmp_path, flat)["train_ids"], offsets, reverse)
    assert len(on_disk) == len(memory)
    for position in (0, 1, 4999, -1):
        np.testing.assert_array_equal(on_disk[position], memory[position])
    iterated = list(on_disk)
    assert len(iterated) == len(memory)
    for mine, theirs in zip(iterated, memory):
        np.testing.assert_array_equal(mine, theirs)


def test_reading_stored_ids_leaves_resident_memory_alone(tmp_path):
    """What the stored reads are for: every sentence of 64 MiB of ids read, resident memory grows by less than
    16 MiB (a mapping of the same file would keep the pages it read)."""
    lengths = np.full(1 << 20, 16)
    ids = RaggedIds(stored(tmp_path, np.ones(16 << 20, dtype=np.int32))["train_ids"],
                    np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
    with open("/proc/self/statm") as handle:
        before = int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    total = sum(int(sentence.sum()) for sentence in ids)  # every page of the ids (all ones)
    total += sum(int(ids[row].sum()) for row in np.random.default_rng(0).integers(0, len(ids), 20_000))  # as batches do
    with open("/proc/self/statm") as handle:
        after = int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    assert total > 16 << 20 and after - before < 16 << 20, (after - before) >> 20


def test_stored_array_of_an_open_temporary_file(tmp_path):
    import tempfile

    handle = tempfile.TemporaryFile(dir=tmp_path)
    array = np.arange(1000, dtype=np.int32)
    handle.write(array.tobytes())
    ids = StoredArray.of_file(handle, np.int32, len(array))
    np.testing.assert_array_equal(ids[10:20], array[10:20])
    np.testing.assert_array_equal(np.asarray(ids), array)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(ids)
    assert list(tmp_path.iterdir()) == []  # nothing named on disk
    del ids
    assert handle.closed
