"""Retention: routes without feedback older than N days, and all but the newest K snapshots, go.

The clean-up runs in the background every ``cleanup_interval_s``; a snapshot that a kept route
used stays, so feedback on that route can still be checked against its tables.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.store.route_log import RouteLogRepository
from app.store.snapshots import SnapshotRepository

__all__ = ["CleanupResult", "Retention"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CleanupResult:
    routes_deleted: int
    snapshots_deleted: int


class Retention:
    """The retention policy over the route log and the snapshots."""

    def __init__(
        self,
        routes: RouteLogRepository,
        snapshots: SnapshotRepository,
        route_retention_days: float,
        snapshot_keep: int,
    ) -> None:
        self._routes = routes
        self._snapshots = snapshots
        self._route_retention_days = route_retention_days
        self._snapshot_keep = snapshot_keep

    async def cleanup(self, now: datetime | None = None) -> CleanupResult:
        """Delete what the policy no longer keeps (routes first: they pin snapshots)."""
        now = now or datetime.now(UTC)
        routes = 0
        if self._route_retention_days > 0:
            cutoff = now - timedelta(days=self._route_retention_days)
            routes = await self._routes.delete_older_than(cutoff)
        snapshots = await self._snapshots.prune(self._snapshot_keep)
        if routes or snapshots:
            log.info("retention: deleted %d routes and %d snapshots", routes, snapshots)
        return CleanupResult(routes, snapshots)

    async def run_every(self, interval_s: float) -> None:
        """Clean up now and then every ``interval_s`` seconds, until cancelled."""
        while True:
            try:
                await self.cleanup()
            except Exception:  # the store may be down for a while; try again next round
                log.exception("retention clean-up failed")
            await asyncio.sleep(interval_s)
