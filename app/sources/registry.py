"""The registry of sources: their engines, current snapshots, and refresh.

A refresh introspects the warehouse, stores the snapshot (when a store is attached), prepares
the routing structures off the event loop, and swaps the whole snapshot at once; a route holds
the snapshot it started with. A failed refresh keeps the last good snapshot and records the
error. At start-up a source with a stored snapshot serves it at once and is refreshed in the
background; a source without one is introspected once before the service takes requests.

A source that fails does not hold the others back: it is ``failed`` (its error names the kind:
authentication failed, database missing, unreachable ...) and is tried again in the background
after 1 s, then 2 s, 4 s ... up to the refresh interval, until a refresh succeeds. A scope with
no table is ``empty``: it has a version, but no routing structures to build.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from app.catalog.introspect import IntrospectionError
from app.catalog.model import Catalog
from app.catalog.read_errors import ReadErrorKind
from app.catalog.source_reader import CatalogReader, SourceConfigError
from app.catalog.stored import SnapshotStore
from app.observability.redaction import Redactor, url_secrets
from app.routing.preparation.prepared import PreparedCatalog, prepare
from app.settings import Settings, SourceConfig
from app.sources.source_readers import source_reader

log = logging.getLogger(__name__)
RETRY_FIRST_S = 1.0  # the first retry after a failed refresh; each next one waits twice as long
RETRY_CAP_S = 300.0  # the longest wait between retries when scheduled refreshes are off


class SourceStatus(StrEnum):
    """Whether a source can be routed over."""

    READY = "ready"  # a snapshot serves (maybe stale: see last_error)
    LOADING = "loading"  # no snapshot yet, the first read not finished
    FAILED = "failed"  # no snapshot, the last read failed; retried in the background
    EMPTY = "empty"  # read, but no table is in its scope


@dataclass
class SourceState:
    """One source: where it lives, what it serves now, and how its last refresh went."""

    name: str
    config: SourceConfig
    reader: CatalogReader | None  # None: the source's URL cannot be used (see last_error)
    dialect: str
    prepared: PreparedCatalog | None = None
    # When the warehouse was last seen to match the snapshot (by this process or, for a
    # snapshot loaded from the store, by whichever process stored it).
    last_refresh: datetime | None = None
    last_error: str | None = None
    refreshed: bool = False  # a refresh has succeeded since this process started
    default_schema: str | None = None
    error_kind: ReadErrorKind | None = None
    failures: int = 0  # refreshes failed in a row
    retry_at: float | None = None  # loop time of the next retry after a failure
    empty_version: str | None = None  # the version of a read that found no table in scope
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    retry: asyncio.Task[Any] | None = None

    @property
    def status(self) -> SourceStatus:
        """Ready, loading, failed or empty (see ``SourceStatus``)."""
        if self.prepared is not None:
            return SourceStatus.READY
        if self.empty_version is not None:
            return SourceStatus.EMPTY
        return SourceStatus.FAILED if self.last_error is not None else SourceStatus.LOADING

    def retry_in_s(self) -> float | None:
        """Seconds until the next retry of a failed refresh, or None when none is due."""
        if self.retry_at is None:
            return None
        return round(max(0.0, self.retry_at - asyncio.get_running_loop().time()), 3)

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
            try:
                reader = source_reader(name, config)
            except SourceConfigError as exc:
                # One source's bad URL is that source's error; the others serve.
                self.sources[name] = SourceState(
                    name, config, None, "", last_error=str(exc), error_kind=ReadErrorKind.MISCONFIGURED
                )
                log.error("%s", exc)
                continue
            self.sources[name] = SourceState(name, config, reader, reader.dialect)

    def get(self, name: str) -> SourceState | None:
        """The source called ``name``, or None."""
        return self.sources.get(name)

    async def _install(self, state: SourceState, catalog: Catalog) -> None:
        if state.prepared is None or state.prepared.version != catalog.version:
            s = self._settings
            state.prepared = await asyncio.to_thread(
                prepare, catalog, s.chunk_tokens, s.votes, s.seed, s.table_evidence
            )

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
        if state.reader is None:  # a URL that cannot be used does not get better by retrying
            return state
        async with state.lock:
            started = time.perf_counter()
            try:
                catalog = await state.reader.read(
                    name,
                    state.config.schemas,
                    state.config.exclude_schemas,
                    self._settings.introspect_timeout_s,
                )
            except IntrospectionError as exc:
                state.last_error, state.error_kind = self._redact(str(exc)), exc.kind
                log.warning("refresh of %s failed: %s", name, state.last_error)
                self._retry_later(state)
                return state
            now = datetime.now(UTC)
            if catalog.tables:
                await self._store(catalog, now)
                await self._install(state, catalog)
                state.empty_version = None
            else:  # nothing to route over: no index to build, nothing worth storing
                state.prepared, state.empty_version = None, catalog.version
                log.warning("source %s: no table in its schemas; check schemas / exclude_schemas", name)
            state.default_schema = state.reader.default_schema
            state.last_refresh, state.last_error, state.refreshed = now, None, True
            state.error_kind, state.failures, state.retry_at = None, 0, None
            if state.retry is not None and state.retry is not asyncio.current_task():
                state.retry.cancel()
            state.retry = None
            log.info(
                "source %s: %d tables, version %s, refreshed in %.0f ms",
                name,
                len(catalog.tables),
                catalog.version,
                (time.perf_counter() - started) * 1000,
            )
            return state

    def _retry_later(self, state: SourceState) -> None:
        """Try a failed source again after 1 s, 2 s, 4 s ... up to the refresh interval."""
        state.failures += 1
        if state.retry is not None and not state.retry.done():
            return  # one pending retry per source is enough
        cap = self._settings.refresh_interval_s or RETRY_CAP_S
        delay = min(RETRY_FIRST_S * 2 ** min(state.failures - 1, 30), cap)
        state.retry_at = asyncio.get_running_loop().time() + delay
        state.retry = self._spawn(self._retry(state, delay))

    async def _retry(self, state: SourceState, delay: float) -> None:
        await asyncio.sleep(delay)
        state.retry = None  # this one is spent: a failure now schedules the next
        try:
            await self.refresh(state.name)
        except Exception:  # a bug must not end the retries silently
            log.exception("retrying source %s failed", state.name)

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
        if stored is not None and stored.catalog.tables:
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

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def aclose(self) -> None:
        """Stop background refreshes and dispose of every source's connection pool."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(s.reader.aclose() for s in self.sources.values() if s.reader is not None))
