"""The store's engine and session factory, built in the lifespan and disposed at shutdown."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

__all__ = ["JSONText", "Store", "create_store_engine"]

log = logging.getLogger(__name__)
# SQLite waits this long for a lock held by another writer before "database is locked".
SQLITE_BUSY_TIMEOUT_S = 30


class JSONText(str):
    """A JSON document serialized already (in a worker thread): JSON columns store it as it is."""

    __slots__ = ()


def _serialize_json(value: Any) -> str:
    return value if isinstance(value, JSONText) else json.dumps(value)


def create_store_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for the store at ``url``; SQLite gets WAL, foreign keys and a busy timeout."""
    parsed = make_url(url)
    kwargs.setdefault("json_serializer", _serialize_json)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True, **kwargs)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, **kwargs)

    @sa.event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # WAL lets routes be read while the route-log writer writes; SQLite leaves FKs off by default.
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


class Store:
    """The service's own database: one engine, one session factory."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_store_engine(url)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction, committed on success and rolled back on error."""
        async with self.sessions.begin() as session:
            yield session

    async def reachable(self, timeout_s: float = 2.0) -> bool:
        """Whether the store answers a trivial query within ``timeout_s`` (the readiness probe)."""
        try:
            async with asyncio.timeout(timeout_s), self.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except Exception:  # any failure means not reachable; the probe must answer, not raise
            log.warning("the store is not reachable")
            return False
        return True

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
