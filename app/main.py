"""The FastAPI application: ``create_app(settings)`` and the lifespan that builds its parts.

Nothing runs at import: the app, its engines and its LM are built per ``create_app`` call
and closed when the lifespan ends. DSPy (and what it pulls in) is imported only when an LM or
embeddings are configured: it took most of a lexical service's start-up (see docs/deployment.md).
"""

from __future__ import annotations

import gc
import logging
import time as clock
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI
from sqlalchemy.exc import SQLAlchemyError
from starlette.routing import Route

from app.api import (
    batch_api,
    cache_api,
    health_api,
    keys_api,
    memory_api,
    metrics_api,
    route_api,
    route_log_api,
    sources_api,
)
from app.api.auth import admin_only
from app.api.body_limit import BodyLimitMiddleware
from app.api.body_timeout import BodyTimeoutMiddleware
from app.api.offline_docs import install_offline_docs
from app.api.openapi_doc import install_openapi
from app.api.problems import install_problem_handlers
from app.api.security_headers import SecurityHeadersMiddleware, install_cors
from app.api.state import AppState
from app.auth.authenticator import Authenticator
from app.auth.key_limits import KeyLimiter, KeyLimits, micro_usd, utc_day
from app.auth.key_repository import ApiKeyRepository
from app.demo.warehouse import ensure_demo_warehouse
from app.llm.cache_hints import resolve_cache_hint
from app.llm.limits import ObservedLimiter
from app.mcp.mount import MCP_PATH, MCPMount
from app.memory.route_memory import MemoryConfig, RouteMemory
from app.observability.redaction import Redactor, redacting_logs, secrets_of
from app.observability.tracing import instrument
from app.routing.caching.route_cache import CachedRoutes
from app.routing.caching.verdict_cache import VerdictCache
from app.routing.cutoff import RouteCutoff
from app.routing.extra_votes import ExtraVotes
from app.routing.judging.earned import EarnedPlaceJudge
from app.routing.judging.program_version import program_version
from app.routing.judging.versions import program_version_of
from app.routing.plan import FirstPass
from app.routing.ranking.relevance import RelevanceModel
from app.routing.retrieval.memory_prior import MemoryTuning
from app.routing.service import RouteService
from app.settings import DEMO_SOURCE, Settings, SourceConfig, get_settings
from app.sources.registry import CatalogRegistry
from app.store.runtime import StoreRuntime, open_store

if TYPE_CHECKING:
    from app.llm.backend import LMBackend
    from app.redis_link import RedisLink
    from app.routing.caching.shared_route_cache import SharedRouteCache
    from app.routing.judging.judge import LMJudge
    from app.routing.retrieval.dense import TableEmbeddings

log = logging.getLogger(__name__)


async def _sources(settings: Settings) -> dict[str, SourceConfig]:
    if settings.sources:
        return dict(settings.sources)
    url = await ensure_demo_warehouse(settings.demo_warehouse_path)
    log.warning("no TABLEROUTER_SOURCES configured: serving the bundled demo warehouse as %r", DEMO_SOURCE)
    return {DEMO_SOURCE: SourceConfig.model_validate({"url": url})}


async def _shared_in_redis(
    settings: Settings, stack: AsyncExitStack
) -> tuple[RedisLink | None, ObservedLimiter | None, SharedRouteCache | None]:
    """The link, LM limits and route cache shared with the other replicas, when there is a Redis."""
    if settings.redis_url is None:
        return None, None, None
    # The Redis client takes ~0.4 s to import (measured): only a service with a Redis pays it.
    from app.llm.failover_limiter import shared_limits
    from app.redis_link import RedisLink
    from app.routing.caching.shared_route_cache import shared_route_cache

    link = RedisLink(settings.redis_url.get_secret_value(), settings.redis_key_prefix)
    await link.start()
    stack.push_async_callback(link.aclose)
    limiter = shared_routes = None
    if settings.llm_model:
        shared, semaphore = shared_limits(settings, link)
        stack.push_async_callback(semaphore.aclose)
        limiter = ObservedLimiter(shared, settings.llm_max_concurrency)
    if settings.route_cache_size > 0:
        shared_routes = shared_route_cache(settings, link)
        stack.push_async_callback(shared_routes.aclose)
    return link, limiter, shared_routes


def _warn_about_auth(settings: Settings) -> None:
    if not settings.auth:
        log.warning(
            "!!! TABLEROUTER_AUTH is off: every request is served WITHOUT an API key and sees every "
            "source and table. For local development only; never expose this service. !!!"
        )
    elif settings.admin_key is None:
        log.info(
            "API keys required; create one with `tablerouter keys create` (or set TABLEROUTER_ADMIN_KEY)"
        )


def _authenticator(settings: Settings, keys: ApiKeyRepository, store: StoreRuntime) -> Authenticator:
    admin_key = settings.admin_key.get_secret_value() if settings.admin_key else None
    return Authenticator(
        keys.by_secret, admin_key, settings.key_cache_s, store.health, settings.store_timeout_s
    )


async def _key_limits(settings: Settings, store: StoreRuntime, link: RedisLink | None) -> KeyLimiter:
    """The per-key limits: in Redis with a link, else in process; today's spend from the route log."""
    local = KeyLimits(settings.key_rate_limit, settings.key_daily_tokens, settings.key_daily_usd)
    now = datetime.now(UTC)
    try:
        spent = await store.routes.spend_by_key_since(datetime.combine(now.date(), time.min, UTC))
        # The last minute's routes: a restart (during a Redis outage, or without Redis) gives no
        # key a fresh burst of its rate.
        local.seed_recent_routes(await store.routes.route_times_by_key_since(now - timedelta(minutes=1)))
    except (SQLAlchemyError, OSError) as exc:
        # Serving with fresh budgets beats not serving; the store's own errors show elsewhere.
        log.warning("today's spend per key not read from the route log (%r): starting at 0", exc)
        spent = {}
    tokens = {key_id: s.tokens for key_id, s in spent.items()}
    dollars = {key_id: micro_usd(s.cost_usd) for key_id, s in spent.items() if s.cost_usd > 0}
    local.seed(utc_day(now), tokens, dollars)
    if link is None:
        return local
    from app.auth.shared_key_limits import SharedKeyLimits

    shared = SharedKeyLimits(link, local, settings.replicas)
    await shared.seed(utc_day(now), tokens, dollars)  # Redis stays the authority: only counters it lacks
    return shared


# The DSPy-backed parts, each imported where it is built: a lexical service never imports DSPy
# (~1.6 s of a 2-core machine's start-up, measured), and never needs to.


def _lm_backend(settings: Settings, limiter: ObservedLimiter | None) -> LMBackend | None:
    if not settings.llm_model:
        return None
    from app.llm.backend import build_backend

    return build_backend(settings, limiter)


def _table_embeddings(settings: Settings) -> TableEmbeddings | None:
    if not settings.embedding_model:
        return None
    from app.routing.retrieval.dense import build_table_embeddings

    return build_table_embeddings(settings)


def _lm_parts(
    settings: Settings, limiter: ObservedLimiter | None, stack: AsyncExitStack
) -> tuple[LMBackend | None, TableEmbeddings | None]:
    """The LM backend and the table embeddings the settings configure, closed with ``stack``."""
    backend = _lm_backend(settings, limiter)
    if backend is None:
        log.warning("no TABLEROUTER_LLM_MODEL configured: routing with the lexical (BM25) judge")
    else:
        stack.push_async_callback(backend.aclose)
    embeddings = _table_embeddings(settings)
    if embeddings is not None:
        stack.push_async_callback(embeddings.aclose)
    return backend, embeddings


def relevance_model(settings: Settings) -> RelevanceModel:
    """How a route's votes become probabilities, as the settings configure it."""
    configured = settings.judge_fpr
    return RelevanceModel(
        fnr=settings.judge_fnr,
        fpr=0.05 if configured is None else configured,
        estimate_fpr=configured is None,
        expected_tables=settings.expected_tables,
        prior_weight=settings.prior_weight,
    )


def _lm_judge(settings: Settings, backend: LMBackend) -> LMJudge:
    from app.routing.judging.judge import LMJudge

    hint = resolve_cache_hint(settings.llm_cache_hint, backend.model, settings.llm_api_base)
    return LMJudge(backend, settings.llm_timeout, settings.judge_format, hint)


def _route_memory(settings: Settings, store: StoreRuntime, embeddings: TableEmbeddings | None) -> RouteMemory:
    config = MemoryConfig(
        settings.memory_neighbours,
        settings.memory_min_similarity,
        settings.memory_refresh_s,
        settings.memory_retention_days,
        settings.memory_dense_floor,
    )
    return RouteMemory(store.memory, config, embeddings)


def _router(
    settings: Settings,
    backend: LMBackend | None,
    embeddings: TableEmbeddings | None,
    shared_routes: SharedRouteCache | None,
    *,
    cutoff: RouteCutoff,
    memory: RouteMemory,
) -> CachedRoutes:
    """The route service: the judge behind the verdict cache, the service behind the route cache."""
    lm_judge = _lm_judge(settings, backend) if backend is not None else None
    version = program_version(lm_judge)
    # A table a steering comment selected is judged again without it (before the cache keeps its votes).
    judge = (
        VerdictCache(EarnedPlaceJudge(lm_judge), settings.verdict_cache_size, version) if lm_judge else None
    )
    prices = None
    if backend is not None:
        from app.llm.prices import prices_for  # LiteLLM's price list, only with an LM

        prices = prices_for(settings)
    service = RouteService(
        judge,
        settings.shortlist_size,
        embeddings,
        settings.prior_weight,
        prices=prices,
        program_version=program_version_of(settings.judge_format),
        first_pass=FirstPass(
            settings.first_pass_above, settings.first_pass_chunk_tokens, settings.first_pass_keep
        ),
        relevance=relevance_model(settings),
        extra_votes=ExtraVotes(settings.max_extra_votes, settings.extra_vote_token_share),
        cutoff=cutoff,
        memory=memory,
        memory_tuning=MemoryTuning(
            settings.memory_neighbours,
            settings.memory_weight,
            settings.memory_confident_similarity,
            settings.memory_shortlist_size,
        ),
    )
    return CachedRoutes(service, settings.route_cache_size, version, shared=shared_routes)


def create_app(settings: Settings, *, freeze_heap: bool = False) -> FastAPI:
    """A new application for ``settings``.

    ``freeze_heap``: collect and freeze the heap once started, and unfreeze it at shutdown - for
    the app that owns its process (``tablerouter serve``). The heap is the process's, not the
    app's: where several apps share a process (tests, the eval harness, in-process benchmarks) one
    app's shutdown would unfreeze the others' objects, and each start would pay a full collection
    of the host's heap (0.5-1 s in the test process, measured).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            started = clock.perf_counter()

            def phase(done: str) -> None:
                # One INFO line per phase, so a slow start-up shows where its time went.
                log.info("start-up: %s (%.0f ms)", done, (clock.perf_counter() - started) * 1000)

            _warn_about_auth(settings)
            # First, so every record of this app's life (a failing store or source included) is masked.
            redactor = Redactor(secrets_of(settings))
            stack.enter_context(redacting_logs(redactor))
            store = await open_store(settings)
            migrated = " and migrated" if settings.migrate_on_start else ""
            phase("store opened" + (migrated if store.health.up else ", degraded: it does not answer"))
            # Closed last, after the server stopped taking requests: every answered route gets logged.
            stack.push_async_callback(store.aclose)
            keys = ApiKeyRepository(store.store)
            registry = CatalogRegistry(settings, await _sources(settings), store.snapshots, redactor)
            stack.push_async_callback(registry.aclose)
            phase(f"sources configured ({len(registry.sources)})")
            link, limiter, shared_routes = await _shared_in_redis(settings, stack)
            backend, embeddings = _lm_parts(settings, limiter, stack)
            phase(f"LM backend built ({backend.model})" if backend else "lexical judge")
            router = _router(
                settings,
                backend,
                embeddings,
                shared_routes,
                cutoff=cutoff,
                memory=(memory := _route_memory(settings, store, embeddings)),
            )
            app.state.tablerouter = AppState(
                settings,
                registry,
                backend,
                router,
                store,
                keys,
                _authenticator(settings, keys, store),
                await _key_limits(settings, store, link),
                memory,
            )
            await memory.start(list(registry.sources))
            stack.push_async_callback(memory.aclose)
            await registry.start()
            phase(f"sources loaded ({len(registry.sources)})")
            stack.push_async_callback(mcp.aclose)
            if freeze_heap:
                # Start-up leaves ~500,000 long-lived objects (DSPy, pydantic, the catalogs); a
                # full collection scanning them held the event loop 0.4 s (measured). Frozen,
                # they are skipped; unfrozen at shutdown so a stopped app's cycles can still be
                # collected.
                gc.collect()
                gc.freeze()
                stack.callback(gc.unfreeze)
            phase("ready")
            yield

    # The server's notice of shutdown (app.connections), for the routes in flight.
    cutoff = RouteCutoff()
    app = FastAPI(
        title="tablerouter",
        version="0.1.0",
        summary="Routes a text-to-SQL question to the few warehouse tables its SQL needs.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.route_cutoff = cutoff
    # The MCP server (streamable HTTP): started, and its SDK imported, on the first call.
    mcp = MCPMount(lambda: app.state.tablerouter)
    _install_http(app, settings, mcp)
    return app


def _install_http(app: FastAPI, settings: Settings, mcp: MCPMount) -> None:
    """The middleware, routers and documentation pages of the HTTP API."""
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(BodyTimeoutMiddleware, timeout_s=settings.body_timeout_s)
    install_cors(app, settings.cors_origins)
    # Outermost of ours, so preflights, 413s and every error response carry the headers too.
    app.add_middleware(SecurityHeadersMiddleware)
    install_problem_handlers(app)
    app.include_router(route_api.router)
    app.include_router(batch_api.router)
    app.include_router(sources_api.router)
    app.include_router(route_log_api.router)
    app.include_router(health_api.router)
    app.include_router(cache_api.router)
    app.include_router(keys_api.router)
    app.router.routes.append(Route(MCP_PATH, mcp, methods=["GET", "POST", "DELETE"], include_in_schema=False))
    app.include_router(memory_api.router)
    install_openapi(app)
    install_offline_docs(app)
    if settings.metrics_enabled:
        protected = [Depends(admin_only)] if settings.metrics_auth else []
        app.include_router(metrics_api.router, dependencies=protected)
    if settings.otel_enabled:
        instrument(app)


def app_from_environment() -> FastAPI:
    """The app for the settings in the environment (``tablerouter serve``'s factory, one per worker)."""
    return create_app(get_settings(), freeze_heap=True)
