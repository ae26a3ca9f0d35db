"""Tests of pipeline.progress: log lines off a terminal, a tqdm bar on one, nothing when quiet."""

import io
import logging
import re
import sys

import pytest

from pipeline import progress as progress_module
from pipeline.progress import Progress, mode

LOGGER = logging.getLogger("pipeline.test_progress")
LINE = re.compile(r"^work: (\d+)/(\d+) sentences \((\d+)%\)")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == LOGGER.name]


@pytest.fixture
def stderr(monkeypatch) -> io.StringIO:
    """sys.stderr replaced by a file that is not a terminal (pytest -s would give a real one)."""
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    return stream


def test_mode_follows_the_level_and_the_terminal(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER.name)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert mode(LOGGER) == "log"
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert mode(LOGGER) == "bar"
    caplog.set_level(logging.WARNING, logger=LOGGER.name)  # pipeline --quiet
    assert mode(LOGGER) == "quiet"


def logged_counts(caplog, total: int, seconds_per_unit: float) -> list[int]:
    """Counts of the lines a loop of ``total`` units logs (fake clock)."""
    caplog.set_level(logging.INFO, logger=LOGGER.name)
    clock = FakeClock()
    with Progress(total, "work", "sentences", LOGGER, clock=clock) as progress:
        for _ in range(total):
            clock.now += seconds_per_unit
            progress.update(1)
    found = [LINE.match(line) for line in lines(caplog)]
    assert all(found), lines(caplog)
    assert {int(match[2]) for match in found} <= {total}
    assert all(int(match[3]) == round(100 * int(match[1]) / total) for match in found)
    return [int(match[1]) for match in found]


def test_a_line_every_10_percent(stderr, caplog):
    assert logged_counts(caplog, 100, 0.5) == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]  # 10% = 5 s
    assert "2 sentences/s, 00:05 elapsed, about 00:45 left" in lines(caplog)[0]
    assert "left" not in lines(caplog)[-1]
    assert stderr.getvalue() == ""  # no bar off a terminal


def test_at_most_a_line_every_interval_and_a_last_one(stderr, caplog):
    assert logged_counts(caplog, 100, 0.125) == [40, 80, 100]  # 10% takes 1.25 s: a line every 5 s, then the end


def test_a_line_at_least_every_minute(stderr, caplog):
    assert logged_counts(caplog, 1000, 1.0) == [*range(60, 1000, 60), 1000]  # 10% takes 100 s


def test_a_short_loop_logs_nothing(stderr, caplog):
    assert logged_counts(caplog, 100, 0.04) == []  # 4 s in all


def test_quiet_shows_nothing(monkeypatch, caplog):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(progress_module, "BAR_DELAY_SECONDS", 0.0)
    monkeypatch.setattr(progress_module, "LOG_INTERVAL_SECONDS", 0.0)
    monkeypatch.setattr(progress_module, "LOG_SHARE_STEP", 0.0)
    caplog.set_level(logging.WARNING, logger=LOGGER.name)
    with Progress(3, "work", "sentences", LOGGER) as progress:
        progress.update(3)
    assert caplog.records == [] and terminal.getvalue() == ""


def test_a_bar_on_a_terminal_and_no_lines(monkeypatch, caplog):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(progress_module, "BAR_DELAY_SECONDS", 0.0)
    monkeypatch.setattr(progress_module, "LOG_INTERVAL_SECONDS", 0.0)
    monkeypatch.setattr(progress_module, "LOG_SHARE_STEP", 0.0)
    caplog.set_level(logging.INFO, logger=LOGGER.name)
    with Progress(4, "work", "sentences", LOGGER) as progress:
        for _ in range(4):
            progress.update(1)
    assert "work:" in terminal.getvalue() and "/4 [" in terminal.getvalue()  # drawn, then erased (leave=False)
    assert lines(caplog) == []
