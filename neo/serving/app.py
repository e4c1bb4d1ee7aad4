"""The FastAPI application: JSON endpoints in front of one micro-batched model.

Request path: body checked by pydantic (422 naming the field) -> `engine.validate` (422 for unknown
types or items) -> bounded queue (503 + Retry-After when full) -> the batcher's worker thread runs
`engine.run_batch` on up to `max_batch` requests -> result back to the waiting coroutine.

The engine (a `neo.Neo`, or a double in unit tests) loads in a background thread so `/healthz`
answers at once and `/readyz` turns 200 only when the model can serve.
"""

import asyncio
import hmac
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from neo.api import (
    DescribeUserRequest,
    GenerateRequest,
    HistoryEntry,
    Limits,
    NeoInputError,
    NewItem,
    RecommendRequest,
    SearchRequest,
    TextResult,
)
from neo.decoding.filters import ItemFilters
from neo.serving.batcher import BatcherStoppedError, MicroBatcher, QueueFullError
from neo.serving.metrics import ServingMetrics
from neo.serving.schemas import (
    CatalogResponse,
    ItemsResponse,
    StatusResponse,
    TextResponse,
    build_request_schemas,
)

log = logging.getLogger("neo.serving")


class Engine(Protocol):
    """What the server needs from a model: `neo.Neo` implements it."""

    def validate(self, request: Any) -> None: ...

    def run_batch(self, requests: Sequence[Any]) -> list[Any]: ...

    def catalog_summary(self) -> dict[str, int]: ...

    def extend_catalog(self, entity_type: str, items: Sequence[NewItem]) -> list[Any]: ...


@dataclass(frozen=True)
class ServeConfig:
    """Server settings (conf/serve.yaml); `api_key=None` turns authentication off."""

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    max_batch: int = 16
    max_wait_ms: float = 5.0
    queue_size: int = 256
    retry_after_s: int = 1
    request_timeout_s: float = 120.0
    max_body_bytes: int = 1_000_000
    limits: Limits = field(default_factory=Limits)


class _State:
    """The engine and batcher once loaded, or why loading failed."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.batcher: MicroBatcher | None = None
        self.load_error: str | None = None

    @property
    def ready(self) -> bool:
        return self.batcher is not None and self.batcher.alive


def _error(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def create_app(
    engine_factory: Callable[[], Engine],
    config: ServeConfig,
    on_load_failure: Callable[[BaseException], None] | None = None,
) -> FastAPI:
    """Build the app; `engine_factory` runs in a background thread at startup (it loads the model)."""
    state = _State()
    metrics = ServingMetrics()
    schemas = build_request_schemas(config.limits)
    retry_after = {"Retry-After": str(config.retry_after_s)}

    def load() -> None:
        try:
            started = time.perf_counter()
            engine = engine_factory()
            state.batcher = MicroBatcher(
                engine.run_batch,
                config.max_batch,
                config.max_wait_ms,
                config.queue_size,
                on_batch=metrics.observe_batch,
            )
            state.engine = engine
            log.info(
                "model ready",
                extra={
                    "load_seconds": round(time.perf_counter() - started, 2),
                    "catalog": engine.catalog_summary(),
                },
            )
        except BaseException as exc:
            state.load_error = f"{type(exc).__name__}: {exc}"
            log.exception("model failed to load")
            if on_load_failure is not None:
                on_load_failure(exc)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        loader = threading.Thread(target=load, name="neo-loader", daemon=True)
        loader.start()
        yield
        if state.batcher is not None:
            state.batcher.stop()

    app = FastAPI(
        title="neo",
        version="1",
        lifespan=lifespan,
        description="Catalog-grounded recommendation, search and user understanding from one LLM.",
    )

    # ----- auth --------------------------------------------------------------------------------------
    bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <key>` (when api_key is set)")
    header_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: <key>`")

    async def authorize(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        api_key: Annotated[str | None, Depends(header_key)],
    ) -> None:
        if config.api_key is None:
            return
        offered = api_key or (credentials.credentials if credentials else None)
        if offered is None or not hmac.compare_digest(offered.encode(), config.api_key.encode()):
            raise _UnauthorizedError

    # ----- errors ------------------------------------------------------------------------------------
    @app.exception_handler(_UnauthorizedError)
    async def unauthorized(_: Request, __: Exception) -> JSONResponse:
        return _error(
            401,
            "missing or wrong API key (send `Authorization: Bearer <key>` or `X-API-Key`)",
            {"WWW-Authenticate": "Bearer"},
        )

    @app.exception_handler(NeoInputError)
    async def bad_input(_: Request, exc: NeoInputError) -> JSONResponse:
        loc = ["body", *exc.field.replace("]", "").replace("[", ".").split(".")]
        loc = [int(part) if part.isdigit() else part for part in loc]
        return _error(422, [{"loc": loc, "msg": exc.message, "type": "value_error"}])

    @app.exception_handler(QueueFullError)
    async def queue_full(_: Request, exc: QueueFullError) -> JSONResponse:
        metrics.rejected.inc()
        return _error(503, f"server busy: {exc}; retry later", retry_after)

    @app.exception_handler(_NotReadyError)
    async def not_ready(_: Request, __: Exception) -> JSONResponse:
        return _error(503, state.load_error or "model is loading", retry_after)

    @app.exception_handler(TimeoutError)
    async def timed_out(_: Request, __: TimeoutError) -> JSONResponse:
        return _error(504, f"no answer within request_timeout_s={config.request_timeout_s}", retry_after)

    @app.exception_handler(BatcherStoppedError)
    async def stopping(_: Request, exc: BatcherStoppedError) -> JSONResponse:
        return _error(503, str(exc), retry_after)

    # ----- access log, metrics, body size ------------------------------------------------------------
    @app.middleware("http")
    async def observe(request: Request, call_next: Callable) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex[:16]
        started = time.perf_counter()
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > config.max_body_bytes:
            response: Response = _error(
                413, f"request body is {length} bytes; the limit is {config.max_body_bytes}"
            )
        else:
            response = await call_next(request)
        seconds = time.perf_counter() - started
        route = request.scope.get("route")
        route_path = getattr(route, "path", "unmatched")
        metrics.observe_request(route_path, response.status_code, seconds)
        if state.batcher is not None:
            metrics.queue_depth.set(state.batcher.depth)
        response.headers["X-Request-ID"] = request_id
        log.info(
            "request",
            extra={
                "request_id": request_id,
                "method": request.method,
                "path": request.url.path,
                "status": response.status_code,
                "ms": round(seconds * 1000, 2),
            },
        )
        return response

    def ready_engine() -> Engine:
        """The engine once loading has finished and the batcher runs; else 503 (loading or failed)."""
        if not state.ready or state.engine is None or state.batcher is None:
            raise _NotReadyError
        return state.engine

    async def submit(request: Any) -> Any:
        ready_engine().validate(request)
        future = state.batcher.submit(request)
        metrics.queue_depth.set(state.batcher.depth)
        return await asyncio.wait_for(asyncio.wrap_future(future), config.request_timeout_s)

    # ----- endpoints ---------------------------------------------------------------------------------
    secured = [Depends(authorize)]

    @app.get("/healthz", response_model=StatusResponse, tags=["ops"])
    async def healthz() -> dict:
        """The process is up (the model may still be loading)."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=StatusResponse,
        tags=["ops"],
        responses={503: {"model": StatusResponse, "description": "loading or failed"}},
    )
    async def readyz() -> Any:
        """The model is loaded and the batcher runs: requests will be served."""
        if state.ready:
            return {"status": "ready"}
        return JSONResponse(
            {"status": "failed" if state.load_error else "loading", "detail": state.load_error},
            status_code=503,
            headers=retry_after,
        )

    @app.get("/metrics", tags=["ops"], dependencies=secured, response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus text exposition: request counts and latencies, batch sizes, queue depth."""
        if state.batcher is not None:
            metrics.queue_depth.set(state.batcher.depth)
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/v1/catalog", response_model=CatalogResponse, dependencies=secured, tags=["catalog"])
    async def catalog() -> dict:
        """Entity types the model can name and how many items each has."""
        if state.engine is None:
            raise _NotReadyError
        summary = state.engine.catalog_summary()
        return {
            "entity_types": [{"name": n, "items": c} for n, c in summary.items()],
            "total_items": sum(summary.values()),
        }

    new_items_body = schemas.new_items

    @app.post("/v1/items", response_model=ItemsResponse, dependencies=secured, tags=["catalog"])
    async def add_items(body: new_items_body) -> dict:  # type: ignore[valid-type]
        """Add items to the served catalog without retraining; answers their records and SIDs.

        A nested type's item (an episode) names its `parent`; a quantised type's item brings its
        `embedding`. Kept across restarts only when the server runs with an additions file
        (`additions=FILE`); otherwise held in memory.
        """
        engine = ready_engine()
        items = [NewItem(**item) for item in body.model_dump()["items"]]
        # the trie rebuild is CPU work: off the event loop, beside the batcher's requests
        added = await asyncio.to_thread(engine.extend_catalog, body.entity_type, items)
        return {"items": [i.to_dict() for i in added]}

    recommend_body, search_body = schemas.recommend, schemas.search
    describe_body, generate_body = schemas.describe_user, schemas.generate

    @app.post("/v1/recommend", response_model=ItemsResponse, dependencies=secured, tags=["model"])
    async def recommend(body: recommend_body) -> dict:  # type: ignore[valid-type]
        """Top-k items of `target_type` for a user history (constrained beam search)."""
        fields = _with_history_entries(body.model_dump())
        if fields["filters"] is not None:
            fields["filters"] = ItemFilters(fields["filters"]["allow"], fields["filters"]["deny"])
        items = await submit(RecommendRequest(**fields))
        return {"items": [i.to_dict() for i in items]}

    @app.post("/v1/search", response_model=ItemsResponse, dependencies=secured, tags=["model"])
    async def search(body: search_body) -> dict:  # type: ignore[valid-type]
        """Top-k items of `target_type` for a text query."""
        items = await submit(SearchRequest(**body.model_dump()))
        return {"items": [i.to_dict() for i in items]}

    @app.post("/v1/describe_user", response_model=TextResponse, dependencies=secured, tags=["model"])
    async def describe_user(body: describe_body) -> dict:  # type: ignore[valid-type]
        """A free-text interest profile of a user history; item mentions resolved to catalog records."""
        result: TextResult = await submit(DescribeUserRequest(**_with_history_entries(body.model_dump())))
        return result.to_dict()

    @app.post("/v1/generate", response_model=TextResponse, dependencies=secured, tags=["model"])
    async def generate(body: generate_body) -> dict:  # type: ignore[valid-type]
        """Continue a free prompt; item spans in the output are constrained to the catalog and resolved."""
        result: TextResult = await submit(GenerateRequest(**body.model_dump()))
        return result.to_dict()

    app.state.neo = state
    app.state.metrics = metrics
    return app


def _with_history_entries(fields: dict[str, Any]) -> dict[str, Any]:
    """Turn the JSON objects of a history into `HistoryEntry`s (bare id strings stay as they are)."""
    history = [HistoryEntry(**entry) if isinstance(entry, dict) else entry for entry in fields["history"]]
    return fields | {"history": history}


class _UnauthorizedError(Exception):
    """Raised by the auth dependency; rendered as 401."""


class _NotReadyError(Exception):
    """The model is not loaded (yet, or it failed); rendered as 503."""
