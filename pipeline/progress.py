"""Progress of a long loop: a tqdm bar on a terminal, a log line now and then elsewhere, nothing with ``--quiet``.

The same rule as training's Keras progress (:func:`pipeline.training.progress_verbosity`):

* the logger does not show INFO (``pipeline --quiet``): nothing;
* stderr is a terminal: a ``tqdm`` bar, shown only when the loop lasts longer than
  ``BAR_DELAY_SECONDS`` (a one-sentence ``classify`` never flashes a bar); log lines written while
  it is shown go above it (``tqdm.contrib.logging.logging_redirect_tqdm``);
* otherwise (a log file, CI, a pipe): an INFO line at every further 10% of the work, but at most one
  every ``LOG_INTERVAL_SECONDS`` (a short loop writes none) and at least one every
  ``LOG_SILENCE_SECONDS`` (a long loop still shows it is alive), e.g.
  ``tokenize: 12000/40000 sentences (30%), 4100 sentences/s, 00:02 elapsed, about 00:06 left``;
  and a last line at the end when any line was written before it.

Example:
    >>> with Progress(len(texts), "tokenize", "sentences", log) as progress:
    ...     for text in texts:
    ...         handle(text)
    ...         progress.update(1)
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

BAR_DELAY_SECONDS = 1.0  # shorter loops show no bar at all
LOG_INTERVAL_SECONDS = 5.0  # at most one log line this often: none for a step of a few seconds
LOG_SHARE_STEP = 0.1  # a line at every further 10% of the work: about ten lines for a step of a minute or an hour
LOG_SILENCE_SECONDS = 60.0  # but never longer than this without a line


def mode(logger: logging.Logger) -> str:
    """``"quiet"`` (the logger hides INFO), ``"bar"`` (stderr is a terminal) or ``"log"``."""
    if not logger.isEnabledFor(logging.INFO):
        return "quiet"
    return "bar" if sys.stderr.isatty() else "log"


class Progress:
    """Count units of work (sentences, words) done out of ``total`` and report them as :func:`mode` says.

    Args:
        total: units the loop will do.
        description: what is running, the start of each bar and line (``"tokenize"``).
        unit: what is counted, plural (``"sentences"``).
        logger: the stage's logger; its level decides between bar/lines and nothing.
        clock: seconds, monotonic (tests pass a fake one).

    Use it as a context manager; ``update(count)`` after each unit or batch of units.
    """

    def __init__(self, total: int, description: str, unit: str, logger: logging.Logger,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total = int(total)
        self.description = description
        self.unit = unit
        self.logger = logger
        self.clock = clock
        self.mode = mode(logger)
        self.count = 0
        self._bar: Any = None
        self._exit_stack = contextlib.ExitStack()
        self._start = self._last_line = 0.0
        self._lines = 0
        self._logged_count = 0

    def __enter__(self) -> Progress:
        self._start = self._last_line = self.clock()
        if self.mode == "bar" and self.total > 0:
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._exit_stack.enter_context(logging_redirect_tqdm())
            self._bar = self._exit_stack.enter_context(
                tqdm(total=self.total, desc=self.description, unit=f" {self.unit}", file=sys.stderr,
                     delay=BAR_DELAY_SECONDS, dynamic_ncols=True, leave=False))
        return self

    def update(self, count: int = 1) -> None:
        """``count`` more units are done."""
        self.count += count
        if self._bar is not None:
            self._bar.update(count)
        elif self.mode == "log":
            now = self.clock()
            waited = now - self._last_line
            if waited >= LOG_SILENCE_SECONDS or (
                    waited >= LOG_INTERVAL_SECONDS and self.count - self._logged_count >= LOG_SHARE_STEP * self.total):
                self._log_line(now)

    def __exit__(self, *exc_info: object) -> None:
        self._exit_stack.close()
        if self.mode == "log" and self._lines and self._logged_count != self.count and exc_info[0] is None:
            self._log_line(self.clock())

    def _log_line(self, now: float) -> None:
        from tqdm import tqdm

        elapsed = now - self._start
        rate = self.count / elapsed if elapsed > 0 else None
        share = f" ({100 * self.count / self.total:.0f}%)" if self.total else ""
        speed = f", {rate:.0f} {self.unit}/s" if rate else ""
        left = (f", about {tqdm.format_interval((self.total - self.count) / rate)} left"
                if rate and self.count < self.total else "")
        self.logger.info("%s: %d/%d %s%s%s, %s elapsed%s", self.description, self.count, self.total, self.unit,
                         share, speed, tqdm.format_interval(elapsed), left)
        self._last_line, self._lines, self._logged_count = now, self._lines + 1, self.count
