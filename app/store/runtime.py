"""The store as the running service uses it: repositories, the route-log writer, the clean-up task.

``open_store`` migrates (unless ``migrate_on_start`` is off), builds the parts and starts the
background tasks; ``aclose`` drains the route log, stops the tasks and closes the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from app.settings import Settings
from app.store.database import Store
from app.store.feedback import FeedbackRepository
from app.store.migrate import upgrade_async
from app.store.retention import Retention
from app.store.route_log import RouteLogRepository
from app.store.route_log_writer import RouteLogWriter
from app.store.route_memory import MemoryRepository
from app.store.snapshots import SnapshotRepository

__all__ = ["StoreRuntime", "open_store"]

log = logging.getLogger(__name__)


class StoreRuntime:
    """Repositories over one store, and its background tasks."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.snapshots = SnapshotRepository(store)
        self.routes = RouteLogRepository(store)
        self.feedback = FeedbackRepository(store)
        self.memory = MemoryRepository(store)
        self.writer = RouteLogWriter(
            self.routes, settings.route_log_queue_size, settings.route_log_batch_size
        )
        self.retention = Retention(
            self.routes, self.snapshots, settings.route_retention_days, settings.snapshot_keep
        )
        self._cleanup_interval_s = settings.cleanup_interval_s
        self._cleanup: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the route-log writer and the periodic clean-up."""
        self.writer.start()
        if self._cleanup_interval_s > 0:
            self._cleanup = asyncio.create_task(
                self.retention.run_every(self._cleanup_interval_s), name="store-retention"
            )

    async def aclose(self) -> None:
        """Drain the route log, stop the clean-up, close the engine."""
        try:
            await self.writer.aclose()
            if self._cleanup is not None:
                self._cleanup.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._cleanup
        finally:
            await self.store.aclose()


async def open_store(settings: Settings) -> StoreRuntime:
    """The store at ``settings.database_url``, migrated to head unless turned off, tasks started."""
    if settings.migrate_on_start:
        await upgrade_async(settings.database_url.get_secret_value())
    else:
        log.info("TABLEROUTER_MIGRATE_ON_START is off: expecting the store's schema at head")
    runtime = StoreRuntime(Store(settings.database_url.get_secret_value()), settings)
    runtime.start()
    return runtime
