"""Copies, backups and empty staging tables on a real PostgreSQL: the live table comes first.

The warehouse holds ``orders`` (rows, analysed), ``orders_backup_2019`` (the same rows) and
``orders_staging`` (no row: its file is empty). The answer puts ``orders`` first and says
why; with ``TABLE_EVIDENCE`` off the copies keep their scores. The judge is the lexical one (no
LM): evidence applies to any judge's ranking.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from app.catalog.copies import copy_stem
from app.harness.service import service_client
from tests.fixtures.settings import SettingsBuilder

pytestmark = pytest.mark.asyncio(loop_scope="module")
COLUMNS = "(id integer PRIMARY KEY, customer_id integer, status varchar, placed_on date)"
QUESTION = "How many orders per status were placed last week?"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def copies_schema(pg_url: str) -> AsyncIterator[str]:
    schema = f"cp17_{uuid.uuid4().hex[:8]}"
    engine = create_async_engine(pg_url)
    statements = [f"CREATE SCHEMA {schema}"]
    for table in ("orders", "orders_backup_2019", "orders_staging"):
        statements.append(f"CREATE TABLE {schema}.{table} {COLUMNS}")
    for table in ("orders", "orders_backup_2019"):
        statements += [
            f"INSERT INTO {schema}.{table} SELECT g, g, 'open', current_date FROM generate_series(1, 50) g",
            f"ANALYZE {schema}.{table}",
        ]
    statements.append(f"CREATE TABLE {schema}.customers (id integer PRIMARY KEY, name varchar)")
    statements.append(f"INSERT INTO {schema}.customers VALUES (1, 'Ada')")
    async with engine.begin() as conn:
        for statement in statements:
            await conn.execute(sa.text(statement))
    try:
        yield schema
    finally:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        await engine.dispose()


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("orders_backup_2019", "orders"),
        ("tmp_orders", "orders"),
        ("orders_v2", "orders"),
        ("orders_20190131", "orders"),
        ("bak_orders_old", "orders"),
        ("orders", None),
        ("order_items", None),
        ("temperature", None),
    ],
)
async def test_copy_markers_come_off_a_name(name: str, stem: str | None) -> None:
    assert copy_stem(name) == stem


async def _route(settings: Any) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The route's tables, and the source's table list by bare name."""
    async with service_client(settings) as client:
        response = await client.post("/route", json={"question": QUESTION, "source": "wh", "min_score": 0})
        assert response.status_code == 200, response.text
        listed = (await client.get("/sources/wh/tables")).json()["tables"]
        return response.json()["tables"], {t["name"].split(".", 1)[1]: t for t in listed}


async def test_the_live_table_outranks_its_backup_and_its_empty_staging_copy(
    copies_schema: str, pg_url: str, make_settings: SettingsBuilder
) -> None:
    sources = {"wh": {"url": pg_url, "schemas": [copies_schema]}}
    on, listed = await _route(make_settings(sources=sources, refresh_interval_s=0))
    assert {n: (t["row_count"], t["evidence"]) for n, t in listed.items()} == {
        "orders": (50, None),
        "orders_backup_2019": (50, f"looks like a copy of {copies_schema}.orders"),
        "orders_staging": (0, "empty table"),
        "customers": (None, None),  # written but never analysed: not known, which is not empty
    }
    names = [t["name"].split(".", 1)[1] for t in on]
    assert names[0] == "orders", on
    assert names.index("orders") < names.index("orders_backup_2019")
    assert names.index("orders") < names.index("orders_staging")
    by_name = {t["name"].split(".", 1)[1]: t for t in on}
    assert f"looks like a copy of {copies_schema}.orders" in by_name["orders_backup_2019"]["reason"]
    assert "empty table" in by_name["orders_staging"]["reason"]
    assert by_name["orders"]["score"] > by_name["orders_backup_2019"]["score"]

    off, _ = await _route(make_settings(sources=sources, refresh_interval_s=0, table_evidence=False))
    scores = {t["name"].split(".", 1)[1]: t["score"] for t in off}
    for copy in ("orders_backup_2019", "orders_staging"):
        assert scores[copy] > by_name[copy]["score"]  # not demoted
    assert not any("copy" in t["reason"] or "empty" in t["reason"] for t in off)
