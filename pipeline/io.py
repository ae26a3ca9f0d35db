"""Atomic writes: a reader never sees a half-written artifact.

Every artifact is written to a temporary sibling first and then renamed over the
target (``os.replace`` is atomic on one filesystem), so an interrupted run leaves
either the old file or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


def _temp_sibling(path: Path, suffix: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    os.close(handle)
    os.chmod(name, 0o666 & ~_umask())  # mkstemp makes 0600; artifacts get the usual permissions
    return Path(name)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    ``suffix`` keeps an extension that writers look at (``.png``, ``.keras``, ``.parquet``).
    On an exception the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    temporary = _temp_sibling(target, suffix)
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        if temporary.exists():
            temporary.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented UTF-8 JSON (non-ASCII kept readable) atomically."""
    write_text(path, json.dumps(data, ensure_ascii=False, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a UTF-8 JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def save_figure(figure: Any, path: str | os.PathLike) -> None:
    """Save a matplotlib figure atomically; the format follows the suffix of ``path``."""
    target = Path(path)
    with atomic_path(target, suffix=target.suffix) as temporary:
        figure.savefig(temporary, dpi=120, bbox_inches="tight")


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it replaces ``path`` as a whole.

    The old directory (if any) is moved aside first and deleted only after the new
    one is in place, so ``path`` is complete at every moment a reader can see it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".building", dir=target.parent))
    os.chmod(building, 0o777 & ~_umask())
    try:
        yield building
        previous = None
        if target.exists():
            previous = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, previous / "run")
        os.replace(building, target)
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
    finally:
        if building.exists():
            shutil.rmtree(building, ignore_errors=True)
