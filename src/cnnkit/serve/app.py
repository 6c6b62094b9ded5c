"""`create_app`: a FastAPI app serving one model — settings, lifespan, errors, metrics, the page.

Every error leaves as JSON {"error": "<one sentence>"} with its 4xx/5xx status (a `Rejected` from
the limits, auth or queue; a `CnnkitError` from the model as 422; validation errors as 422), so a
client never has to parse a traceback and the server keeps serving. The lifespan starts the
micro-batcher and, on shutdown (uvicorn's SIGTERM handling lets in-flight requests finish first),
drains it.
"""
from __future__ import annotations

import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from cnnkit.errors import CnnkitError
from cnnkit.serve.batching import MicroBatcher
from cnnkit.serve.limits import Limits, Rejected
from cnnkit.serve.metrics import ServeMetrics
from cnnkit.serve.model import ServedModel

# The page's own files only: no inline script, nothing from another origin.
PAGE_CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


@dataclass(frozen=True)
class ServeSettings:
    """How the server batches, waits, limits and guards (the `cnnkit serve` flags)."""

    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 256  # images admitted and waiting; more -> 503 + Retry-After
    timeout_s: float = 30.0  # per request, queueing included -> 504
    max_explain: int = 2  # explanations in flight; more -> 503
    token: str | None = None
    cors: str | None = None  # one allowed origin; None: no CORS headers at all
    limits: Limits = field(default_factory=Limits)


@dataclass
class Served:
    """What the endpoints share (app.state.served)."""

    model: ServedModel
    settings: ServeSettings
    batcher: MicroBatcher
    metrics: ServeMetrics
    static: Path
    explaining: int = 0
    draining: bool = False


def create_app(model: ServedModel | str | Path, settings: ServeSettings | None = None,
               device: str = "auto") -> FastAPI:
    """An app serving `model` (a `ServedModel`, run directory or checkpoint). Raises `CnnkitError`
    when the checkpoint cannot be loaded."""
    from cnnkit.serve.routes import router

    settings = settings or ServeSettings()
    model = model if isinstance(model, ServedModel) else ServedModel(model, device=device)
    metrics_box: list[ServeMetrics] = []
    batcher = MicroBatcher(model.run_batch, settings.max_batch, settings.max_wait_ms, settings.max_queue,
                           on_batch=lambda n, s: metrics_box[0].observe_batch(n, s))
    metrics = ServeMetrics(lambda: batcher.depth)
    metrics_box.append(metrics)
    static = Path(str(files("cnnkit.serve").joinpath("static")))
    served = Served(model, settings, batcher, metrics, static)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        served.draining = True
        await batcher.close()

    app = FastAPI(title="cnnkit serve", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description=f"{model.task.name} with {model.meta['model']['name']} ({model.source_name})")
    app.state.served = served
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=static), name="static")
    _add_docs(app)
    _add_handlers(app)
    _add_middleware(app, served)
    return app


def _add_docs(app: FastAPI) -> None:
    """/docs: FastAPI's Swagger UI page, its script and style served from the `swagger-ui-py` package
    (Swagger UI 5, which reads FastAPI's OpenAPI 3.1) instead of FastAPI's default CDN, so the API
    page works on a machine without internet, like the model page."""
    from importlib.util import find_spec

    from fastapi.openapi.docs import get_swagger_ui_html

    spec = find_spec("swagger_ui")  # located, not imported: its __init__ wires up other web frameworks
    assets = Path(spec.submodule_search_locations[0]) / "static"
    app.mount("/docs-assets", StaticFiles(directory=assets), name="docs-assets")

    @app.api_route("/docs", methods=["GET", "HEAD"], include_in_schema=False)  # HEAD as in routes.get
    async def docs():
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} - API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _add_handlers(app: FastAPI) -> None:
    @app.exception_handler(Rejected)
    async def rejected(request: Request, e: Rejected):
        return _error(e.status, e.message, e.headers)

    @app.exception_handler(CnnkitError)
    async def cnnkit_error(request: Request, e: CnnkitError):
        return _error(422, str(e))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        parts = [f"{'.'.join(str(p) for p in err.get('loc', ())[1:]) or 'request'}: {err.get('msg')}"
                 for err in e.errors()]
        return _error(422, "; ".join(parts)[:500] or "The request is not valid.")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        return _error(e.status_code, str(e.detail), getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception):
        return _error(500, f"Internal error ({type(e).__name__}); the server keeps running.")


def _add_middleware(app: FastAPI, served: Served) -> None:
    if served.settings.cors:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=[served.settings.cors], allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(CountAndGuard, served=served)


class CountAndGuard:
    """Counts every request (in flight; status and latency by endpoint), answers an unexpected error
    as JSON, and sets the security headers. A pure ASGI middleware: Starlette's `@app.middleware("http")`
    (BaseHTTPMiddleware) wraps each request in extra tasks and streams, and was about half of the
    event loop's samples under `bench/serve_load.py` (py-spy, 32 clients, ResNet-20)."""

    def __init__(self, app, served: Served):
        self.app, self.served = app, served

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics, start, state = self.served.metrics, time.perf_counter(), {"status": 500, "started": False}

        def endpoint() -> str:  # the router records the matched route in the (shared) scope
            route = scope.get("route")
            return getattr(route, "path", None) or ("/static" if scope["path"].startswith("/static/") else "other")

        async def guarded_send(message) -> None:
            if message["type"] == "http.response.start":
                state.update(status=message["status"], started=True)
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                if endpoint() in ("/", "/static"):
                    headers["Content-Security-Policy"] = PAGE_CSP
            await send(message)

        metrics.in_flight.inc()
        try:
            await self.app(scope, receive, guarded_send)
        except Exception as e:  # noqa: BLE001 - counted, then answered as JSON like every other error
            if state["started"]:
                raise
            await _error(500, f"Internal error ({type(e).__name__}); the server keeps running.")(
                scope, receive, guarded_send)
        finally:
            metrics.in_flight.dec()
            metrics.observe_request(endpoint(), state["status"], time.perf_counter() - start)
