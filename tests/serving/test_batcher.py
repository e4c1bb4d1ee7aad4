"""The micro-batcher: every request gets its own answer, batches respect max_batch, overload is refused."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neo.serving.batcher import BatcherStoppedError, BatchStats, MicroBatcher, QueueFullError


def test_concurrent_requests_are_batched_and_answered_in_order() -> None:
    seen: list[int] = []
    batcher = MicroBatcher(
        lambda batch: [x * 10 for x in batch],
        max_batch=8,
        max_wait_ms=50,
        queue_size=100,
        on_batch=lambda stats: seen.append(stats.size),
    )
    futures = [batcher.submit(i) for i in range(20)]
    assert [f.result(timeout=5) for f in futures] == [i * 10 for i in range(20)]
    batcher.stop()
    assert sum(seen) == 20
    assert max(seen) <= 8
    assert len(seen) < 20, "requests queued together must share batches"


@settings(max_examples=25, deadline=None)
@given(values=st.lists(st.integers(), min_size=1, max_size=40), max_batch=st.integers(1, 9))
def test_every_request_gets_its_own_result(values: list[int], max_batch: int) -> None:
    sizes: list[int] = []
    batcher = MicroBatcher(
        lambda batch: [(v, len(batch)) for v in batch],
        max_batch=max_batch,
        max_wait_ms=1,
        queue_size=len(values),
        on_batch=lambda stats: sizes.append(stats.size),
    )
    futures = [batcher.submit(v) for v in values]
    results = [f.result(timeout=5) for f in futures]
    batcher.stop()
    assert [r[0] for r in results] == values
    assert all(1 <= r[1] <= max_batch for r in results)
    assert sum(sizes) == len(values)


def test_full_queue_refuses_immediately() -> None:
    release = threading.Event()
    started = threading.Event()

    def slow(batch: list[int]) -> list[int]:
        started.set()
        release.wait(5)
        return batch

    batcher = MicroBatcher(slow, max_batch=1, max_wait_ms=0, queue_size=2)
    in_flight = batcher.submit(0)
    assert started.wait(5)
    queued = [batcher.submit(1), batcher.submit(2)]
    begin = time.perf_counter()
    with pytest.raises(QueueFullError, match="queue is full"):
        batcher.submit(3)
    assert time.perf_counter() - begin < 0.1
    release.set()
    assert [f.result(timeout=5) for f in (in_flight, *queued)] == [0, 1, 2]
    batcher.stop()


def test_per_request_exceptions_and_handler_failures_stay_local() -> None:
    def handler(batch: list[int]) -> list[object]:
        if 99 in batch:
            raise RuntimeError("model crashed")
        return [ValueError(f"bad {v}") if v < 0 else v for v in batch]

    batcher = MicroBatcher(handler, max_batch=1, max_wait_ms=0, queue_size=10)
    ok, bad, crash, after = (batcher.submit(v) for v in (1, -1, 99, 2))
    assert ok.result(timeout=5) == 1
    with pytest.raises(ValueError, match="bad -1"):
        bad.result(timeout=5)
    with pytest.raises(RuntimeError, match="model crashed"):
        crash.result(timeout=5)
    assert after.result(timeout=5) == 2, "the worker must survive a failing batch"
    batcher.stop()


def test_stop_refuses_new_work_and_reports_batches() -> None:
    stats: list[BatchStats] = []
    batcher = MicroBatcher(lambda b: b, max_batch=4, max_wait_ms=0, queue_size=4, on_batch=stats.append)
    assert batcher.submit("x").result(timeout=5) == "x"
    batcher.stop()
    assert not batcher.alive
    with pytest.raises(BatcherStoppedError):
        batcher.submit("y")
    assert stats[0].size == 1 and stats[0].seconds >= 0


@pytest.mark.parametrize("kwargs", [{"max_batch": 0}, {"max_wait_ms": -1}, {"queue_size": 0}])
def test_invalid_settings_are_refused(kwargs: dict) -> None:
    settings_ = {"max_batch": 1, "max_wait_ms": 0, "queue_size": 1} | kwargs
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        MicroBatcher(lambda b: b, **settings_)
