"""What the quality benchmarks share: ``pipeline run`` in a fresh process, timed, with its peak memory.

``benchmarks/quality.py`` (classifiers) and ``benchmarks/lm_quality.py`` (language models) run each
config through the real CLI exactly as a user would (``python -m pipeline run CONFIG --set ...``), one
process per config so that the peak resident memory (``os.wait4``) and the wall time belong to that
run alone. Importable as ``common`` when a benchmark runs as a script (its folder is on ``sys.path``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class PipelineRun:
    """What one ``pipeline run`` process left: its output (stdout and stderr), times and peak RSS."""

    output: str
    wall_seconds: float
    peak_rss_gib: float

    @property
    def train_seconds(self) -> float:
        """Seconds of the train stage, from its log line ``train: done in X s`` (not ``pretrain: ...``);
        NaN when the stage was up to date and skipped."""
        found = re.search(r"\btrain: done in ([\d.]+) s", self.output)
        return float(found.group(1)) if found else float("nan")


def run_pipeline(config: str, overrides: list[str], stage: str = "run") -> PipelineRun:
    """``python -m pipeline run CONFIG --set OVERRIDE ...`` from the repository root (another ``stage``:
    ``python -m pipeline STAGE --config CONFIG ...``); exits on failure."""
    command = [sys.executable, "-m", "pipeline", "run", config] if stage == "run" else \
        [sys.executable, "-m", "pipeline", stage, "--config", config]
    for override in overrides:
        command += ["--set", override]
    started = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as log:
        process = subprocess.Popen(command, cwd=REPOSITORY, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        output = log.read()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{config}: pipeline run failed (exit {process.returncode}):\n{output[-3000:]}")
    return PipelineRun(output, wall, usage.ru_maxrss / 2**20)  # ru_maxrss: kilobytes on Linux
