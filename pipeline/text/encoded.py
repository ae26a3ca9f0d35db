"""Id sequences on disk and in memory: flat ids + offsets, an uncompressed ``.npz`` memory-mapped back.

``vectorize`` writes each split as a flat int32 array of token ids and int64 offsets (sentence ``i`` is
``ids[offsets[i]:offsets[i + 1]]``), every array an uncompressed (stored) ``.npy`` member of one ``.npz``
archive, as ``np.savez`` writes it, so any ``np.load`` still reads the file. :func:`write_npz` builds that
archive from ``.npy`` files already on disk (copied in blocks, never whole in memory); :func:`load_npz`
maps each stored member straight from the archive (``np.load`` cannot memory-map an ``.npz``: the member's
data starts at an offset that the zip's local header gives), or gives a :class:`StoredArray` that reads a
slice at a time. :class:`RaggedIds` is the lazy sequence view that training indexes: a corpus of millions of
sentences then costs its offsets (8 bytes a sentence), not its ids, nor one numpy object per sentence.
"""

from __future__ import annotations

import os
import struct
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import io as artifact_io

LOCAL_HEADER = struct.Struct("<4s22xHH")  # a zip local file header: signature, ..., name length, extra length


class RaggedIds(Sequence):
    """Sentences of token ids stored flat: item ``i`` is ``flat[offsets[i]:offsets[i + 1]]`` (a view, no copy).

    Args:
        flat: every sentence's ids one after the other, shape ``(tokens,)`` (may be memory-mapped, or a
            :class:`StoredArray`).
        offsets: where each sentence starts, shape ``(sentences + 1,)``, ``offsets[0] == 0``.
        reverse: items come out reversed (``w_n .. w_1``: a backward language model's view).

    Example:
        >>> ids = RaggedIds(np.array([5, 6, 7]), np.array([0, 2, 3]))
        >>> [item.tolist() for item in ids], ids.lengths().tolist()
        ([[5, 6], [7]], [2, 1])
    """

    ITERATION_BLOCK = 4096  # sentences read at once when iterating

    def __init__(self, flat: np.ndarray, offsets: np.ndarray, reverse: bool = False) -> None:
        self.flat, self.offsets, self.reverse = flat, offsets, reverse

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(index, slice):  # a list of the sentences' views, as slicing the list of arrays it stands for
            return [self[position] for position in range(*index.indices(len(self)))]
        count = len(self)
        position = index + count if index < 0 else index
        if not 0 <= position < count:
            raise IndexError(f"sentence {index} out of range for {count} sentences")
        item = self.flat[self.offsets[position]:self.offsets[position + 1]]
        return item[::-1] if self.reverse else item

    def __iter__(self) -> Iterator[np.ndarray]:
        """The sentences in order, their ids read ``ITERATION_BLOCK`` sentences at a time (one read each)."""
        for first in range(0, len(self), self.ITERATION_BLOCK):
            offsets = np.asarray(self.offsets[first:first + self.ITERATION_BLOCK + 1])
            block = self.flat[int(offsets[0]):int(offsets[-1])]
            starts = (offsets - offsets[0]).tolist()
            for start, end in zip(starts, starts[1:]):
                yield block[start:end][::-1] if self.reverse else block[start:end]

    def lengths(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Tokens per sentence (of ``rows`` only, when given), int64, without reading the ids."""
        if rows is None:
            return np.diff(self.offsets)
        return (self.offsets[rows + 1] - self.offsets[rows]).astype(np.int64)

    def reversed(self) -> RaggedIds:
        """The same sentences, each read back to front."""
        return RaggedIds(self.flat, self.offsets, not self.reverse)

    @classmethod
    def concatenate(cls, parts: Sequence[RaggedIds]) -> RaggedIds:
        """One view of ``parts`` one after the other: the part itself when there is one, else copied (flat ids
        in memory, 4 bytes a token)."""
        if len(parts) == 1:
            return parts[0]
        if len({part.reverse for part in parts}) > 1:
            raise ValueError("cannot concatenate reversed and forward RaggedIds")
        flat = np.concatenate([np.asarray(part.flat[part.offsets[0]:part.offsets[-1]]) for part in parts]) \
            if parts else np.zeros(0, dtype=np.int32)
        lengths = [part.lengths() for part in parts]
        offsets = np.concatenate([[0], np.cumsum(np.concatenate(lengths))]).astype(np.int64) if parts \
            else np.zeros(1, dtype=np.int64)
        return cls(flat, offsets, bool(parts) and parts[0].reverse)


def write_npz(path: Path, members: Mapping[str, Path]) -> None:
    """Write ``path`` atomically: an uncompressed ``.npz`` whose member ``name.npy`` is the ``.npy`` file
    ``members[name]``, copied in blocks (files of any size, zip64 past 4 GiB)."""
    with artifact_io.atomic_path(path, suffix=".npz") as temporary, \
            zipfile.ZipFile(temporary, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, source in members.items():
            archive.write(source, arcname=f"{name}.npy")


def load_npz(path: Path, read_on_demand: Callable[[str], bool] = lambda name: False) -> dict[str, Any]:
    """Every array of the ``.npz`` ``path``: stored members memory-mapped read-only, compressed ones read.

    ``read_on_demand(name)``: a large stored one-dimensional member that it is true for comes back as a
    :class:`StoredArray` (read a slice at a time, never mapped) instead of a mapping.

    Returns:
        ``{name: array}``; a mapped array is a plain ``np.ndarray`` view of the mapping, which stays open
        as long as an array (or a view of it) is alive.
    """
    arrays = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as handle:
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            if info.compress_type != zipfile.ZIP_STORED:
                with archive.open(info) as member:
                    arrays[name] = np.lib.format.read_array(member, allow_pickle=False)
                continue
            handle.seek(info.header_offset)
            signature, name_length, extra_length = LOCAL_HEADER.unpack(handle.read(LOCAL_HEADER.size))
            if signature != b"PK\x03\x04":
                raise ValueError(f"{path}: member {info.filename} has no local header")
            handle.seek(info.header_offset + LOCAL_HEADER.size + name_length + extra_length)
            version = np.lib.format.read_magic(handle)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, fortran_order, dtype = read_header(handle)
            if dtype.hasobject:
                raise ValueError(f"{path}: member {info.filename} holds Python objects; it is not an id array")
            count = int(np.prod(shape))
            if count == 0 or dtype.itemsize * count < 1 << 16:  # small: read, no mapping to hold
                data = np.frombuffer(handle.read(dtype.itemsize * count), dtype=dtype, count=count)
                arrays[name] = data.reshape(shape, order="F" if fortran_order else "C").copy()
            elif len(shape) == 1 and read_on_demand(name) and hasattr(os, "pread"):
                arrays[name] = StoredArray(path, handle.tell(), dtype, count)
            else:
                arrays[name] = np.memmap(path, dtype=dtype, mode="r", offset=handle.tell(), shape=shape,
                                         order="F" if fortran_order else "C").view(np.ndarray)
    return arrays


class StoredArray:
    """A one-dimensional array in a file, read a slice at a time (``os.pread``), never memory-mapped.

    Why: the pages of a mapped file that a process has read count in its resident memory until the kernel
    takes them back, and an epoch reads every page of the training ids, so a mapping makes peak RSS grow by
    4 bytes a token of the corpus (390 MB at 5M sentences); slices read this way sit in the page cache only.
    A batch reads its sentences one ``pread`` each (a few microseconds).

    Indexing with a slice (step 1) gives a read-only ``np.ndarray`` of those elements, an integer index one
    element; ``np.asarray`` reads the whole array. ``shape``, ``size``, ``dtype`` and ``len`` are those of the
    array. Pickles by path (the file is opened again).

    Args:
        path: the file; offset: where element 0 starts in it; dtype, count: the array's type and length.
    """

    CHUNK = 1 << 30  # bytes a single pread asks for (Linux returns at most about 2 GiB per call)

    def __init__(self, path: Path, offset: int, dtype: np.dtype, count: int) -> None:
        self.path, self.offset, self.dtype, self.size = Path(path), int(offset), np.dtype(dtype), int(count)
        self.shape = (self.size,)
        self._file = None
        self._descriptor = os.open(self.path, os.O_RDONLY)

    @classmethod
    def of_file(cls, handle: Any, dtype: np.dtype, count: int) -> StoredArray:
        """The array written from the start of the open binary file ``handle`` (e.g. an unnamed
        ``tempfile.TemporaryFile``, removed when the array is), which it keeps open."""
        self = cls.__new__(cls)
        name = getattr(handle, "name", None)  # an unnamed temporary file's is its descriptor
        self.path = Path(name) if isinstance(name, str | os.PathLike) else Path(f"<temporary file {name}>")
        self.offset, self.dtype, self.size = 0, np.dtype(dtype), int(count)
        self.shape = (self.size,)
        handle.flush()
        self._file, self._descriptor = handle, handle.fileno()
        return self

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(self.size)
            if step != 1:
                return self[start:stop:1][::step] if step > 0 else np.asarray(self)[index]
            return self._read(start, max(0, stop - start))
        position = index + self.size if index < 0 else index
        if not 0 <= position < self.size:
            raise IndexError(f"index {index} out of range for {self.size} elements")
        return self._read(position, 1)[0]

    def _read(self, start: int, count: int) -> np.ndarray:
        size, first = count * self.dtype.itemsize, self.offset + start * self.dtype.itemsize
        parts, done = [], 0
        while done < size:
            part = os.pread(self._descriptor, min(self.CHUNK, size - done), first + done)
            if not part:
                raise OSError(f"{self.path}: ends before its array does; run `pipeline vectorize --force`")
            parts.append(part)
            done += len(part)
        return np.frombuffer(parts[0] if len(parts) == 1 else b"".join(parts), dtype=self.dtype, count=count)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self._read(0, self.size)
        return whole if dtype is None else whole.astype(dtype)

    def __reduce__(self) -> tuple:
        if self._file is not None:
            raise TypeError("a StoredArray over an open (temporary) file cannot be pickled")
        return StoredArray, (self.path, self.offset, self.dtype, self.size)

    def __del__(self) -> None:
        descriptor = getattr(self, "_descriptor", None)
        if getattr(self, "_file", None) is not None:
            self._file.close()
        elif descriptor is not None:
            os.close(descriptor)
        self._file = self._descriptor = None
