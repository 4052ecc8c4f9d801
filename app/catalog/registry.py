"""The registry of sources: their engines, current snapshots, and refresh.

A refresh introspects the warehouse, prepares the routing structures off the event loop,
and swaps the whole snapshot at once; a route holds the snapshot it started with. A failed
refresh keeps the last good snapshot and records the error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.catalog.introspect import IntrospectionError, introspect
from app.routing.prepared import PreparedCatalog, prepare
from app.settings import Settings, SourceConfig

log = logging.getLogger(__name__)


@dataclass
class SourceState:
    """One source: where it lives, what it serves now, and how its last refresh went."""

    name: str
    config: SourceConfig
    engine: AsyncEngine
    dialect: str
    prepared: PreparedCatalog | None = None
    last_refresh: datetime | None = None
    last_error: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class CatalogRegistry:
    """All configured sources, keyed by name."""

    def __init__(self, settings: Settings, sources: dict[str, SourceConfig]) -> None:
        self._settings = settings
        self.sources: dict[str, SourceState] = {}
        for name, config in sources.items():
            engine = create_async_engine(config.url.get_secret_value(), pool_pre_ping=True)
            self.sources[name] = SourceState(name, config, engine, engine.dialect.name)

    def get(self, name: str) -> SourceState | None:
        """The source called ``name``, or None."""
        return self.sources.get(name)

    async def refresh(self, name: str) -> SourceState:
        """Introspect ``name`` and install the new snapshot; keep the old one on failure."""
        state = self.sources[name]
        async with state.lock:
            started = time.perf_counter()
            try:
                catalog = await introspect(state.engine, name, state.config.schemas)
            except IntrospectionError as exc:
                state.last_error = str(exc)
                log.warning("refresh of %s failed: %s", name, exc)
                return state
            s = self._settings
            if state.prepared is None or state.prepared.version != catalog.version:
                state.prepared = await asyncio.to_thread(prepare, catalog, s.chunk_tokens, s.votes, s.seed)
            state.last_refresh = datetime.now(UTC)
            state.last_error = None
            log.info(
                "source %s: %d tables, version %s, refreshed in %.0f ms",
                name,
                len(catalog.tables),
                catalog.version,
                (time.perf_counter() - started) * 1000,
            )
            return state

    async def refresh_all(self) -> None:
        """Refresh every source concurrently."""
        await asyncio.gather(*(self.refresh(name) for name in self.sources))

    async def aclose(self) -> None:
        """Dispose of every source's connection pool."""
        await asyncio.gather(*(s.engine.dispose() for s in self.sources.values()))
