"""Dynamic batching: concurrent requests merged into one model call, and the answers split back.

A model answers a batch of 64 rows in little more time than a batch of one, so a server that
waits a few milliseconds for other requests and predicts them together serves many more rows per
second. :class:`DynamicBatcher` queues each request's rows; a batch leaves when it holds
``max_batch_size`` rows or ``max_latency_ms`` after its first request arrived, whichever comes
first, and runs in a worker thread (up to ``concurrency`` batches at once) so the event loop
keeps answering. Each request gets back exactly its own rows' outputs, in order.

Requests are merged in arrival order and only while their arrays agree beyond the batch
dimension; a request larger than ``max_batch_size`` is predicted alone, never refused. The queue
holds at most ``max_queue`` requests: one more raises :class:`QueueFull` (the server's 503).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.arguments import check_positive_int

__all__ = ["DynamicBatcher", "QueueFull"]

#: a model's answer to a batch: one array, or arrays by output name
Output = np.ndarray | dict[str, np.ndarray]


class QueueFull(Exception):
    """The batcher already holds ``max_queue`` waiting requests; try again later."""


@dataclass(eq=False)
class _Request:
    inputs: dict[str, np.ndarray]
    rows: int
    shape: tuple[tuple[int, ...], ...]  # each input's shape beyond the batch dimension: what may be merged
    arrived: float
    answer: asyncio.Future = field(repr=False)


class DynamicBatcher:
    """Merges concurrent ``predict`` calls into batches for ``model_predict``.

    Args:
        model_predict: called from a worker thread with the merged inputs (arrays by input
            name, all with the same number of rows); returns an array or arrays by output
            name with one row per input row (``InferenceModel.predict``).
        max_batch_size: rows per model call (a larger request is predicted alone).
        max_latency_ms: how long the first waiting request may wait for others (0: never wait).
        max_queue: requests that may wait for the model at once; one more raises QueueFull.
        concurrency: batches predicted at the same time.
        on_batch: called with the number of rows after each successful model call (metrics).

    Use inside a running event loop: ``start()``, then ``await predict(...)`` from any number of
    tasks, and ``await close()`` to finish everything queued.
    """

    def __init__(self, model_predict: Callable[[dict[str, np.ndarray]], Output], max_batch_size: int = 64,
                 max_latency_ms: float = 5.0, max_queue: int = 256, concurrency: int = 1,
                 on_batch: Callable[[int], None] | None = None):
        for name, value in (("max_batch_size", max_batch_size), ("max_queue", max_queue), ("concurrency", concurrency)):
            check_positive_int(name, value)
        if not (isinstance(max_latency_ms, (int, float)) and math.isfinite(max_latency_ms) and max_latency_ms >= 0):
            raise ValueError(f"max_latency_ms must be a number >= 0, got {max_latency_ms!r}")
        self.max_batch_size, self.max_latency_ms = max_batch_size, max_latency_ms
        self.max_queue, self.concurrency = max_queue, concurrency
        self._model_predict, self._on_batch = model_predict, on_batch
        self._waiting: deque[_Request] = deque()
        self._flushing = False  # set when the server begins to shut down: batches leave without waiting
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def queued(self) -> int:
        """Requests waiting for the model (not counting those being predicted)."""
        return len(self._waiting)

    def start(self) -> None:
        """Start forming batches; call from the event loop that will call ``predict``."""
        self._loop = asyncio.get_running_loop()
        self._arrival = asyncio.Event()
        self._free = asyncio.Semaphore(self.concurrency)
        self._threads = ThreadPoolExecutor(self.concurrency, thread_name_prefix="workbench-predict")
        self._running: set[asyncio.Task] = set()
        self._collector = asyncio.create_task(self._collect(), name="workbench-batcher")

    async def predict(self, inputs: Mapping[str, np.ndarray]) -> Output:
        """The model's output for these rows (arrays by input name, already checked against the
        signature, at least one row), once their batch has run. Raises QueueFull when
        ``max_queue`` requests are already waiting, and the model's error if its call failed."""
        if self._loop is None or self._closing:
            raise RuntimeError("the batcher is not running: start() it, and do not use it after close()")
        if len(self._waiting) >= self.max_queue:
            raise QueueFull(f"{len(self._waiting)} requests are already waiting for the model (max_queue)")
        arrays = dict(inputs)
        request = _Request(arrays, len(next(iter(arrays.values()))), tuple(a.shape[1:] for a in arrays.values()),
                           self._loop.time(), self._loop.create_future())
        self._waiting.append(request)
        self._arrival.set()
        return await request.answer

    def flush(self) -> None:
        """From now on, send batches without waiting for more rows (the server is shutting down).
        Safe to call from a signal handler or another thread."""
        self._flushing = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._arrival.set)

    async def close(self) -> None:
        """Predict every queued request, wait for the batches running, then stop."""
        if self._loop is None:
            return
        self._closing = True
        self.flush()
        await self._collector
        await asyncio.gather(*self._running)
        self._threads.shutdown()

    async def _collect(self) -> None:
        """Form batches one after another: a free executor first, so that while all of them are
        busy, waiting requests pile up into the next batch."""
        while True:
            await self._free.acquire()
            batch = await self._next_batch()
            if batch is None:
                return
            task = asyncio.create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _next_batch(self) -> list[_Request] | None:
        """The next batch, once it is full or its first request has waited ``max_latency_ms``;
        None once closing and nothing is left."""
        while not self._waiting:
            if self._closing:
                return None
            self._arrival.clear()
            await self._arrival.wait()
        deadline = self._waiting[0].arrived + self.max_latency_ms / 1000
        while not self._flushing and not self._batch_full():
            self._arrival.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await self._arrival.wait()
            except TimeoutError:
                break
        return self._take()

    def _batch_full(self) -> bool:
        """Whether the batch at the head of the queue can take no more rows: it has
        ``max_batch_size`` of them, or a request that cannot join it waits behind it."""
        head, rows = self._waiting[0], 0
        for request in self._waiting:
            if request.shape != head.shape:
                return True
            rows += request.rows
            if rows >= self.max_batch_size:
                return True
        return False

    def _take(self) -> list[_Request]:
        """The head of the queue, with the requests after it that fit (same shapes, the rows
        within ``max_batch_size``)."""
        batch = [self._waiting.popleft()]
        rows = batch[0].rows
        while (self._waiting and self._waiting[0].shape == batch[0].shape
               and rows + self._waiting[0].rows <= self.max_batch_size):
            rows += self._waiting[0].rows
            batch.append(self._waiting.popleft())
        return batch

    async def _run(self, batch: list[_Request]) -> None:
        """Predict ``batch`` in a worker thread and give each request its rows of the output."""
        try:
            rows = sum(request.rows for request in batch)
            merged = batch[0].inputs if len(batch) == 1 else {
                name: np.concatenate([request.inputs[name] for request in batch]) for name in batch[0].inputs}
            try:
                output = await self._loop.run_in_executor(self._threads, self._model_predict, merged)
                _check_rows(output, rows)
            except Exception as error:  # the model's own failure: every request of the batch gets it
                for request in batch:
                    _settle(request.answer, error=error)
                return
            if self._on_batch is not None:
                self._on_batch(rows)
            start = 0
            for request in batch:
                _settle(request.answer, result=_rows(output, start, start + request.rows))
                start += request.rows
        finally:
            self._free.release()


def _check_rows(output: Output, rows: int) -> None:
    for name, array in (output.items() if isinstance(output, dict) else [("output", output)]):
        if len(array) != rows:
            raise ValueError(f"the model returned {len(array)} rows of {name!r} for a batch of {rows} rows")


def _rows(output: Output, start: int, stop: int) -> Output:
    if isinstance(output, dict):
        return {name: array[start:stop] for name, array in output.items()}
    return output[start:stop]


def _settle(answer: asyncio.Future, result: Any = None, error: BaseException | None = None) -> None:
    """Answer a waiting request, unless it was cancelled meanwhile (its client went away)."""
    if answer.done():
        return
    if error is not None:
        answer.set_exception(error)
    else:
        answer.set_result(result)
