"""Micro-batching: the texts of concurrent requests go through the model in one forward pass.

A classifier answers 64 texts in one call in little more time than one text (one padded batch, one
``predict_on_batch``), so a server that calls the model once per request wastes most of its time on
per-call overhead. :class:`MicroBatcher` collects the requests that arrive within a short window (a few
milliseconds after the oldest waiting one), concatenates their texts into one call of ``process`` (e.g.
``run.classify``) and hands each request back its own slice of the results. Requests that arrive while a
call is running wait for the next call, so under load batches fill up by themselves and the window costs
nothing; an idle server adds at most the window to a request's latency.

One batcher sends one call at a time; the calls themselves run wherever ``process`` puts them (the
service runs them on the model's worker thread, never on the event loop).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


class Overloaded(Exception):
    """More requests are waiting than the batcher accepts (``max_pending``); the client should retry later."""


@dataclass
class _Pending:
    texts: list[str]
    future: asyncio.Future
    arrived: float = field(default=0.0)


class MicroBatcher:
    """Concatenate the texts of concurrent :meth:`submit` calls into calls of ``process``.

    Args:
        process: ``async (texts) -> results``, one result per text in order (e.g. ``run.classify`` on a
            worker thread).
        window_seconds: how long the oldest waiting request waits for others before its batch goes (0: no
            waiting; requests that queued during the previous call still go together).
        max_batch: at most this many texts per call; a request with more texts goes alone, whole.
        max_pending: at most this many requests wait; one more raises :class:`Overloaded`.

    A call that raises is retried request by request when it held several, so a request that breaks the
    model fails alone and the others still get their answers.

    Example:
        >>> async def upper(texts):
        ...     return [text.upper() for text in texts]
        >>> async def main():
        ...     batcher = MicroBatcher(upper, window_seconds=0.01, max_batch=8)
        ...     batcher.start()
        ...     results = await asyncio.gather(batcher.submit(["a"]), batcher.submit(["b", "c"]))
        ...     await batcher.close()
        ...     return results, batcher.calls
        >>> asyncio.run(main())
        ([['A'], ['B', 'C']], 1)
    """

    def __init__(self, process: Callable[[list[str]], Awaitable[list[Any]]], window_seconds: float = 0.005,
                 max_batch: int = 64, max_pending: int = 1024) -> None:
        if window_seconds < 0:
            raise ValueError(f"window_seconds must be >= 0, got {window_seconds}")
        if max_batch < 1 or max_pending < 1:
            raise ValueError(f"max_batch and max_pending must be >= 1, got {max_batch} and {max_pending}")
        self.process = process
        self.window_seconds = window_seconds
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.calls = 0  # calls of ``process`` so far (the tests and the logs read it)
        self._pending: collections.deque[_Pending] = collections.deque()
        self._arrival: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None

    def start(self) -> None:
        """Start the worker on the running event loop (the app's startup)."""
        self._arrival = asyncio.Event()
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="micro-batcher")

    async def close(self) -> None:
        """Stop the worker; requests still waiting fail with :class:`asyncio.CancelledError`."""
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None
        while self._pending:
            pending = self._pending.popleft()
            if not pending.future.done():
                pending.future.cancel()

    async def submit(self, texts: list[str]) -> list[Any]:
        """The results for ``texts``, computed together with whatever other requests arrive meanwhile."""
        if self._worker is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        if len(self._pending) >= self.max_pending:
            raise Overloaded(f"{len(self._pending)} requests are waiting for this model")
        loop = asyncio.get_running_loop()
        pending = _Pending(list(texts), loop.create_future(), loop.time())
        self._pending.append(pending)
        self._arrival.set()
        return await pending.future

    def _waiting_texts(self) -> int:
        return sum(len(pending.texts) for pending in self._pending)

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                self._arrival.clear()
                await self._arrival.wait()
            # Wait until the oldest request's window is over or a full batch is waiting.
            deadline = self._pending[0].arrived + self.window_seconds
            while self._waiting_texts() < self.max_batch and loop.time() < deadline:
                self._arrival.clear()
                try:
                    await asyncio.wait_for(self._arrival.wait(), deadline - loop.time())
                except TimeoutError:
                    break
            batch = self._take()
            try:
                await self._run(batch)
            finally:  # stopped while the model ran: its requests fail instead of waiting forever
                for pending in batch:
                    if not pending.future.done():
                        pending.future.cancel()

    def _take(self) -> list[_Pending]:
        """The oldest waiting requests whose texts fit in ``max_batch`` (at least one); abandoned ones are
        dropped."""
        batch, size = [], 0
        while self._pending:
            pending = self._pending[0]
            if pending.future.done():  # the client went away (cancelled): nothing to compute
                self._pending.popleft()
                continue
            if batch and size + len(pending.texts) > self.max_batch:
                break
            batch.append(self._pending.popleft())
            size += len(pending.texts)
        return batch

    async def _run(self, batch: list[_Pending]) -> None:
        if not batch:
            return
        texts = [text for pending in batch for text in pending.texts]
        try:
            self.calls += 1
            results = await self.process(texts)
            if len(results) != len(texts):
                raise RuntimeError(f"process returned {len(results)} results for {len(texts)} texts")
        except Exception as error:
            if len(batch) == 1:
                _settle(batch[0].future, exception=error)
                return
            log.debug("a batch of %d requests failed (%s); answering them one by one", len(batch), error)
            for pending in batch:
                try:
                    self.calls += 1
                    _settle(pending.future, result=await self.process(pending.texts))
                except Exception as single_error:
                    _settle(pending.future, exception=single_error)
            return
        start = 0
        for pending in batch:
            _settle(pending.future, result=results[start:start + len(pending.texts)])
            start += len(pending.texts)


def _settle(future: asyncio.Future, result: Any = None, exception: BaseException | None = None) -> None:
    if future.done():  # cancelled meanwhile
        return
    if exception is not None:
        future.set_exception(exception)
    else:
        future.set_result(result)
