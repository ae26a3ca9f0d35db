"""Corpus files as text: UTF-8, EUC-JP or Shift_JIS (cp932) found by trying them, a whole file or a line at a time.

A file that is none of them is a one-line error naming ``file:line`` where the encoding that read furthest failed,
and what to do (convert it, or set ``corpus.encoding``). :func:`text_lines` finds the encoding a block at a time
and then decodes incrementally, so a corpus file of any size is never read whole.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from itertools import chain
from pathlib import Path

from pipeline.errors import PipelineError

ENCODINGS = ("utf-8", "euc-jp", "cp932")
DECODE_BLOCK_BYTES = 1 << 20  # bytes read at a time to find a file's encoding


def decode(raw: bytes, path: Path, encoding: str = "auto") -> str:
    """Decode ``raw`` with ``encoding``, or detect UTF-8 / EUC-JP / Shift_JIS (cp932).

    UTF-8 is tried first because random non-UTF-8 bytes almost never form valid
    UTF-8; EUC-JP before cp932 because the KNB release uses it.
    """
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    candidates = ENCODINGS if encoding == "auto" else (encoding,)
    furthest = 0  # report where the encoding that read furthest failed
    for candidate in candidates:
        try:
            return raw.decode(candidate)
        except UnicodeDecodeError as error:
            furthest = max(furthest, error.start)
    raise _undecodable(path, raw[:furthest].count(b"\n") + 1, candidates)


def _undecodable(path: Path, line: int, tried: tuple[str, ...]) -> PipelineError:
    return PipelineError(f"{path}:{line}: bytes that are not valid {', '.join(tried)}; convert the file to UTF-8 "
                         "(e.g. iconv -f SRC -t UTF-8) or set corpus.encoding")


def file_encoding(path: Path, encoding: str = "auto") -> str:
    """The codec that reads all of ``path``: :func:`decode`'s choice, found reading a block at a time.

    ``encoding`` or, with ``auto``, the first of UTF-8 / EUC-JP / cp932 that decodes the whole file (``utf-8-sig``
    for UTF-8, so that a BOM is dropped as :func:`decode` drops it); none: the error names the line where the
    candidate that read furthest failed.
    """
    if not path.is_file():
        raise PipelineError(f"{path}: file not found; check corpus.path")
    candidates = ENCODINGS if encoding == "auto" else (encoding,)
    furthest = 0
    for candidate in candidates:
        failed_at = _undecodable_at(path, candidate)
        if failed_at is None:
            return "utf-8-sig" if codecs.lookup(candidate).name == "utf-8" else candidate
        furthest = max(furthest, failed_at)
    with open(path, "rb") as handle:
        handle.seek(_bom_length(handle))
        line = 1 + handle.read(furthest).count(b"\n")  # an error: read up to the bad byte once
    raise _undecodable(path, line, candidates)


def _undecodable_at(path: Path, codec: str) -> int | None:
    """Where (bytes after a UTF-8 BOM) the first byte that ``codec`` cannot decode is in ``path``; None if none."""
    decoder, position = codecs.getincrementaldecoder(codec)(), 0
    with open(path, "rb") as handle:
        handle.seek(_bom_length(handle))
        for block in chain(iter(lambda: handle.read(DECODE_BLOCK_BYTES), b""), [b""]):  # one block in memory at a time
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as error:
                return position - pending + error.start
            position += len(block)
    return None


def _bom_length(handle) -> int:
    """3 when the binary file ``handle`` starts with a UTF-8 BOM (dropped whatever the encoding, as :func:`decode`
    drops it), else 0."""
    handle.seek(0)
    return 3 if handle.read(3) == b"\xef\xbb\xbf" else 0


def text_lines(path: Path, encoding: str = "auto") -> Iterator[str]:
    """The lines of ``path`` as ``read_text_file(path, encoding).splitlines()`` gives them, read a line at a time."""
    yield from decoded_lines(path, file_encoding(path, encoding))


def decoded_lines(path: Path, codec: str) -> Iterator[str]:
    """The lines of ``path`` in a known ``codec`` (:func:`file_encoding`'s), one at a time."""
    with open(path, encoding=codec, newline=None) as handle:  # \r\n and \r end a line, as splitlines says
        for line in handle:
            yield from line.splitlines()


def read_text_file(path: Path, encoding: str = "auto") -> str:
    if not path.is_file():
        raise PipelineError(f"{path}: file not found; check corpus.path")
    return decode(path.read_bytes(), path, encoding)


def require_input(path: Path, what: str, key: str = "corpus.path") -> None:
    """A one-line error when the input ``path`` (a ``what``, set by config key ``key``) does not exist."""
    if not path.exists():
        raise PipelineError(f"{path}: {what} not found; set {key} to an existing {what}")
