"""The store as the running service uses it: repositories, the route-log writer, the clean-up task.

``open_store`` migrates (unless ``migrate_on_start`` is off), builds the parts and starts the
background tasks; ``aclose`` drains the route log, stops the tasks and closes the engine. A
store that cannot be reached at start-up does not stop the service: it starts degraded and
migrates in the background once the store answers (``StoreHealth.migrated``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from app.settings import Settings
from app.store.database import Store
from app.store.feedback import FeedbackRepository
from app.store.health import STORE_ERRORS, StoreHealth
from app.store.migrate import upgrade_async
from app.store.retention import Retention
from app.store.route_log import RouteLogRepository
from app.store.route_log_spill import RouteLogSpill
from app.store.route_log_writer import RouteLogWriter, WriterTiming
from app.store.route_memory import MemoryRepository
from app.store.snapshots import SnapshotRepository

__all__ = ["StoreRuntime", "open_store"]

log = logging.getLogger(__name__)
MIGRATE_RETRY_FIRST_S = 0.5  # the first retry of a start-up migration; doubled up to the cap
MIGRATE_RETRY_CAP_S = 5.0


def _spill(settings: Settings) -> RouteLogSpill | None:
    if not settings.route_log_spill_dir:
        return None
    return RouteLogSpill(Path(settings.route_log_spill_dir), settings.route_log_spill_max_mb * 1024 * 1024)


class StoreRuntime:
    """Repositories over one store, its health, and its background tasks."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.health = StoreHealth(store, probe_timeout_s=settings.store_timeout_s)
        self.snapshots = SnapshotRepository(store)
        self.routes = RouteLogRepository(store)
        self.feedback = FeedbackRepository(store)
        self.memory = MemoryRepository(store)
        self.writer = RouteLogWriter(
            self.routes,
            self.health,
            settings.route_log_queue_size,
            settings.route_log_batch_size,
            spill=_spill(settings),
            timing=WriterTiming(backoff_max_s=settings.route_log_retry_max_s),
        )
        self.retention = Retention(
            self.routes, self.snapshots, settings.route_retention_days, settings.snapshot_keep
        )
        self._cleanup_interval_s = settings.cleanup_interval_s
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the route-log writer and the periodic clean-up."""
        self.writer.start()
        if self._cleanup_interval_s > 0:
            self._tasks.append(
                asyncio.create_task(
                    self.retention.run_every(self._cleanup_interval_s), name="store-retention"
                )
            )

    def migrate_when_up(self) -> None:
        """Migrate in the background, retrying until the store answers (start-up found it down)."""
        self._tasks.append(asyncio.create_task(self._migrate_until_done(), name="store-migrate"))

    async def _migrate_until_done(self) -> None:
        delay = MIGRATE_RETRY_FIRST_S
        while True:
            await asyncio.sleep(delay)
            try:
                await upgrade_async(self.store.url)
            except Exception as exc:  # down again, or a migration that fails: tried again, never silent
                if await self.health.probe():
                    log.exception("migrating the store failed while it answers; trying again")
                else:
                    self.health.failed(exc)
                delay = min(delay * 2, MIGRATE_RETRY_CAP_S)
                continue
            self.health.migrated.set()
            self.health.answered()
            log.warning("the store answers: migrated to head, leaving degraded mode")
            return

    async def aclose(self) -> None:
        """Drain the route log (spilling what the store cannot take), stop the tasks, close the engine."""
        try:
            await self.writer.aclose()
            for task in self._tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.health.aclose()
        finally:
            await self.store.aclose()


async def open_store(settings: Settings) -> StoreRuntime:
    """The store at ``settings.database_url``, migrated to head unless turned off, tasks started.

    A store that is down is no reason not to serve: the runtime starts degraded and migrates in
    the background once the store answers.
    """
    url = settings.database_url.get_secret_value()
    runtime = StoreRuntime(Store(url), settings)
    if not settings.migrate_on_start:
        log.info("TABLEROUTER_MIGRATE_ON_START is off: expecting the store's schema at head")
        runtime.health.migrated.set()
    else:
        try:
            await upgrade_async(url)
        except STORE_ERRORS as exc:
            log.warning(
                "the store cannot be migrated now (%r): starting degraded, migrating once it answers", exc
            )
            runtime.health.failed(exc)
            runtime.migrate_when_up()
        else:
            runtime.health.migrated.set()
    runtime.start()
    return runtime
