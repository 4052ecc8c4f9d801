"""The FastAPI application: ``create_app(settings)`` and the lifespan that builds its parts.

Nothing runs at import: the app, its engines and its LM are built per ``create_app`` call
and closed when the lifespan ends.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api import health_api, metrics_api, route_api, sources_api
from app.api.body_limit import BodyLimitMiddleware
from app.api.problems import install_problem_handlers
from app.api.state import AppState
from app.catalog.registry import CatalogRegistry
from app.cluster.failover_limiter import shared_limits
from app.cluster.redis_link import RedisLink
from app.demo.warehouse import ensure_demo_warehouse
from app.llm.backend import build_backend
from app.llm.limits import ObservedLimiter
from app.observability.tracing import instrument
from app.routing.judge import LMJudge
from app.routing.service import RouteService
from app.settings import DEMO_SOURCE, Settings, SourceConfig

log = logging.getLogger(__name__)


async def _sources(settings: Settings) -> dict[str, SourceConfig]:
    if settings.sources:
        return dict(settings.sources)
    url = await ensure_demo_warehouse(settings.demo_warehouse_path)
    log.warning("no TABLEROUTER_SOURCES configured: serving the bundled demo warehouse as %r", DEMO_SOURCE)
    return {DEMO_SOURCE: SourceConfig.model_validate({"url": url})}


def create_app(settings: Settings) -> FastAPI:
    """A new application for ``settings``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        registry = CatalogRegistry(settings, await _sources(settings))
        link, semaphore, limiter = None, None, None
        if settings.redis_url is not None and settings.llm_model:
            link = RedisLink(settings.redis_url.get_secret_value(), settings.redis_key_prefix)
            await link.start()
            shared, semaphore = shared_limits(settings, link)
            limiter = ObservedLimiter(shared)
        backend = build_backend(settings, limiter)
        if backend is None:
            log.warning("no TABLEROUTER_LLM_MODEL configured: routing with the lexical (BM25) judge")
        judge = LMJudge(backend, settings.llm_timeout) if backend else None
        app.state.tablerouter = AppState(settings, registry, backend, RouteService(judge))
        try:
            await registry.refresh_all()
            yield
        finally:
            if backend is not None:
                await backend.aclose()
            if semaphore is not None:
                await semaphore.aclose()
            if link is not None:
                await link.aclose()
            await registry.aclose()

    app = FastAPI(
        title="tablerouter",
        version="0.1.0",
        summary="Routes a text-to-SQL question to the few warehouse tables its SQL needs.",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    install_problem_handlers(app)
    app.include_router(route_api.router)
    app.include_router(sources_api.router)
    app.include_router(health_api.router)
    if settings.metrics_enabled:
        app.include_router(metrics_api.router)
    if settings.otel_enabled:
        instrument(app)
    return app
