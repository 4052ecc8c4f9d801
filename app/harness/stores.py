"""Stores for tests: a fresh PostgreSQL database per module (Alembic owns it), or a SQLite file."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

STORE_BACKENDS = ["postgresql", "sqlite"]


@asynccontextmanager
async def fresh_pg_database(pg_url: str) -> AsyncIterator[str]:
    """A new, empty database on the test server (dropped afterwards); yields its async URL."""
    name = f"tr_store_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


@asynccontextmanager
async def fresh_store_url(backend: str, pg_url: str, tmp_dir: Path) -> AsyncIterator[str]:
    """An empty store on ``backend``: a new PostgreSQL database, or a new SQLite file in ``tmp_dir``."""
    if backend == "postgresql":
        async with fresh_pg_database(pg_url) as url:
            yield url
    else:
        yield f"sqlite+aiosqlite:///{tmp_dir / f'store-{uuid.uuid4().hex[:8]}.db'}"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def unreachable_pg_url(pg_url: str) -> str:
    """``pg_url`` pointed at a closed port on 127.0.0.1."""
    url = make_url(pg_url).set(host="127.0.0.1", port=closed_port())
    return url.render_as_string(hide_password=False)


@asynccontextmanager
async def small_pg_warehouse(pg_url: str) -> AsyncIterator[str]:
    """A new schema with three related tables; yields the schema's name (dropped afterwards)."""
    schema = f"tr_wh_{uuid.uuid4().hex[:10]}"
    engine = create_async_engine(pg_url)
    statements = [
        f'CREATE SCHEMA "{schema}"',
        f'CREATE TABLE "{schema}".customers (id integer PRIMARY KEY, name text NOT NULL)',
        f'CREATE TABLE "{schema}".orders (id integer PRIMARY KEY,'
        f' customer_id integer NOT NULL REFERENCES "{schema}".customers (id), total numeric)',
        f'CREATE TABLE "{schema}".order_lines (id integer PRIMARY KEY,'
        f' order_id integer NOT NULL REFERENCES "{schema}".orders (id), product text, quantity integer)',
    ]
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
        yield schema
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()
