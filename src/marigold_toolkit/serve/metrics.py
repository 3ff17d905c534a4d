"""The server's Prometheus metrics (``GET /metrics``), in a registry of the app's own."""

from __future__ import annotations

from typing import Callable


class ServerMetrics:
    """Requests and errors by status code, queue depth, batch sizes and latency.

    Args:
        max_batch: the largest batch (the batch-size histogram's buckets are 1..max_batch).
        queue_depth: returns the number of requests the server holds now.
    """

    def __init__(self, max_batch: int, queue_depth: Callable[[], int]):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("marigold_requests", "HTTP requests answered, by path and status code",
                                ["path", "code"], registry=self.registry)
        self.errors = Counter("marigold_errors", "error answers (status >= 400), by status code", ["code"],
                              registry=self.registry)
        self.queue = Gauge("marigold_queue_depth", "requests held (queued or running)", registry=self.registry)
        self.queue.set_function(lambda: float(queue_depth()))
        self.batch = Histogram("marigold_batch_size", "requests per model call", ["model"],
                               buckets=[float(b) for b in range(1, max_batch + 1)], registry=self.registry)
        self.latency = Histogram("marigold_request_latency_seconds", "time from arrival to answer of successful "
                                 "predictions", ["model"],
                                 buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
                                 registry=self.registry)

    def answered(self, path: str, code: int) -> None:
        self.requests.labels(path=path, code=str(code)).inc()
        if code >= 400:
            self.errors.labels(code=str(code)).inc()

    def text(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
