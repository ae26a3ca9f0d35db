"""Tests of pipeline.text.encoded: the RaggedIds view and the uncompressed .npz written from and mapped to disk."""

import zipfile

import numpy as np
import pytest

from pipeline.text.encoded import RaggedIds, load_npz, write_npz

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
