"""Prometheus metrics of one app (a registry of its own, no process globals): requests and their latency
by endpoint and status, model batch sizes and times, error answers by kind, readiness."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Metrics", "RequestMetrics"]

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """The app's metrics; ``render()`` is the ``/metrics`` text."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("lcnn_requests", "HTTP requests", ["endpoint", "status"], registry=r)
        self.latency = Histogram("lcnn_request_duration_seconds", "time to answer a request", ["endpoint"],
                                 buckets=_LATENCY, registry=r)  # fmt: skip
        self.batch_size = Histogram("lcnn_batch_size", "items per model batch", ["model"], buckets=_BATCH, registry=r)
        self.batch_seconds = Histogram("lcnn_batch_duration_seconds", "time to run one model batch", ["model"],
                                       buckets=_LATENCY, registry=r)  # fmt: skip
        self.errors = Counter("lcnn_errors", "error answers by kind", ["kind"], registry=r)
        self.ready = Gauge("lcnn_ready", "1 once the models are loaded", registry=r)

    def batch(self, model: str, size: int, seconds: float) -> None:
        self.batch_size.labels(model).observe(size)
        self.batch_seconds.labels(model).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RequestMetrics:
    """ASGI middleware counting every request by endpoint (its path when it is one of ``endpoints``, else
    ``other``: bounded labels) and status, with its latency to the end of the response."""

    def __init__(self, app: ASGIApp, metrics: Metrics, endpoints: set[str]) -> None:
        self.app, self.metrics, self.endpoints = app, metrics, endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        endpoint = path if path in self.endpoints else "/static" if path.startswith("/static/") else "other"
        status = 500
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
