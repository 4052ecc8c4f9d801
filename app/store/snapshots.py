"""Catalog snapshots: one immutable row per source and content version.

Saving a catalog whose version is already stored writes no new row; it only moves that row's
``confirmed_at`` (the warehouse was seen to match it again), so the newest snapshot is the one
confirmed last, even when a warehouse returns to an older shape.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.model import Catalog
from app.catalog.stored import StoredCatalog
from app.store.database import JSONText, Store
from app.store.models import CatalogSnapshot, RouteLog
from app.store.snapshot_codec import CorruptSnapshotError, catalog_from_json, catalog_to_json

__all__ = ["SnapshotRepository"]

log = logging.getLogger(__name__)


def _upsert(dialect: str, values: dict[str, Any]) -> sa.Executable:
    """INSERT, or on a (source, version) clash move ``confirmed_at`` (another replica stored it)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(CatalogSnapshot).values(values)
    return statement.on_conflict_do_update(
        index_elements=["source", "version"], set_={"confirmed_at": statement.excluded.confirmed_at}
    )


class SnapshotRepository:
    """Reads and writes catalog snapshots in the store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def save(self, catalog: Catalog, at: datetime) -> bool:
        """Store ``catalog`` as confirmed ``at``; True when a new snapshot was stored."""
        async with self._store.begin() as session:
            touched = await session.execute(
                sa.update(CatalogSnapshot)
                .where(CatalogSnapshot.source == catalog.source, CatalogSnapshot.version == catalog.version)
                .values(confirmed_at=at)
            )
            if touched.rowcount:  # type: ignore[attr-defined]
                return False
            # Megabytes of JSON for a big warehouse: serialized off the event loop.
            content = JSONText(await asyncio.to_thread(catalog_to_json, catalog))
            values = {
                "source": catalog.source,
                "version": catalog.version,
                "table_count": len(catalog.tables),
                "content": content,
                "created_at": at,
                "confirmed_at": at,
            }
            await session.execute(_upsert(self._store.dialect, values))
            return True

    async def newest(self, source: str) -> StoredCatalog | None:
        """The snapshot of ``source`` confirmed last; a corrupt one is logged and the next tried."""
        async with self._store.begin() as session:
            rows = await session.execute(
                sa.select(CatalogSnapshot.id, CatalogSnapshot.version, CatalogSnapshot.confirmed_at)
                .where(CatalogSnapshot.source == source)
                .order_by(CatalogSnapshot.confirmed_at.desc(), CatalogSnapshot.id.desc())
            )
            for snapshot_id, version, confirmed_at in rows.all():
                catalog = await self._load(session, snapshot_id, source, version)
                if catalog is not None:
                    return StoredCatalog(catalog, confirmed_at)
        return None

    async def get(self, source: str, version: str) -> Catalog | None:
        """The snapshot ``version`` of ``source``, or None if it is not stored (or corrupt)."""
        async with self._store.begin() as session:
            snapshot_id = await session.scalar(
                sa.select(CatalogSnapshot.id).where(
                    CatalogSnapshot.source == source, CatalogSnapshot.version == version
                )
            )
            if snapshot_id is None:
                return None
            return await self._load(session, snapshot_id, source, version)

    @staticmethod
    async def _load(session: AsyncSession, snapshot_id: int, source: str, version: str) -> Catalog | None:
        # The content comes back as text and is parsed in a worker thread, not by the driver.
        text = await session.scalar(
            sa.select(sa.cast(CatalogSnapshot.content, sa.Text)).where(CatalogSnapshot.id == snapshot_id)
        )
        try:
            return await asyncio.to_thread(catalog_from_json, source, version, text or "")
        except CorruptSnapshotError as exc:
            log.error("skipping stored snapshot: %s", exc)
            return None

    async def versions(self, source: str) -> list[str]:
        """The stored versions of ``source``, newest first."""
        async with self._store.begin() as session:
            result = await session.scalars(
                sa.select(CatalogSnapshot.version)
                .where(CatalogSnapshot.source == source)
                .order_by(CatalogSnapshot.confirmed_at.desc(), CatalogSnapshot.id.desc())
            )
            return list(result)

    async def prune(self, keep: int) -> int:
        """Delete all but the newest ``keep`` snapshots per source, sparing any a stored route used."""
        newest_first = sa.func.row_number().over(
            partition_by=CatalogSnapshot.source,
            order_by=(CatalogSnapshot.confirmed_at.desc(), CatalogSnapshot.id.desc()),
        )
        ranked = sa.select(CatalogSnapshot.id, newest_first.label("rank")).subquery()
        used = sa.exists().where(
            RouteLog.source == CatalogSnapshot.source, RouteLog.catalog_version == CatalogSnapshot.version
        )
        async with self._store.begin() as session:
            result = await session.execute(
                sa.delete(CatalogSnapshot)
                .where(CatalogSnapshot.id.in_(sa.select(ranked.c.id).where(ranked.c.rank > keep)))
                .where(~used)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]
