"""Feedback on routes: the tables a route's final SQL used, and their export as a dataset.

The export writes one JSON line per route with feedback, in the shape the evaluation harness
reads (``app/eval/spider.py``): ``{"id", "db_id", "question", "gold_tables"}`` with the source
as ``db_id`` and the tables as the service names them; ``catalog_version`` rides along.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.store.database import Store
from app.store.models import RouteFeedback, RouteLog
from app.store.records import FeedbackRecord

__all__ = ["FeedbackRepository", "write_dataset"]


class FeedbackRepository:
    """Reads and writes route feedback."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def save(self, record: FeedbackRecord) -> None:
        """Store ``record``; feedback sent again for the same route replaces the earlier one."""
        insert = postgresql.insert if self._store.dialect == "postgresql" else sqlite.insert
        values = {
            "route_id": record.route_id,
            "created_at": record.created_at,
            "used_tables": record.used_tables,
            "sql": record.sql,
        }
        statement = insert(RouteFeedback).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=["route_id"],
            set_={k: statement.excluded[k] for k in ("created_at", "used_tables", "sql")},
        )
        async with self._store.begin() as session:
            await session.execute(statement)

    async def get(self, route_id: str) -> FeedbackRecord | None:
        """The feedback on ``route_id``, or None."""
        async with self._store.begin() as session:
            row = await session.get(RouteFeedback, route_id)
            if row is None:
                return None
            return FeedbackRecord(row.route_id, row.created_at, row.used_tables, row.sql)

    async def dataset(
        self, source: str | None = None, since: datetime | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Dataset records of routes with feedback, oldest feedback first, streamed."""
        query = (
            sa.select(
                RouteLog.route_id,
                RouteLog.source,
                RouteLog.question,
                RouteLog.catalog_version,
                RouteFeedback.used_tables,
            )
            .join(RouteFeedback, RouteFeedback.route_id == RouteLog.route_id)
            .order_by(RouteFeedback.created_at, RouteFeedback.route_id)
        )
        if source is not None:
            query = query.where(RouteLog.source == source)
        if since is not None:
            query = query.where(RouteFeedback.created_at >= since)
        async with self._store.begin() as session:
            rows = await session.stream(query.execution_options(yield_per=500))
            async for route_id, db_id, question, version, tables in rows:
                yield {
                    "id": route_id,
                    "db_id": db_id,
                    "question": question,
                    "gold_tables": tables,
                    "catalog_version": version,
                }


async def write_dataset(
    repository: FeedbackRepository, out: TextIO, source: str | None = None, since: datetime | None = None
) -> int:
    """Write the feedback dataset to ``out`` as JSON lines; returns the number of lines."""
    lines = 0
    async for record in repository.dataset(source, since):
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        lines += 1
    return lines
