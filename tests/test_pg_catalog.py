"""The pg_catalog reader gives the catalog SQLAlchemy's Inspector gives, in three queries."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.catalog.introspect import _catalog, _read_catalog, introspect
from app.catalog.pg_catalog import pg_type_name


@pytest.fixture
async def engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(pg_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_same_catalog_as_get_multi_for_varied_types_and_a_foreign_schema(engine: AsyncEngine) -> None:
    main, other = f"tr_pgc_{secrets.token_hex(4)}", f"tr_pgo_{secrets.token_hex(4)}"
    ddl = [
        f"CREATE SCHEMA {main}",
        f"CREATE SCHEMA {other}",
        f"CREATE TYPE {main}.mood AS ENUM ('ok', 'sad')",
        f"CREATE TABLE {other}.country (code char(2) PRIMARY KEY, name text)",
        f"CREATE TABLE {main}.person (id bigint PRIMARY KEY, country char(2) REFERENCES {other}.country,"
        " born timestamp, seen timestamptz(3), at_time time, nick varchar(20), score numeric(6, 2),"
        f" tags text[], doc jsonb, uid uuid, span interval, mood {main}.mood, flags bit varying(8),"
        " ratio double precision, small smallint NOT NULL)",
        f"CREATE TABLE {main}.friend (a bigint REFERENCES {main}.person, b bigint REFERENCES {main}.person,"
        " PRIMARY KEY (a, b))",
        f"COMMENT ON COLUMN {main}.person.nick IS 'what friends call them'",
        f"CREATE MATERIALIZED VIEW {main}.adults AS SELECT id, born FROM {main}.person",
    ]
    async with engine.begin() as conn:
        for statement in ddl:
            await conn.exec_driver_sql(statement)
    try:
        ours = await introspect(engine, "pg", [main])
        async with engine.connect() as conn:
            theirs = _catalog("pg", await conn.run_sync(_read_catalog, "pg", [main]))
    finally:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(f"DROP SCHEMA {main} CASCADE")
            await conn.exec_driver_sql(f"DROP SCHEMA {other} CASCADE")
    assert ours.tables == theirs.tables
    assert ours.version == theirs.version
    person = ours.by_name()[f"{main}.person"]
    assert person.foreign_keys[0].ref_table == f"{other}.country"
    assert person.foreign_keys[0].ref_columns == ("code",)
    assert ours.by_name()[f"{main}.friend"].primary_key == ("a", "b")
    assert ours.by_name()[f"{main}.adults"].kind == "view"


def test_type_names_are_spelled_like_sqlalchemy() -> None:
    assert pg_type_name("character varying(20)") == "varchar(20)"
    assert pg_type_name("character(2)") == "char(2)"
    assert pg_type_name("numeric(6,2)") == "numeric(6, 2)"
    assert pg_type_name("timestamp without time zone") == "timestamp without time zone"
    assert pg_type_name("character varying[]") == "varchar[]"
