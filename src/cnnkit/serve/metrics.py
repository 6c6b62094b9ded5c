"""/metrics: the server's counters in Prometheus text format (prometheus_client, one registry per app).

Request counts by endpoint and status, requests in flight, request latency, micro-batch sizes and inference time, the
queue depth, and images served. A registry of its own per app keeps two servers (or two tests) in
one process from sharing counts.
"""
from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class ServeMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, queue_depth: Callable[[], float]):
        self.registry = CollectorRegistry()
        self.requests = Counter("cnnkit_requests", "HTTP requests answered, by endpoint and status",
                                ("endpoint", "status"), registry=self.registry)
        self.latency = Histogram("cnnkit_request_seconds", "HTTP request latency (seconds), by endpoint",
                                 ("endpoint",), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("cnnkit_batch_size", "images per model forward batch",
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.batch_seconds = Histogram("cnnkit_batch_seconds", "inference time per batch (seconds)",
                                       buckets=LATENCY_BUCKETS, registry=self.registry)
        self.in_flight = Gauge("cnnkit_requests_in_flight", "HTTP requests being answered", registry=self.registry)
        self.images = Counter("cnnkit_images", "images predicted", registry=self.registry)
        self.queue = Gauge("cnnkit_queue_depth", "images admitted and waiting for a batch", registry=self.registry)
        self.queue.set_function(queue_depth)

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)
        self.images.inc(size)

    def render(self) -> bytes:
        return generate_latest(self.registry)
