"""The FastAPI app: :func:`create_app` builds one from loaded models (or a loader) and :class:`Settings`.

State lives in the app (``app.state.service``), never in globals, so tests and embedders can run several.
Middleware, outermost first: request metrics, the streamed body limit (:mod:`lcnn.serve.limits`), then
FastAPI's routing with the handlers that turn every error into ``{"error": ..., "detail": ...}``: 4xx for
what the client sent, 503 while loading or busy, and for anything unexpected a generic 500 (the traceback
goes to the server's log, never to the client).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException

from lcnn.serve.batcher import Batcher
from lcnn.serve.errors import ClientError
from lcnn.serve.limits import BodyLimit
from lcnn.serve.metrics import Metrics, RequestMetrics
from lcnn.serve.models import ServedModel
from lcnn.serve.routes import v1_router
from lcnn.serve.settings import Settings

__all__ = ["Service", "create_app"]

log = logging.getLogger("lcnn.serve")
STATIC = Path(__file__).parent / "static"
ENDPOINTS = {"/", "/healthz", "/readyz", "/metrics", "/v1/models", "/v1/spoof", "/v1/verify", "/v1/embed",
             "/v1/classify"}  # fmt: skip
# The page's own files only: no inline script or style, no other origin.
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}  # fmt: skip


class Service:
    """The app's state: the models by name, a batcher each, the decoding threads, readiness."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings, self.metrics = settings, metrics
        self.models: dict[str, ServedModel] = {}
        self.batchers: dict[str, Batcher] = {}
        self.error: str | None = None
        self.decoder = ThreadPoolExecutor(settings.decode_threads, thread_name_prefix="lcnn-decode")

    @property
    def ready(self) -> bool:
        return bool(self.batchers)

    def add(self, models: Sequence[ServedModel]) -> None:
        s = self.settings
        for model in models:
            batcher = Batcher(model.run, s.max_batch, s.max_wait_ms, s.max_queue, name=model.name,
                              on_batch=lambda size, seconds, name=model.name: self.metrics.batch(name, size, seconds))
            batcher.start()
            self.models[model.name], self.batchers[model.name] = model, batcher
        self.metrics.ready.set(1)

    async def load(self, loader: Callable[[], Sequence[ServedModel]]) -> None:
        try:
            models = await asyncio.to_thread(loader)
        except Exception:
            self.error = "loading the models failed; the reason is in the server's log"
            log.exception("loading the models failed")
            return
        self.add(models)

    async def stop(self) -> None:
        await asyncio.gather(*(b.stop() for b in self.batchers.values()))
        self.decoder.shutdown(wait=False, cancel_futures=True)

    def pick(self, task: str, name: str | None) -> ServedModel:
        """The model called ``name``, which must do ``task``; without a name, the one model of that task."""
        if not self.ready:
            raise ClientError(503, "not ready", self.error or "the models are loading")
        if name:
            if name not in self.models:
                raise ClientError(404, "unknown model", f"no model {name!r}; see GET /v1/models")
            if self.models[name].task != task:
                raise ClientError(422, "wrong model", f"model {name!r} is a {self.models[name].task} model, "
                                                      f"not a {task} one")  # fmt: skip
            return self.models[name]
        candidates = [m.name for m in self.models.values() if m.task == task]
        if not candidates:
            raise ClientError(404, "unknown model", f"no {task} model is loaded")
        if len(candidates) > 1:
            raise ClientError(422, "missing field", f"several {task} models are loaded; name one in the field "
                                                    f"'model' ({', '.join(candidates)})")  # fmt: skip
        return self.models[candidates[0]]

    async def decode(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a decoding thread."""
        return await asyncio.get_running_loop().run_in_executor(self.decoder, fn, *args)

    async def run(self, model: ServedModel, items: list[Any]) -> list[Any]:
        """Each item's result, through the model's batcher."""
        return await asyncio.gather(*(self.batchers[model.name].submit(item) for item in items))


def _error(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status, headers)


def _handlers(app: FastAPI, metrics: Metrics) -> None:
    @app.exception_handler(ClientError)
    async def client_error(request: Request, exc: ClientError) -> JSONResponse:
        metrics.errors.labels(exc.error).inc()
        return _error(exc.status, exc.error, exc.detail, exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:  # routing, multipart syntax
        kind = HTTPStatus(exc.status_code).phrase.lower()
        metrics.errors.labels(kind).inc()
        return _error(exc.status_code, kind, str(exc.detail))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:  # logged by the server
        metrics.errors.labels("internal").inc()
        return _error(500, "internal error", "the server failed on this request; the failure is in its log")


def create_app(models: Sequence[ServedModel] | Callable[[], Sequence[ServedModel]],
               settings: Settings | None = None) -> FastAPI:  # fmt: skip
    """The service for ``models``: loaded ones, or a function that loads them, run in a thread once the app
    starts (``/healthz`` answers at once, ``/readyz`` and the model endpoints 503 until it returns)."""
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service = app.state.service = Service(settings, metrics)
        loading = None
        if callable(models):
            loading = asyncio.create_task(service.load(models))
        else:
            service.add(models)
        try:
            yield
        finally:
            if loading is not None:
                loading.cancel()
            await service.stop()

    app = FastAPI(title="lcnn", version="1", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.settings = settings
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes, read_timeout=settings.read_timeout,
                       on_refused=lambda error: metrics.errors.labels(error.error).inc())  # fmt: skip
    app.add_middleware(RequestMetrics, metrics=metrics, endpoints=ENDPOINTS)
    _handlers(app, metrics)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> Any:
        service: Service = request.app.state.service
        if not service.ready:
            return _error(503, "not ready", service.error or "the models are loading")
        return {"status": "ready", "models": list(service.models)}

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(v1_router(settings))
    return app
