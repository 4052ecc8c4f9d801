"""DuckDB files and any SQLAlchemy dialect as sources, on real engines.

The same schema in PostgreSQL and in a DuckDB file routes the same; the generic Inspector path
reads PostgreSQL into the same catalog (same version) as the bulk ``pg_catalog`` path, and a
SQLite file the same through its sync and its async driver. A URL that cannot be used is one
clear error on its own source, with no secret in it, while the other sources serve.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import duckdb
import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from app.catalog.duckdb_catalog import file_state
from app.catalog.introspect import IntrospectionError, introspect
from app.catalog.source_reader import SourceConfigError, catalog_reader
from app.harness.service import service_client
from tests.fixtures.settings import SettingsBuilder

pytestmark = pytest.mark.asyncio(loop_scope="module")

SCHEMA_SQL = (
    "CREATE TABLE {s}.customers (id integer PRIMARY KEY, name varchar, city varchar)",
    "CREATE TABLE {s}.orders (id integer PRIMARY KEY,"
    " customer_id integer REFERENCES {s}.customers (id), placed_on date, status varchar)",
    "CREATE TABLE {s}.invoices (id integer PRIMARY KEY, order_id integer REFERENCES {s}.orders (id),"
    " amount integer)",
    "CREATE TABLE {s}.warehouse_bins (id integer PRIMARY KEY, aisle varchar, shelf integer)",
    "COMMENT ON TABLE {s}.invoices IS 'Bills sent to customers for their orders'",
    "INSERT INTO {s}.customers VALUES (1, 'Ada', 'Paris'), (2, 'Bob', 'Rome')",
)
QUESTIONS = ("How many orders did each customer place?", "Total invoice amount per city", "bins per aisle")


@pytest.fixture(scope="module")
def schema() -> str:
    return f"wh17_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def duckdb_file(tmp_path_factory: pytest.TempPathFactory, schema: str) -> Path:
    path = tmp_path_factory.mktemp("duckdb") / "warehouse.duckdb"
    conn = duckdb.connect(str(path))
    conn.execute(f"CREATE SCHEMA {schema}")
    for statement in SCHEMA_SQL:
        conn.execute(statement.format(s=schema))
    conn.close()
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pg_schema(pg_url: str, schema: str) -> AsyncIterator[str]:
    engine = create_async_engine(pg_url)
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        for statement in SCHEMA_SQL:
            await conn.execute(sa.text(statement.format(s=schema)))
        await conn.execute(sa.text(f"ANALYZE {schema}.customers"))
    try:
        yield schema
    finally:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        await engine.dispose()


async def test_a_duckdb_file_is_read_in_bulk_with_keys_comments_and_row_counts(
    duckdb_file: Path, schema: str
) -> None:
    reader = catalog_reader("wh", f"duckdb:///{duckdb_file}")
    catalog = await reader.read("wh", None, (), 10.0)
    tables = catalog.by_name()
    assert sorted(tables) == [f"{schema}.{t}" for t in ("customers", "invoices", "orders", "warehouse_bins")]
    orders = tables[f"{schema}.orders"]
    assert orders.primary_key == ("id",)
    assert [(fk.columns, fk.ref_table, fk.ref_columns) for fk in orders.foreign_keys] == [
        (("customer_id",), f"{schema}.customers", ("id",))
    ]
    assert [(c.name, c.type) for c in orders.columns][:3] == [
        ("id", "integer"),
        ("customer_id", "integer"),
        ("placed_on", "date"),
    ]
    assert tables[f"{schema}.invoices"].comment == "Bills sent to customers for their orders"
    assert (tables[f"{schema}.customers"].row_count, orders.row_count) == (2, 0)
    # Read-only and closed after the read: a writer can open the file again at once.
    duckdb.connect(str(duckdb_file)).close()
    assert (await reader.read("wh", None, (), 10.0)).version == catalog.version


def _wait_until_settled(path: Path) -> None:
    while file_state(str(path)) is None:  # a state changed in the last two seconds is not trusted
        time.sleep(0.1)


async def test_a_refresh_opens_the_duckdb_file_only_when_it_changed(tmp_path: Path, schema: str) -> None:
    path = tmp_path / "settled.duckdb"
    conn = duckdb.connect(str(path))
    conn.execute(f"CREATE SCHEMA {schema}")
    conn.execute(SCHEMA_SQL[0].format(s=schema))
    conn.close()
    await asyncio.to_thread(_wait_until_settled, path)
    reader = catalog_reader("wh", f"duckdb:///{path}")
    first = await reader.read("wh", None, (), 10.0)
    # No table holds a row: the counts cannot tell a live table from a copy, so none is kept.
    assert first.by_name()[f"{schema}.customers"].row_count is None
    writer = duckdb.connect(str(path))
    try:
        # The writer holds the file: opening it again in this process would fail, so this read
        # is the last one's catalog, given because the file's state is unchanged.
        assert (await reader.read("wh", None, (), 10.0)) is first
        with pytest.raises(IntrospectionError):  # another ask is another read, and it must open
            await reader.read("wh", [schema], (), 10.0)
        writer.execute(SCHEMA_SQL[3].format(s=schema))
    finally:
        writer.close()
    changed = await reader.read("wh", None, (), 10.0)
    assert sorted(changed.by_name()) == [f"{schema}.customers", f"{schema}.warehouse_bins"]
    assert sorted(first.by_name()) == [f"{schema}.customers"]


async def test_a_file_of_another_format_is_one_clear_error(tmp_path: Path) -> None:
    # DuckDB could read a SQLite file through an extension it fetches: a source must not.
    other = tmp_path / "other.db"
    lite = sqlite3.connect(other)
    lite.execute("CREATE TABLE t (x integer)")
    lite.close()
    with pytest.raises(IntrospectionError) as raised:
        await catalog_reader("lite", f"duckdb:///{other}").read("lite", None, (), 10.0)
    assert str(raised.value) == "source 'lite': cannot open the DuckDB file (IOException)"


async def test_duckdb_and_postgresql_route_the_same(
    duckdb_file: Path, pg_schema: str, pg_url: str, make_settings: SettingsBuilder, tmp_path: Path
) -> None:
    # One process opens a DuckDB file with one configuration at a time: the generic reader gets a copy.
    copy = tmp_path / "copy.duckdb"
    shutil.copyfile(duckdb_file, copy)
    sources = {
        "pg": {"url": pg_url, "schemas": [pg_schema]},
        "duck": {"url": f"duckdb:///{duckdb_file}"},
        "duck_generic": {"url": f"duckdb:///{copy}", "schemas": [pg_schema], "introspection": "generic"},
    }
    async with service_client(make_settings(sources=sources, refresh_interval_s=0)) as client:
        bulk = (await client.get("/sources/duck")).json()
        generic = (await client.get("/sources/duck_generic")).json()
        assert (bulk["dialect"], bulk["introspection"]) == ("duckdb", "bulk")
        assert (generic["dialect"], generic["introspection"], generic["tables"]) == ("duckdb", "generic", 4)
        for question in QUESTIONS:
            answers = []
            for source in ("pg", "duck", "duck_generic"):
                response = await client.post("/route", json={"question": question, "source": source})
                assert response.status_code == 200, response.text
                answers.append([(t["name"], t["score"]) for t in response.json()["tables"]])
            assert answers[0] == answers[1] == answers[2], question
            assert answers[0], question


async def test_the_generic_inspector_reads_postgresql_as_the_bulk_path_does(
    pg_url: str, pg_schema: str
) -> None:
    engine = create_async_engine(pg_url)
    try:
        bulk = await introspect(engine, "wh", [pg_schema], timeout_s=30)
        generic = await introspect(engine, "wh", [pg_schema], timeout_s=30, bulk=False)
    finally:
        await engine.dispose()
    assert generic.tables == bulk.tables
    assert generic.version == bulk.version
    assert bulk.by_name()[f"{pg_schema}.customers"].row_count == 2


async def test_the_generic_inspector_reads_a_duckdb_file_as_the_bulk_reader_does(
    duckdb_file: Path, schema: str
) -> None:
    bulk_reader = catalog_reader("wh", f"duckdb:///{duckdb_file}")
    generic_reader = catalog_reader("wh", f"duckdb:///{duckdb_file}", generic=True)
    bulk = await bulk_reader.read("wh", [schema], (), 10.0)
    try:
        assert type(generic_reader).__name__ == "SyncEngineReader"
        generic = await generic_reader.read("wh", [schema], (), 10.0)
    finally:
        await generic_reader.aclose()
    assert generic.tables == bulk.tables
    assert generic.version == bulk.version
    assert bulk.by_name()[f"{schema}.orders"].foreign_keys  # keys, comments and counts all compared
    # Read-only and not pooled: a writer can open the file at once.
    duckdb.connect(str(duckdb_file)).close()


async def test_a_sync_dialect_goes_through_the_generic_inspector_in_a_thread(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE customers (id integer PRIMARY KEY, name text)"))
        conn.execute(
            sa.text(
                "CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer REFERENCES customers (id))"
            )
        )
    engine.dispose()
    sync_reader = catalog_reader("shop", f"sqlite:///{path}")
    async_reader = catalog_reader("shop", f"sqlite+aiosqlite:///{path}")
    try:
        assert type(sync_reader).__name__ == "SyncEngineReader"
        via_thread = await sync_reader.read("shop", None, (), 10.0)
        via_async = await async_reader.read("shop", None, (), 10.0)
    finally:
        await sync_reader.aclose()
        await async_reader.aclose()
    assert [t.qualified_name for t in via_thread.tables] == ["customers", "orders"]
    assert via_thread.version == via_async.version


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("snowflake://reader:s3cret-pw@acct/db/schema", "dialect 'snowflake' is not installed"),
        ("not a url s3cret-pw", "the URL is not an SQLAlchemy URL"),
        ("duckdb:///:memory:", "names a database file"),
    ],
)
async def test_an_unusable_url_is_one_clear_error_without_its_secret(url: str, said: str) -> None:
    with pytest.raises(SourceConfigError) as raised:
        catalog_reader("wh", url)
    assert said in str(raised.value)
    assert "s3cret" not in str(raised.value)


async def test_an_unusable_source_fails_alone(
    duckdb_file: Path, tmp_path: Path, make_settings: SettingsBuilder
) -> None:
    sources = {
        "duck": {"url": f"duckdb:///{duckdb_file}"},
        "snow": {"url": "snowflake://reader:s3cret-pw@acct/db"},
        "gone": {"url": f"duckdb:///{tmp_path / 'missing.duckdb'}"},
    }
    async with service_client(make_settings(sources=sources, refresh_interval_s=0)) as client:
        assert (await client.get("/readyz")).json()["sources"] == {"duck": True, "snow": False, "gone": False}
        snow = (await client.get("/sources/snow")).json()
        assert (snow["status"], snow["error_kind"]) == ("failed", "misconfigured")
        gone = (await client.get("/sources/gone")).json()
        assert (gone["status"], gone["error_kind"]) == ("failed", "database missing")
        refused = await client.post("/route", json={"question": "orders", "source": "snow"})
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        served = await client.post("/route", json={"question": "orders", "source": "duck"})
        assert served.status_code == 200, served.text
        for text in (refused.text, (await client.get("/sources")).text):
            assert "s3cret" not in text
