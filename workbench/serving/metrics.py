"""What a model server reports on ``GET /metrics``, in the Prometheus text format.

- ``workbench_requests_total{route, code}``: requests answered, by route and HTTP status;
- ``workbench_request_duration_seconds{route}``: how long answering took (histogram);
- ``workbench_batch_rows``: rows per model call (histogram: are requests being merged?);
- ``workbench_predicted_rows_total``: rows the model predicted;
- ``workbench_queued_requests``: requests waiting for the model right now.

Each server has its own registry, so two apps in one process never mix their counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ServerMetrics", "MetricsMiddleware", "CONTENT_TYPE_LATEST"]


class ServerMetrics:
    """The counters of one server; ``queued`` reports the requests waiting when scraped."""

    def __init__(self, max_batch_size: int, queued: Callable[[], int]):
        self.registry = CollectorRegistry()
        self.requests = Counter("workbench_requests", "HTTP requests answered, by route and status code",
                                ["route", "code"], registry=self.registry)
        self.duration = Histogram("workbench_request_duration_seconds", "Time to answer an HTTP request",
                                  ["route"], registry=self.registry)
        self.batch_rows = Histogram("workbench_batch_rows", "Rows per model call",
                                    buckets=_batch_buckets(max_batch_size), registry=self.registry)
        self.predicted_rows = Counter("workbench_predicted_rows", "Rows the model predicted", registry=self.registry)
        Gauge("workbench_queued_requests", "Requests waiting for the model",
              registry=self.registry).set_function(queued)

    def observe_request(self, route: str, code: int, seconds: float) -> None:
        self.requests.labels(route, str(code)).inc()
        self.duration.labels(route).observe(seconds)

    def observe_batch(self, rows: int) -> None:
        self.batch_rows.observe(rows)
        self.predicted_rows.inc(rows)

    def render(self) -> bytes:
        """Every metric in the Prometheus text format (``CONTENT_TYPE_LATEST``)."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """ASGI middleware counting every HTTP request by route and status code, with its duration.

    Paths that are not one of ``routes`` count as route "other", so that requests for random
    paths cannot grow the number of series without bound.
    """

    def __init__(self, app: ASGIApp, metrics: ServerMetrics, routes: Collection[str]):
        self.app, self.metrics, self.routes = app, metrics, set(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = scope["path"] if scope["path"] in self.routes else "other"
        started, status = time.perf_counter(), 500  # an exception before any answer becomes a 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            self.metrics.observe_request(route, status, time.perf_counter() - started)


def _batch_buckets(max_batch_size: int) -> list[float]:
    """1, 2, 4, ... up to ``max_batch_size`` (and larger requests above it)."""
    buckets = [1.0]
    while buckets[-1] < max_batch_size:
        buckets.append(min(buckets[-1] * 2, max_batch_size))
    return buckets
