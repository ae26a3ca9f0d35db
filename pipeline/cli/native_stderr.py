"""Keep TensorFlow's native start-up lines off the user's terminal.

TensorFlow's C++ libraries write absl log lines straight to file descriptor 2, many of them before
their logging is initialised, so ``TF_CPP_MIN_LOG_LEVEL`` does not silence them::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1796112745.298076    7049 port.cc:153] oneDNN custom operations are on. ...
    E0000 00:00:1796112749.258224    7049 cuda_platform.cc:52] failed call to cuInit: ...

:func:`filter_native_stderr` points descriptor 2 at a pipe; a reader thread forwards every line to
the real stderr except these (:data:`NOISE`). Python's own ``sys.stderr`` (our log records, the
``error:`` line, tracebacks) writes to the real stderr directly, so nothing of ours can be held up
or lost in the pipe. ``TF_CPP_MIN_LOG_LEVEL=0`` (asking for every native line) turns the filter off.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

# absl's format: severity, MMDD, time, thread id, file:line]; older TensorFlow's: date, time, severity.
_ABSL = r"E\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.]+:\d+\] "
_OLD_TF = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] [\w/.]+:\d+\] "
# Info and warning lines are start-up chatter; error lines only when they are known to be harmless on a
# machine without a GPU (cuInit fails, CUDA plug-ins register twice, oneDNN falls back to Eigen).
NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    r"|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.]+:\d+\] "
    rf"|(?:{_ABSL}|{_OLD_TF}).*(?:cuInit|cuda drivers|Unable to register cu\w+ factory|oneDNN|TensorRT)"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] "
    r"|To enable the following instructions: .* rebuild TensorFlow)")

_filter: dict[str, object] = {}


def is_noise(line: str) -> bool:
    """Whether ``line`` (without its newline) is one of TensorFlow's native start-up lines."""
    return NOISE.match(line) is not None


def filter_native_stderr() -> None:
    """Send native writes to descriptor 2 through the noise filter for the rest of the process.

    Call it once, early in the command-line entry point (never on import, never in a library call:
    it replaces ``sys.stderr``). Idempotent. At exit descriptor 2 is restored and the pipe drained.
    """
    if _filter or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        return
    try:
        sys.stderr.flush()
        real_stderr = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable descriptor 2 (embedded, closed): nothing to filter
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.stderr = open(real_stderr, "w", encoding=getattr(sys.stderr, "encoding", None) or "utf-8",
                      errors="backslashreplace", buffering=1, closefd=False)
    reader = threading.Thread(target=_forward, args=(read_end, real_stderr), name="native-stderr", daemon=True)
    reader.start()
    _filter.update(real_stderr=real_stderr, reader=reader)
    atexit.register(_restore)


def _forward(read_end: int, real_stderr: int) -> None:
    """Copy lines from the pipe to the real stderr, leaving out the noise; a last partial line too."""
    pending = b""
    with open(read_end, "rb", buffering=0) as pipe:
        while chunk := pipe.read(1 << 16):
            *lines, pending = (pending + chunk).split(b"\n")
            kept = [line + b"\n" for line in lines if not is_noise(line.decode("utf-8", "replace"))]
            if kept:
                os.write(real_stderr, b"".join(kept))
    if pending and not is_noise(pending.decode("utf-8", "replace")):
        os.write(real_stderr, pending)


def _restore() -> None:
    """Point descriptor 2 back at the real stderr (closing the pipe's write end) and let the reader drain."""
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os.dup2(_filter["real_stderr"], 2)
    _filter["reader"].join(timeout=2.0)
