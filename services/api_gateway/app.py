"""The HTTP API: articles (CRUD, tags, full-text search), health, readiness, metrics."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.json_schema import SkipJsonSchema
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.api_gateway import __version__
from services.api_gateway.guard import RequestGuard
from services.api_gateway.metrics import Metrics
from services.api_gateway.migrations import migrate
from services.api_gateway.ratelimit import RateLimiter
from services.api_gateway.rotation import KeySet, SecretReloader, read_secret
from services.api_gateway.settings import Settings, body_limit

__all__ = ["create_app", "install_middleware"]

log = logging.getLogger("api_gateway")


def _storable(text: str) -> str:
    """Text Postgres can store: no NUL character, no lone surrogate (not encodable as UTF-8).
    Either would otherwise reach the database and come back as a 500."""
    if "\x00" in text:
        raise ValueError("must not contain the NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return text


Storable = AfterValidator(_storable)
Tag = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,99}$")]
Title = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True), Storable]
Body = Annotated[str, StringConstraints(min_length=1, max_length=50_000), Storable]
SearchText = Annotated[str, Storable]
# bigserial ids: anything beyond is no id of ours, and a 422 rather than a database error.
ArticleId = Annotated[int, Field(ge=1, le=2**63 - 1)]


class ArticleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Title
    body: Body
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    slug: Slug | None = None


class ArticlePatch(BaseModel):
    """Fields left out are unchanged; none may be null (the columns are NOT NULL). The
    schema says so: None is only the "not given" marker, kept out of the document."""

    model_config = ConfigDict(extra="forbid")
    title: Title | SkipJsonSchema[None] = None
    body: Body | SkipJsonSchema[None] = None
    tags: Annotated[list[Tag], Field(max_length=20)] | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _not_empty(self) -> ArticlePatch:
        if not self.model_fields_set:
            raise ValueError("give at least one of title, body, tags")
        nulls = sorted(name for name in self.model_fields_set if getattr(self, name) is None)
        if nulls:
            raise ValueError(f"{', '.join(nulls)} cannot be null: leave a field out to keep it")
        return self


class Problem(BaseModel):
    """Every error answer: what went wrong, for a human."""

    detail: str


class Article(BaseModel):
    id: int
    slug: str
    title: str
    body: str
    tags: list[str]
    created_at: datetime
    updated_at: datetime


class ArticlePage(BaseModel):
    items: list[Article]
    total: int
    limit: int
    offset: int


_COLUMNS = sql.SQL("id, slug, title, body, tags, created_at, updated_at")
_INSERT_TEMPLATE = "INSERT INTO articles (slug, title, body, tags) VALUES (%s, %s, %s, %s) RETURNING {}"
_INSERT = sql.SQL(_INSERT_TEMPLATE).format(_COLUMNS)
_BY_ID = sql.SQL("SELECT {} FROM articles WHERE id = %s").format(_COLUMNS)
_FILTER = sql.SQL(
    "(%(tag)s::text IS NULL OR tags @> ARRAY[%(tag)s::text]) AND "
    "(%(q)s::text IS NULL OR search @@ websearch_to_tsquery('english', %(q)s))"
)
_BY_RANK = sql.SQL("ts_rank(search, websearch_to_tsquery('english', %(q)s)) DESC, id DESC")
_BY_DATE = sql.SQL("created_at DESC, id DESC")


def slugify(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:100].strip("-")
    return slug or "article"


@dataclass
class State:
    settings: Settings
    pool: AsyncConnectionPool
    redis: Redis
    limiter: RateLimiter
    metrics: Metrics
    api_keys: KeySet  # key -> client: replaced by a rotated keys file, made stale by a refused one


def _state(request: Request) -> State:
    state: State = request.app.state.gateway
    return state


# Declared for the OpenAPI document (two alternative schemes); the check itself is done by
# RequestGuard before the body is read, which leaves the client's name in request.state.
API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="the client's API key")
BEARER = HTTPBearer(auto_error=False, description="the API key as a bearer token")


async def require_client(
    request: Request,
    _key: Annotated[str | None, Security(API_KEY)] = None,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
) -> str:
    state = _state(request)
    client: str | None = getattr(request.state, "client", None)
    if client is None:  # only without the guard in front, which create_app always installs
        raise HTTPException(401, "missing API key", {"WWW-Authenticate": "Bearer"})
    try:
        decision = await state.limiter.hit(client)
    except RedisError:
        # Fail open: a cache outage must not take the API down; /ready reports it.
        state.metrics.degraded.labels("redis").inc()
        return client
    if not decision.allowed:
        raise HTTPException(
            429,
            "rate limit exceeded",
            {"Retry-After": str(decision.retry_after), "X-RateLimit-Remaining": "0"},
        )
    return client


def _cache_key(state: State, article_id: int) -> str:
    return f"{state.settings.redis_prefix}article:{article_id}"


async def _forget(state: State, article_id: int) -> None:
    try:
        await state.redis.delete(_cache_key(state, article_id))
    except RedisError:
        state.metrics.degraded.labels("redis").inc()


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": Problem, "description": _WHY[code]} for code in codes}


_WHY = {
    400: "the body is not UTF-8 text (FastAPI cannot begin to parse it)",
    401: "no API key was sent",
    403: "the API key is not valid",
    404: "no such article",
    409: "an article with this slug exists",
    413: "the request body is larger than the service accepts",
    429: "the client's rate limit is used up (see Retry-After)",
    503: "the database is unavailable; retry later",
}
router = APIRouter(
    prefix="/v1",
    dependencies=[Depends(require_client)],
    responses=_errors(401, 403, 413, 429, 503),
)


@router.post("/articles", status_code=201, responses=_errors(400, 409))
async def create_article(payload: ArticleIn, request: Request, response: Response) -> Article:
    state = _state(request)
    slug = payload.slug or slugify(payload.title)
    try:
        async with state.pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                _INSERT, (slug, payload.title, payload.body, payload.tags)
            )
            row = await cur.fetchone()
    except psycopg.errors.UniqueViolation:
        raise HTTPException(409, f"an article with slug {slug!r} already exists") from None
    if row is None:  # INSERT ... RETURNING always returns the row
        raise RuntimeError("INSERT returned no row")
    response.headers["Location"] = f"/v1/articles/{row['id']}"
    return Article(**row)


@router.get("/articles/{article_id}", responses=_errors(404))
async def get_article(article_id: ArticleId, request: Request, response: Response) -> Article:
    state = _state(request)
    key = _cache_key(state, article_id)
    try:
        cached = await state.redis.get(key)
    except RedisError:
        state.metrics.degraded.labels("redis").inc()
        cached = None
    if cached is not None:
        state.metrics.cache.labels("hit").inc()
        response.headers["X-Cache"] = "hit"
        return Article.model_validate_json(cached)
    state.metrics.cache.labels("miss").inc()
    async with state.pool.connection() as conn:
        cur = await conn.cursor(row_factory=dict_row).execute(_BY_ID, (article_id,))
        row = await cur.fetchone()
    if row is None:
        raise HTTPException(404, f"no article with id {article_id}")
    article = Article(**row)
    try:
        await state.redis.set(key, article.model_dump_json(), ex=state.settings.cache_ttl_seconds)
    except RedisError:
        state.metrics.degraded.labels("redis").inc()
    response.headers["X-Cache"] = "miss"
    return article


@router.patch("/articles/{article_id}", responses=_errors(400, 404))
async def update_article(article_id: ArticleId, patch: ArticlePatch, request: Request) -> Article:
    state = _state(request)
    changes = patch.model_dump(exclude_unset=True)
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in changes
    )
    query = sql.SQL("UPDATE articles SET {}, updated_at = now() WHERE id = {} RETURNING {}").format(
        assignments, sql.Placeholder("id"), _COLUMNS
    )
    async with state.pool.connection() as conn:
        cur = await conn.cursor(row_factory=dict_row).execute(query, {**changes, "id": article_id})
        row = await cur.fetchone()
    # Invalidate after the write commits: a reader racing in between re-reads the new row.
    await _forget(state, article_id)
    if row is None:
        raise HTTPException(404, f"no article with id {article_id}")
    return Article(**row)


@router.delete("/articles/{article_id}", status_code=204, responses=_errors(404))
async def delete_article(article_id: ArticleId, request: Request) -> Response:
    state = _state(request)
    async with state.pool.connection() as conn:
        cur = await conn.execute("DELETE FROM articles WHERE id = %s", (article_id,))
        deleted = cur.rowcount
    await _forget(state, article_id)
    if not deleted:
        raise HTTPException(404, f"no article with id {article_id}")
    return Response(status_code=204)


@router.get("/articles")
async def list_articles(
    request: Request,
    tag: Annotated[Tag | None, Query()] = None,
    q: Annotated[SearchText | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> ArticlePage:
    state = _state(request)
    params: dict[str, Any] = {"tag": tag, "q": q, "limit": limit, "offset": offset}
    count = sql.SQL("SELECT count(*) FROM articles WHERE {}").format(_FILTER)
    page = sql.SQL("SELECT {} FROM articles WHERE {} ORDER BY {} LIMIT %(limit)s OFFSET %(offset)s").format(
        _COLUMNS, _FILTER, _BY_RANK if q else _BY_DATE
    )
    async with state.pool.connection() as conn:
        cur = await conn.execute(count, params)
        total_row = await cur.fetchone()
        rows_cur = await conn.cursor(row_factory=dict_row).execute(page, params)
        rows = await rows_cur.fetchall()
    total = int(total_row[0]) if total_row else 0
    return ArticlePage(items=[Article(**r) for r in rows], total=total, limit=limit, offset=offset)


def install_middleware(
    app: FastAPI, metrics: Metrics, api_keys: Callable[[], Mapping[str, str]], max_body: int
) -> None:
    """The guard sits right in front of routing, so the API key is checked and the body size
    capped before FastAPI reads or parses any body; metrics wrap it and count its refusals.
    The order matters: between the guard and FastAPI there must be no BaseHTTPMiddleware,
    whose task group would turn the guard's 413 into an exception group, and so a 400."""
    app.add_middleware(RequestGuard, api_keys=api_keys, max_body=max_body)
    app.middleware("http")(metrics.middleware)  # added last: outermost


def _gateway(app: FastAPI) -> State:
    state: State = app.state.gateway
    return state


def create_app(settings: Settings | None = None, *, migrate_on_start: bool = True) -> FastAPI:
    """The ASGI app. Settings default to the environment (see settings.py)."""
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cfg = settings or Settings.from_env()
        if migrate_on_start:
            applied = await asyncio.to_thread(migrate, cfg.database_url)
            if applied:
                log.info("applied migrations: %s", ", ".join(applied))
        url_file = cfg.database_url_file

        async def conninfo() -> str:
            # Read at every new connection: a rotated password is used as soon as it is written.
            return await asyncio.to_thread(read_secret, url_file) if url_file else cfg.database_url

        pool = AsyncConnectionPool(
            conninfo,
            min_size=cfg.db_pool_min,
            max_size=cfg.db_pool_max,
            open=False,
            kwargs={"autocommit": True},
            # A connection broken by a Postgres restart is replaced instead of failing a request.
            check=AsyncConnectionPool.check_connection,
            timeout=5,
        )
        await pool.open(wait=True, timeout=30)
        redis = Redis.from_url(cfg.redis_url, socket_timeout=2, socket_connect_timeout=2)
        app.state.gateway = State(
            cfg,
            pool,
            redis,
            RateLimiter(redis, cfg.rate_limit_per_minute, cfg.redis_prefix, cfg.rate_limit_overrides),
            metrics,
            KeySet(cfg.api_keys, cfg.api_keys_overlap),
        )
        gateway: State = app.state.gateway
        reloader = SecretReloader(
            cfg.reload_seconds,
            keys_file=cfg.api_keys_file,
            keys=gateway.api_keys,
            url_file=url_file,
            on_url=pool.drain,
            on_refused=lambda secret: metrics.secret_reload_errors.labels(secret).inc(),
        )
        watcher = asyncio.create_task(reloader.run()) if url_file or cfg.api_keys_file else None
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
            await pool.close()
            await redis.aclose()

    app = FastAPI(title="knowledge hub API gateway", version=__version__, lifespan=lifespan)
    limit = settings.max_body_bytes if settings else body_limit()

    def keys_in_force() -> Mapping[str, str]:
        # The running gateway's (which a rotated keys file replaces), not the settings'; looked
        # up per request, as the gateway exists only once the app has started.
        return _gateway(app).api_keys.current()

    install_middleware(app, metrics, keys_in_force, limit)
    app.include_router(router)

    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(PoolTimeout)
    async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        metrics.degraded.labels("postgres").inc()
        return JSONResponse({"detail": "database unavailable, retry later"}, 503, {"Retry-After": "1"})

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the process serves HTTP. Checks no dependency on purpose."""
        return {"status": "ok", "version": __version__}

    @app.get("/ready", responses={503: {"description": "Postgres or Redis does not answer"}})
    async def ready(request: Request) -> JSONResponse:
        """Readiness: Postgres and Redis both answer."""
        state = _state(request)
        checks: dict[str, str] = {}
        try:
            async with state.pool.connection(timeout=1) as conn:
                await conn.execute("SELECT 1")
            checks["postgres"] = "ok"
        except (psycopg.Error, PoolTimeout) as exc:
            checks["postgres"] = f"unavailable: {type(exc).__name__}"
        try:
            await asyncio.wait_for(state.redis.ping(), timeout=1)
            checks["redis"] = "ok"
        except (RedisError, TimeoutError, OSError) as exc:
            checks["redis"] = f"unavailable: {type(exc).__name__}"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks}, 200 if ok else 503)

    # Prometheus' text format, not JSON: left out of the OpenAPI document rather than misdescribed.
    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
