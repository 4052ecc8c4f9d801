"""The route log: one row per answered route, written in batches by the route-log writer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.store.database import Store
from app.store.models import RouteFeedback, RouteLog
from app.store.records import KeySpend, RouteOutcome, RouteRecord
from app.store.row_text import without_nul

__all__ = ["RouteLogRepository"]

# Retention deletes in slices so no single statement holds locks on millions of rows.
DELETE_SLICE = 5000


def _record(row: RouteLog) -> RouteRecord:
    return RouteRecord(
        route_id=row.route_id,
        created_at=row.created_at,
        source=row.source,
        catalog_version=row.catalog_version,
        judge=row.judge,
        program_version=row.program_version,
        question=row.question,
        top_k=row.top_k,
        min_score=row.min_score,
        schemas=row.schemas,
        tables=row.tables,
        stats=row.stats,
        key_id=row.key_id,
        coverage=row.coverage,
        partial=row.partial,
        outcome=cast("RouteOutcome | None", row.outcome),  # as route_outcome wrote it
    )


class RouteLogRepository:
    """Reads and writes the route log."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def insert_many(self, records: Sequence[RouteRecord]) -> None:
        """Insert ``records`` in one transaction (one multi-row statement per driver batch).

        NUL is replaced in every string; a route already logged is skipped, so a batch whose
        commit went unanswered, or a spill file replayed twice, writes each route once.
        """
        insert = postgresql.insert if self._store.dialect == "postgresql" else sqlite.insert
        statement = insert(RouteLog).on_conflict_do_nothing(index_elements=["route_id"])
        async with self._store.begin() as session:
            await session.execute(statement, [without_nul(r.row()) for r in records])

    async def get(self, route_id: str) -> RouteRecord | None:
        """The route ``route_id``, or None."""
        async with self._store.begin() as session:
            row = await session.get(RouteLog, route_id)
            return None if row is None else _record(row)

    async def count(self, source: str | None = None) -> int:
        """Routes logged (for ``source``, or all)."""
        query = sa.select(sa.func.count()).select_from(RouteLog)
        if source is not None:
            query = query.where(RouteLog.source == source)
        async with self._store.begin() as session:
            return int(await session.scalar(query) or 0)

    async def spend_by_key_since(self, since: datetime) -> dict[str, KeySpend]:
        """LM tokens and dollars of the routes logged since ``since``, per key id (one query).

        A route whose ``stats.cost_usd`` is null or absent (its LM's prices unknown, or logged
        before routes had a cost) adds its tokens and no dollars.
        """
        tokens = sa.func.coalesce(RouteLog.stats["prompt_tokens"].as_integer(), 0) + sa.func.coalesce(
            RouteLog.stats["completion_tokens"].as_integer(), 0
        )
        cost = RouteLog.stats["cost_usd"].as_float()
        query = (
            sa.select(RouteLog.key_id, sa.func.sum(tokens), sa.func.sum(cost))
            .where(RouteLog.created_at >= since, RouteLog.key_id.is_not(None))
            .group_by(RouteLog.key_id)
        )
        async with self._store.begin() as session:
            rows = (await session.execute(query)).all()
        return {
            key_id: KeySpend(int(total or 0), float(dollars or 0.0))
            for key_id, total, dollars in rows
            if key_id is not None
        }

    async def route_times_by_key_since(self, since: datetime) -> dict[str, list[datetime]]:
        """When each key's routes logged since ``since`` were made, oldest first (one query)."""
        query = (
            sa.select(RouteLog.key_id, RouteLog.created_at)
            .where(RouteLog.created_at >= since, RouteLog.key_id.is_not(None))
            .order_by(RouteLog.created_at)
        )
        async with self._store.begin() as session:
            rows = (await session.execute(query)).all()
        times: dict[str, list[datetime]] = {}
        for key_id, created_at in rows:
            if key_id is not None:
                times.setdefault(key_id, []).append(created_at)
        return times

    async def delete_older_than(self, cutoff: datetime) -> int:
        """Delete routes created before ``cutoff`` that have no feedback (feedback is the dataset)."""
        has_feedback = sa.exists().where(RouteFeedback.route_id == RouteLog.route_id)
        doomed = (
            sa.select(RouteLog.route_id)
            .where(RouteLog.created_at < cutoff, ~has_feedback)
            .limit(DELETE_SLICE)
            .scalar_subquery()
        )
        deleted = 0
        while True:
            async with self._store.begin() as session:
                result = await session.execute(sa.delete(RouteLog).where(RouteLog.route_id.in_(doomed)))
            count = int(result.rowcount)  # type: ignore[attr-defined]
            deleted += count
            if count < DELETE_SLICE:
                return deleted
