"""Introspection while another connection creates and drops tables, on real PostgreSQL and MariaDB.

A live warehouse changes during a refresh. The readers issue several catalog queries; DDL
committed between two of them must neither break the read nor leave a catalog that refers to
what it does not hold. To hit the window every time, a listener on the reader's engine commits
the DDL on a connection of its own right after the reader's query it names (the reader's event
loop waits meanwhile: the DDL runs on another loop in a thread).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.catalog.introspect import introspect
from app.catalog.model import Table
from app.catalog.pg_catalog import read_postgresql_schemas

# The readers' queries, by a phrase only that query has (app.catalog.pg_catalog, introspect).
PG_RELATIONS = "c.relkind::text"
PG_COLUMNS = "FROM pg_attribute a"
MYSQL_TABLES = "FROM information_schema.TABLES"


async def _run(url: str, statements: Sequence[str]) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            # The reader holds no lock the DDL waits for; if it ever did, fail rather than hang.
            postgres = url.startswith("postgresql")
            await conn.exec_driver_sql("SET lock_timeout = '5s'" if postgres else "SET lock_wait_timeout = 5")
            for statement in statements:
                await conn.exec_driver_sql(statement)
    finally:
        await engine.dispose()


@contextmanager
def _committed_after(
    engine: AsyncEngine, marker: str, url: str, statements: Sequence[str]
) -> Iterator[list[str]]:
    """Commit ``statements`` elsewhere right after ``engine`` runs its first query containing ``marker``.

    Yields the queries it fired after (empty if the marker never came).
    """
    fired: list[str] = []

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if marker in statement and not fired:
            fired.append(statement)
            with ThreadPoolExecutor(1) as pool:
                pool.submit(asyncio.run, _run(url, statements)).result()

    event.listen(engine.sync_engine, "after_cursor_execute", after)
    try:
        yield fired
    finally:
        event.remove(engine.sync_engine, "after_cursor_execute", after)


def _dangling(tables: Sequence[Table], schema: str) -> list[str]:
    """What the tables refer to and the catalog lacks: key columns a table has not, tables a
    foreign key into ``schema`` names, and tables with no column (MariaDB has none such)."""
    by_name = {t.qualified_name: t for t in tables}
    found = []
    for table in tables:
        columns = {c.name for c in table.columns}
        if not columns:
            found.append(f"{table.qualified_name} has no column")
        if not set(table.primary_key) <= columns:
            found.append(f"{table.qualified_name} PK {table.primary_key}")
        for fk in table.foreign_keys:
            if not set(fk.columns) <= columns:
                found.append(f"{table.qualified_name} FK columns {fk.columns}")
            target = by_name.get(fk.ref_table)
            if fk.ref_table.startswith(f"{schema}.") and target is None:
                found.append(f"{table.qualified_name} FK to missing {fk.ref_table}")
            elif target is not None and not set(fk.ref_columns) <= {c.name for c in target.columns}:
                found.append(f"{table.qualified_name} FK to {fk.ref_table} {fk.ref_columns}")
    return found


def _names(tables: Sequence[Table]) -> set[str]:
    return {t.name for t in tables}


def _linked(schema: str) -> str:
    """Columns of a PostgreSQL table with a primary key and a foreign key to ``parent``."""
    return f"(id integer PRIMARY KEY, parent_id integer REFERENCES {schema}.parent)"


@pytest.fixture
async def pg_schema(pg_url: str) -> AsyncIterator[tuple[AsyncEngine, str]]:
    """A reader's engine and a schema of parent <- child, parent <- doomed (dropped at the end)."""
    schema = f"tr_ddl_{secrets.token_hex(4)}"
    await _run(
        pg_url,
        [
            f"CREATE SCHEMA {schema}",
            f"CREATE TABLE {schema}.parent (id integer PRIMARY KEY, name text)",
            f"CREATE TABLE {schema}.child {_linked(schema)}",
            f"CREATE TABLE {schema}.doomed {_linked(schema)}",
        ],
    )
    engine = create_async_engine(pg_url)
    try:
        yield engine, schema
    finally:
        await engine.dispose()
        await _run(pg_url, [f"DROP SCHEMA {schema} CASCADE"])


def _pg_churn(schema: str) -> list[str]:
    """One table dropped, one made with a primary and a foreign key."""
    return [
        f"DROP TABLE {schema}.doomed",
        f"CREATE TABLE {schema}.late {_linked(schema)}",
    ]


async def test_postgres_catalog_is_the_one_the_read_began_with(
    pg_schema: tuple[AsyncEngine, str], pg_url: str
) -> None:
    engine, schema = pg_schema
    before = await introspect(engine, "pg", [schema])
    # Between the columns query and the keys query: the keys would name a table never read.
    with _committed_after(engine, PG_COLUMNS, pg_url, _pg_churn(schema)) as fired:
        during = await introspect(engine, "pg", [schema])
    assert fired
    assert during.tables == before.tables
    after = await introspect(engine, "pg", [schema])
    assert _names(after.tables) == {"parent", "child", "late"}
    assert not _dangling(after.tables, schema)


async def test_postgres_catalog_from_queries_that_disagree_skips_what_they_do_not_share(
    pg_schema: tuple[AsyncEngine, str], pg_url: str
) -> None:
    # Outside one snapshot (READ COMMITTED: each query its own) the reader still assembles a
    # catalog without dangling keys.
    engine, schema = pg_schema
    with _committed_after(engine, PG_COLUMNS, pg_url, _pg_churn(schema)) as fired:
        async with engine.connect() as conn:
            tables = await read_postgresql_schemas(conn, "pg", [schema])
    assert fired
    assert _names(tables) == {"parent", "child", "doomed"}
    assert not _dangling(tables, schema)


async def test_postgres_reads_stay_whole_while_tables_come_and_go(
    pg_schema: tuple[AsyncEngine, str], pg_url: str
) -> None:
    # No hook: another connection creates and drops linked tables in a loop while the reader reads.
    engine, schema = pg_schema
    stop = asyncio.Event()

    async def churn() -> int:
        rounds = 0
        while not stop.is_set():
            table = f"{schema}.t{rounds % 4}"
            await _run(
                pg_url,
                [
                    f"DROP TABLE IF EXISTS {table}",
                    f"CREATE TABLE {table} {_linked(schema)}",
                ],
            )
            rounds += 1
        return rounds

    churning = asyncio.create_task(churn())
    try:
        for _ in range(40):
            catalog = await introspect(engine, "pg", [schema])
            assert not _dangling(catalog.tables, schema)
    finally:
        stop.set()
        rounds = await churning
    assert rounds > 0


@pytest.fixture
async def maria_schema(mysql_url: str) -> AsyncIterator[tuple[AsyncEngine, str]]:
    """A reader's engine and a database of parent <- child, parent <- doomed (dropped at the end)."""
    schema = f"tr_ddl_{secrets.token_hex(4)}"
    await _run(
        mysql_url,
        [
            f"CREATE DATABASE {schema}",
            f"CREATE TABLE {schema}.parent (id integer PRIMARY KEY, name text)",
            f"CREATE TABLE {schema}.child (id integer PRIMARY KEY, parent_id integer,"
            f" FOREIGN KEY (parent_id) REFERENCES {schema}.parent (id))",
            f"CREATE TABLE {schema}.doomed (id integer PRIMARY KEY, parent_id integer,"
            f" FOREIGN KEY (parent_id) REFERENCES {schema}.parent (id))",
        ],
    )
    engine = create_async_engine(mysql_url)
    try:
        yield engine, schema
    finally:
        await engine.dispose()
        await _run(mysql_url, [f"DROP DATABASE {schema}"])


async def test_mariadb_catalog_skips_what_changed_between_its_queries(
    maria_schema: tuple[AsyncEngine, str], mysql_url: str
) -> None:
    # MariaDB's information_schema is read live, not from a snapshot: after the tables query a
    # table goes (its columns and keys with it) and a new one gets a foreign key pointing to it.
    engine, schema = maria_schema
    churn = [
        f"DROP TABLE {schema}.doomed",
        f"CREATE TABLE {schema}.late (id integer PRIMARY KEY)",
        f"ALTER TABLE {schema}.child ADD COLUMN late_id integer,"
        f" ADD FOREIGN KEY (late_id) REFERENCES {schema}.late (id)",
    ]
    with _committed_after(engine, MYSQL_TABLES, mysql_url, churn) as fired:
        catalog = await introspect(engine, "maria", [schema])
    assert fired
    assert _names(catalog.tables) == {"parent", "child"}
    assert not _dangling(catalog.tables, schema)
    after = await introspect(engine, "maria", [schema])
    assert _names(after.tables) == {"parent", "child", "late"}
    assert not _dangling(after.tables, schema)
