"""The route memory's rows: remembered questions with the tables they used, and joins mined from SQL.

All SQL of the memory lives here. Entries are read in id order so a replica can load what it
lacks (``rows_after``); ``summary`` tells it cheaply whether anything changed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.store.database import Store
from app.store.models import MemoryEntry, MinedJoin

__all__ = ["JoinRow", "MemoryRepository", "MemoryRow", "NewEntry"]

_PAGE = 5000


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry to remember: a question (None for a bare query-log SQL) and its tables."""

    question: str | None
    tables: tuple[str, ...]
    origin: str  # feedback, import or log
    catalog_version: str
    route_id: str | None = None


@dataclass(frozen=True, slots=True)
class MemoryRow:
    """A stored entry."""

    id: int
    question: str | None
    tables: tuple[str, ...]
    origin: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class JoinRow:
    """A mined join: ``left_table.left_column = right_table.right_column``, seen ``count`` times."""

    left_table: str
    left_column: str
    right_table: str
    right_column: str
    count: int


class MemoryRepository:
    """Reads and writes the route memory and the mined joins of every source."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _insert(self) -> type[postgresql.Insert] | type[sqlite.Insert]:
        return postgresql.Insert if self._store.dialect == "postgresql" else sqlite.Insert

    async def add(self, source: str, entries: Sequence[NewEntry]) -> int:
        """Remember ``entries``; an entry of a route that has one already replaces it. Returns the count."""
        if not entries:
            return 0
        now = datetime.now(UTC)
        async with self._store.begin() as session:
            routed = [e.route_id for e in entries if e.route_id is not None]
            if routed:  # feedback sent again: the new entry, with a new id, replaces the old
                await session.execute(sa.delete(MemoryEntry).where(MemoryEntry.route_id.in_(routed)))
            await session.execute(
                sa.insert(MemoryEntry),
                [
                    {
                        "source": source,
                        "question": e.question,
                        "tables": list(e.tables),
                        "origin": e.origin,
                        "route_id": e.route_id,
                        "catalog_version": e.catalog_version,
                        "created_at": now,
                    }
                    for e in entries
                ],
            )
        return len(entries)

    async def summary(self, source: str) -> tuple[int, int]:
        """(entries, highest id) of ``source``: what a replica compares with what it loaded."""
        query = sa.select(sa.func.count(), sa.func.coalesce(sa.func.max(MemoryEntry.id), 0)).where(
            MemoryEntry.source == source
        )
        async with self._store.begin() as session:
            count, top = (await session.execute(query)).one()
        return int(count), int(top)

    async def rows_after(self, source: str, after_id: int) -> AsyncIterator[MemoryRow]:
        """``source``'s entries with an id above ``after_id``, in id order, streamed in pages."""
        while True:
            query = (
                sa.select(
                    MemoryEntry.id,
                    MemoryEntry.question,
                    MemoryEntry.tables,
                    MemoryEntry.origin,
                    MemoryEntry.created_at,
                )
                .where(MemoryEntry.source == source, MemoryEntry.id > after_id)
                .order_by(MemoryEntry.id)
                .limit(_PAGE)
            )
            async with self._store.begin() as session:
                rows = (await session.execute(query)).all()
            for ident, question, tables, origin, created in rows:
                yield MemoryRow(ident, question, tuple(tables), origin, created)
            if len(rows) < _PAGE:
                return
            after_id = rows[-1][0]

    async def forget(self, source: str, entry_id: int) -> bool:
        """Delete one entry of ``source``; False when there is none with that id."""
        statement = sa.delete(MemoryEntry).where(MemoryEntry.source == source, MemoryEntry.id == entry_id)
        async with self._store.begin() as session:
            result = await session.execute(statement)
        return bool(getattr(result, "rowcount", 0))

    async def forget_before(self, cutoff: datetime) -> int:
        """Delete every entry remembered before ``cutoff`` (retention); returns how many."""
        async with self._store.begin() as session:
            result = await session.execute(sa.delete(MemoryEntry).where(MemoryEntry.created_at < cutoff))
        return int(getattr(result, "rowcount", 0) or 0)

    async def add_joins(self, source: str, joins: Sequence[tuple[str, str, str, str]]) -> None:
        """Count each mined join once more (``(left_table, left_column, right_table, right_column)``)."""
        counted: dict[tuple[str, str, str, str], int] = {}
        for join in joins:
            counted[join] = counted.get(join, 0) + 1
        if not counted:
            return
        now = datetime.now(UTC)
        statement = self._insert()(MinedJoin).values(
            [
                {
                    "source": source,
                    "left_table": a,
                    "left_column": ac,
                    "right_table": b,
                    "right_column": bc,
                    "count": n,
                    "updated_at": now,
                }
                for (a, ac, b, bc), n in counted.items()
            ]
        )
        statement = statement.on_conflict_do_update(
            index_elements=["source", "left_table", "left_column", "right_table", "right_column"],
            set_={"count": MinedJoin.count + statement.excluded.count, "updated_at": now},
        )
        async with self._store.begin() as session:
            await session.execute(statement)

    async def joins(self, source: str) -> list[JoinRow]:
        """Every mined join of ``source``, most seen first."""
        query = (
            sa.select(
                MinedJoin.left_table,
                MinedJoin.left_column,
                MinedJoin.right_table,
                MinedJoin.right_column,
                MinedJoin.count,
            )
            .where(MinedJoin.source == source)
            .order_by(MinedJoin.count.desc(), MinedJoin.id)
        )
        async with self._store.begin() as session:
            return [JoinRow(*row) for row in (await session.execute(query)).all()]
