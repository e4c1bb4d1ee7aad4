"""Prometheus metrics of one server: request counts, latencies, batch sizes, queue depth.

Each app gets its own registry, so several apps in one process (tests) never share counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from neo.serving.batcher import BatchStats

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class ServingMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "neo_requests",
            "HTTP requests by route and status code",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "neo_request_latency_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "neo_batch_size", "requests per model batch", buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.batch_latency = Histogram(
            "neo_batch_latency_seconds",
            "model time per batch",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "neo_queue_wait_seconds",
            "time the oldest request of a batch waited",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge("neo_queue_depth", "requests waiting for the model", registry=self.registry)
        self.rejected = Counter(
            "neo_rejected", "requests refused because the queue was full", registry=self.registry
        )

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_batch(self, stats: BatchStats) -> None:
        self.batch_size.observe(stats.size)
        self.batch_latency.observe(stats.seconds)
        self.queue_wait.observe(stats.oldest_wait_seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
