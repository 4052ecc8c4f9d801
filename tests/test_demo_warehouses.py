"""The bundled demo warehouse and synthetic warehouses, built on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import secrets
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.demo import (
    create_synthetic_warehouse,
    ensure_demo_warehouse,
    synthetic_questions,
    synthetic_tables,
)
from app.demo.synthetic import QUESTION_GLUE_WORDS


def _sqlite_tables(path: Path) -> dict[str, list[str]]:
    """Table name → names of the tables its foreign keys point to."""
    with sqlite3.connect(path) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {name: [fk[2] for fk in conn.execute(f"PRAGMA foreign_key_list('{name}')")] for name in names}


async def test_demo_warehouse_is_built_with_consistent_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "demo.sqlite"
    url = await ensure_demo_warehouse(path)

    assert url == f"sqlite+aiosqlite:///{path.resolve()}"
    tables = _sqlite_tables(path)
    assert 55 <= len(tables) <= 70
    dangling = {(t, ref) for t, refs in tables.items() for ref in refs if ref not in tables}
    assert not dangling
    assert sum(len(refs) for refs in tables.values()) > len(tables)
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


async def test_demo_warehouse_is_readable_through_sqlalchemy(tmp_path: Path) -> None:
    engine = create_async_engine(await ensure_demo_warehouse(tmp_path / "demo.sqlite"))
    try:
        async with engine.connect() as conn:
            views = (await conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'view'"))).scalars()
            assert {"v_monthly_revenue", "v_open_tickets"} <= set(views)
            currencies = (await conn.execute(text("SELECT count(*) FROM currencies"))).scalar_one()
            assert currencies > 0
    finally:
        await engine.dispose()


async def test_ensure_demo_warehouse_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "demo.sqlite"
    first = await ensure_demo_warehouse(path)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO carriers (carrier_name, is_active) VALUES ('kept', 1)")
    second = await ensure_demo_warehouse(str(path))

    assert first == second
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM carriers WHERE carrier_name = 'kept'").fetchone() == (1,)


def test_synthetic_names_are_unique_deterministic_and_prefix_stable() -> None:
    big = synthetic_tables(2_000, schema="s", seed=7)
    names = [t.name for t in big]

    assert len(set(names)) == len(names)
    assert names == [t.name for t in synthetic_tables(2_000, schema="s", seed=7)]
    assert names[:300] == [t.name for t in synthetic_tables(300, schema="s", seed=7)]
    assert names != [t.name for t in synthetic_tables(2_000, schema="s", seed=8)]
    assert all(re.fullmatch(r"[a-z]+(_[a-z0-9]+)+", n) for n in names)
    assert not any(re.search(r"_\d$", n) for n in names)  # numbers only once the vocabulary runs out


def test_synthetic_tables_have_keys_comments_and_earlier_foreign_keys() -> None:
    tables = synthetic_tables(500, schema=None, columns_per_table=10)
    seen: set[str] = set()
    for table in tables:
        assert table.columns[0].name == "id"
        assert not table.columns[0].nullable
        assert len(table.columns) == 10
        assert len({c.name for c in table.columns}) == 10
        assert table.comment
        assert all(fk.ref_table in seen for fk in table.fks)
        seen.add(table.name)
    assert sum(1 for t in tables if t.fks) > len(tables) // 2
    assert any(c.comment for t in tables for c in t.columns)
    assert tables[0].qualified_name == tables[0].name


def test_vocabulary_runs_out_into_numbered_names() -> None:
    names = [t.name for t in synthetic_tables(23_000, schema=None, columns_per_table=2)]
    assert len(set(names)) == 23_000
    assert any(re.search(r"_\d$", n) for n in names)


def test_synthetic_questions_use_gold_table_words() -> None:
    tables = synthetic_tables(300, schema="wh", seed=3)
    by_qualified = {t.qualified_name: t for t in tables}
    name_tokens = {tok for t in tables for tok in t.name.split("_")}
    questions = synthetic_questions(tables, 100, seed=3)

    assert questions == synthetic_questions(tables, 100, seed=3)
    assert not QUESTION_GLUE_WORDS & name_tokens
    assert {len(q["gold_tables"]) for q in questions} == {1, 2, 3}
    for q in questions:
        gold_tokens = {tok for name in q["gold_tables"] for tok in by_qualified[name].name.split("_")}
        words = set(q["question"].replace(",", "").split())
        assert words <= gold_tokens | QUESTION_GLUE_WORDS, q
        assert all(name.startswith("wh.") for name in q["gold_tables"])


@pytest.fixture
async def pg_engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(pg_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def pg_schema(pg_engine: AsyncEngine) -> AsyncIterator[str]:
    schema = f"tr_syn_{secrets.token_hex(4)}"
    yield schema
    async with pg_engine.begin() as conn:
        await conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def test_synthetic_warehouse_on_postgres_and_sqlite(
    pg_engine: AsyncEngine, pg_schema: str, tmp_path: Path
) -> None:
    tables = synthetic_tables(300, schema=pg_schema, seed=1)
    n_fks = sum(len(t.fks) for t in tables)
    await create_synthetic_warehouse(pg_engine, tables, schema=pg_schema)
    async with pg_engine.connect() as conn:
        pg_count = (
            await conn.execute(
                text("SELECT count(*) FROM information_schema.tables WHERE table_schema = :s"),
                {"s": pg_schema},
            )
        ).scalar_one()
        pg_fks = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM pg_constraint"
                    " WHERE contype = 'f' AND connamespace = CAST(:s AS regnamespace)"
                ),
                {"s": pg_schema},
            )
        ).scalar_one()
        comment = (
            await conn.execute(
                text("SELECT obj_description(CAST(:t AS regclass), 'pg_class')"),
                {"t": f"{pg_schema}.{tables[0].name}"},
            )
        ).scalar_one()

    sqlite_path = tmp_path / "syn.sqlite"
    sqlite_engine = create_async_engine(f"sqlite+aiosqlite:///{sqlite_path}")
    try:
        await create_synthetic_warehouse(sqlite_engine, tables, schema=None)
    finally:
        await sqlite_engine.dispose()
    sqlite_tables = _sqlite_tables(sqlite_path)

    assert pg_count == len(sqlite_tables) == 300
    assert pg_fks == sum(len(refs) for refs in sqlite_tables.values()) == n_fks
    assert comment == tables[0].comment


async def test_synthetic_warehouse_on_mysql(mysql_url: str) -> None:
    database = f"tr_syn_{secrets.token_hex(4)}"
    tables = synthetic_tables(100, schema=database, seed=2)
    engine = create_async_engine(mysql_url)
    try:
        await create_synthetic_warehouse(engine, tables, schema=database)
        async with engine.connect() as conn:
            count, comments = (
                await conn.execute(
                    text(
                        "SELECT count(*), count(nullif(table_comment, '')) FROM information_schema.tables"
                        " WHERE table_schema = :s"
                    ),
                    {"s": database},
                )
            ).one()
        assert count == comments == 100
    finally:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{database}`")
        await engine.dispose()
