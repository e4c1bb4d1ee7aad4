"""Dynamic micro-batching: many concurrent requests, one model, one worker thread.

The model is far more efficient on a batch of rows than on the same rows one at a time, but HTTP
requests arrive one by one. The batcher holds the first waiting request for at most `max_wait_ms`
while more arrive, then hands up to `max_batch` of them to the handler in one call. A bounded queue
turns overload into an immediate, explicit refusal (`QueueFullError`, HTTP 503) instead of
unbounded latency. Exactly one worker thread calls the handler, so the model never runs twice at once.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

BatchHandler = Callable[[Sequence[Any]], Sequence[Any]]
"""Takes a batch of requests; returns one result (or an Exception instance) per request, in order."""


class QueueFullError(RuntimeError):
    """The request queue is at capacity; the caller should retry later."""


class BatcherStoppedError(RuntimeError):
    """The batcher was stopped; no more requests are accepted."""


@dataclass
class _Pending:
    request: Any
    future: Future
    enqueued_at: float


@dataclass(frozen=True)
class BatchStats:
    """What one handler call looked like; given to the `on_batch` observer (metrics)."""

    size: int
    seconds: float
    oldest_wait_seconds: float


class MicroBatcher:
    """Collect requests into batches of up to `max_batch`, waiting at most `max_wait_ms` for company."""

    def __init__(
        self,
        handler: BatchHandler,
        max_batch: int,
        max_wait_ms: float,
        queue_size: int,
        on_batch: Callable[[BatchStats], None] | None = None,
        name: str = "neo-batcher",
    ):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.handler = handler
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.on_batch = on_batch
        self._queue: queue.Queue[_Pending | None] = queue.Queue(maxsize=queue_size)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Requests waiting (not yet handed to the handler)."""
        return self._queue.qsize()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping.is_set()

    def submit(self, request: Any) -> Future:
        """Queue one request; the returned future resolves to its result. Never blocks."""
        if self._stopping.is_set():
            raise BatcherStoppedError("the batcher is stopped")
        pending = _Pending(request, Future(), time.perf_counter())
        try:
            self._queue.put_nowait(pending)
        except queue.Full:
            raise QueueFullError(f"request queue is full ({self._queue.maxsize} waiting)") from None
        return pending.future

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in flight, fail whatever is still queued, and join the worker."""
        self._stopping.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(timeout)
        while True:
            try:
                pending = self._queue.get_nowait()
            except queue.Empty:
                break
            if pending is not None and not pending.future.done():
                pending.future.set_exception(BatcherStoppedError("the server is shutting down"))

    # ----- worker ----------------------------------------------------------------------------
    def _collect(self) -> list[_Pending]:
        """Block for the first request, then gather more until the batch is full or the wait ends."""
        first = self._queue.get()
        if first is None:
            return []
        batch = [first]
        deadline = time.perf_counter() + self.max_wait_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.perf_counter()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._stopping.set()
                break
            batch.append(item)
        return batch

    def _run(self) -> None:
        while not self._stopping.is_set():
            batch = self._collect()
            if batch:
                self._execute(batch)

    def _execute(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        live = [p for p in batch if p.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            results = list(self.handler([p.request for p in live]))
            if len(results) != len(live):
                raise RuntimeError(f"batch handler returned {len(results)} results for {len(live)} requests")
        except Exception as exc:  # one failing batch must not kill the worker thread
            results = [exc] * len(live)
        for pending, result in zip(live, results, strict=True):
            if isinstance(result, BaseException):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)
        if self.on_batch is not None:
            self.on_batch(
                BatchStats(
                    len(live), time.perf_counter() - started, started - min(p.enqueued_at for p in live)
                )
            )
