"""The registry of sources: their engines, current snapshots, and refresh.

A refresh introspects the warehouse, stores the snapshot (when a store is attached), prepares
the routing structures off the event loop, and swaps the whole snapshot at once; a route holds
the snapshot it started with. A failed refresh keeps the last good snapshot and records the
error. At start-up a source with a stored snapshot serves it at once and is refreshed in the
background; a source without one is introspected before the service takes requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.catalog.introspect import IntrospectionError, introspect
from app.catalog.model import Catalog
from app.catalog.stored import SnapshotStore
from app.observability.redaction import Redactor, url_secrets
from app.routing.preparation.prepared import PreparedCatalog, prepare
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
    # When the warehouse was last seen to match the snapshot (by this process or, for a
    # snapshot loaded from the store, by whichever process stored it).
    last_refresh: datetime | None = None
    last_error: str | None = None
    refreshed: bool = False  # a refresh has succeeded since this process started
    default_schema: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def stale(self) -> bool:
        """The snapshot is not confirmed by this process's latest refresh attempt."""
        return not self.refreshed or self.last_error is not None

    def age_s(self) -> float | None:
        """Seconds since the warehouse was last seen to match the snapshot."""
        if self.last_refresh is None:
            return None
        return round((datetime.now(UTC) - self.last_refresh).total_seconds(), 3)


class CatalogRegistry:
    """All configured sources, keyed by name."""

    def __init__(
        self,
        settings: Settings,
        sources: dict[str, SourceConfig],
        snapshots: SnapshotStore | None = None,
        redact: Redactor | None = None,
    ) -> None:
        self._settings = settings
        self._snapshots = snapshots
        # last_error is served by GET /sources: whatever a driver put in it, no secret goes out.
        self._redact = redact or Redactor(
            [s for c in sources.values() for s in url_secrets(c.url.get_secret_value())]
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self.sources: dict[str, SourceState] = {}
        for name, config in sources.items():
            engine = create_async_engine(config.url.get_secret_value(), pool_pre_ping=True)
            self.sources[name] = SourceState(name, config, engine, engine.dialect.name)

    def get(self, name: str) -> SourceState | None:
        """The source called ``name``, or None."""
        return self.sources.get(name)

    async def _install(self, state: SourceState, catalog: Catalog) -> None:
        if state.prepared is None or state.prepared.version != catalog.version:
            s = self._settings
            state.prepared = await asyncio.to_thread(prepare, catalog, s.chunk_tokens, s.votes, s.seed)

    async def _store(self, catalog: Catalog, at: datetime) -> None:
        if self._snapshots is None:
            return
        try:
            if await self._snapshots.save(catalog, at):
                log.info("source %s: stored new snapshot %s", catalog.source, catalog.version)
        except Exception:  # the store being down must not stop a good catalog from serving
            log.exception("source %s: storing snapshot %s failed", catalog.source, catalog.version)

    async def refresh(self, name: str) -> SourceState:
        """Introspect ``name``, store and install the new snapshot; keep the old one on failure."""
        state = self.sources[name]
        async with state.lock:
            started = time.perf_counter()
            try:
                catalog = await introspect(
                    state.engine, name, state.config.schemas, timeout_s=self._settings.introspect_timeout_s
                )
            except IntrospectionError as exc:
                state.last_error = self._redact(str(exc))
                log.warning("refresh of %s failed: %s", name, state.last_error)
                return state
            now = datetime.now(UTC)
            await self._store(catalog, now)
            await self._install(state, catalog)
            state.default_schema = state.engine.dialect.default_schema_name
            state.last_refresh, state.last_error, state.refreshed = now, None, True
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

    async def _load_stored(self, state: SourceState) -> None:
        assert self._snapshots is not None
        try:
            stored = await self._snapshots.newest(state.name)
        except Exception:  # an unreadable store leaves the source to introspection
            log.exception("source %s: reading the stored snapshot failed", state.name)
            return
        if stored is not None:
            await self._install(state, stored.catalog)
            state.last_refresh = stored.confirmed_at
            log.info("source %s: serving stored snapshot %s", state.name, stored.catalog.version)

    async def start(self) -> None:
        """Load stored snapshots, introspect sources without one, then refresh in the background."""
        if self._snapshots is not None:
            await asyncio.gather(*(self._load_stored(s) for s in self.sources.values()))
        unserved = [name for name, s in self.sources.items() if s.prepared is None]
        await asyncio.gather(*(self.refresh(name) for name in unserved))
        for name in self.sources.keys() - set(unserved):
            self._spawn(self.refresh(name))
        if self._settings.refresh_interval_s > 0:
            self._spawn(self._refresh_every(self._settings.refresh_interval_s))

    async def _refresh_every(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.refresh_all()
            except Exception:  # a bug in one round must not end the schedule
                log.exception("scheduled catalog refresh failed")

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Stop background refreshes and dispose of every source's connection pool."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(s.engine.dispose() for s in self.sources.values()))
