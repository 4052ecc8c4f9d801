"""Copies, backups and empty staging tables on a real PostgreSQL: the live table comes first.

The warehouse holds ``orders`` (rows, analysed), ``orders_backup_2019`` (the same rows) and
``orders_staging`` (no row: its file is empty). The answer puts ``orders`` first and says
why; with ``TABLE_EVIDENCE`` off the copies keep their scores. The judge is the lexical one (no
LM): evidence applies to any judge's ranking.

Then the cards an API key's grant re-renders, read back from the LM simulator's prompts: a key
that may see copies but not ``orders`` and ``customers`` gets the evidence on every card, and
never the name of a table it cannot see.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from app.catalog.copies import copy_stem
from app.harness.service import running_service, service_client
from app.simulator.service import SimulatorConfig, running_simulator
from tests.fixtures.auth import ADMIN_KEY, make_key
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


@dataclass(frozen=True)
class GrantedCopies:
    """The service over a real socket with keys, the simulator it asks, and the warehouse's schema."""

    client: httpx.AsyncClient
    sim_url: str
    schema: str
    copies_key: str  # granted orders_* and returns*: not orders, not customers

    def auth(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


def _granted_copies_ddl(s: str) -> list[str]:
    """customers <- orders, and copies of it: orders_old (no FK), orders_backup_2019 and
    orders_staging (empty) with FKs to customers; returns and returns_bak (FK to customers)."""
    linked = f"(id integer PRIMARY KEY, customer_id integer REFERENCES {s}.customers, status varchar)"
    statements = [
        f"CREATE SCHEMA {s}",
        f"CREATE TABLE {s}.customers (id integer PRIMARY KEY, name varchar)",
        f"INSERT INTO {s}.customers SELECT g, 'c' || g FROM generate_series(1, 50) g",
        f"CREATE TABLE {s}.orders {linked}",
        f"CREATE TABLE {s}.orders_old (id integer PRIMARY KEY, customer_id integer, status varchar)",
        f"CREATE TABLE {s}.orders_backup_2019 {linked}",
        f"CREATE TABLE {s}.orders_staging {linked}",
        f"CREATE TABLE {s}.returns (id integer PRIMARY KEY, order_id integer, reason varchar)",
        f"CREATE TABLE {s}.returns_bak (id integer PRIMARY KEY, order_id integer, reason varchar,"
        f" customer_id integer REFERENCES {s}.customers)",
    ]
    for table in ("orders", "orders_old", "orders_backup_2019"):
        statements.append(f"INSERT INTO {s}.{table} SELECT g, g, 'open' FROM generate_series(1, 50) g")
    for table in ("returns", "returns_bak"):
        statements.append(f"INSERT INTO {s}.{table} SELECT g, g, 'late' FROM generate_series(1, 50) g")
    tables = ("customers", "orders", "orders_old", "orders_backup_2019", "returns", "returns_bak")
    return statements + [f"ANALYZE {s}.{t}" for t in tables]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def granted_copies(pg_url: str, make_settings: SettingsBuilder) -> AsyncIterator[GrantedCopies]:
    schema = f"cp17g_{uuid.uuid4().hex[:8]}"
    engine = create_async_engine(pg_url)
    try:
        async with engine.begin() as conn:
            for statement in _granted_copies_ddl(schema):
                await conn.execute(sa.text(statement))
        async with running_simulator(SimulatorConfig(port=0, latency_ms="uniform:1:3")) as sim_url:
            settings = make_settings(
                sim_url=sim_url,
                auth=True,
                admin_key=ADMIN_KEY,
                sources={"wh": {"url": pg_url, "schemas": [schema]}},
                refresh_interval_s=0,
                llm_timeout=10,
                chunk_tokens=200,  # a few cards per prompt
                key_rate_limit=0,
                key_daily_tokens=0,
            )
            async with (
                running_service(settings) as (url, _),
                httpx.AsyncClient(base_url=url, timeout=60) as client,
            ):
                grant = {"wh": [f"{schema}.orders_*", f"{schema}.returns*"]}
                secret, _ = await make_key(client, "copies", grants=grant)
                yield GrantedCopies(client, sim_url, schema, secret)
    finally:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        await engine.dispose()


def _hidden(world: GrantedCopies) -> re.Pattern[str]:
    """The names the copies key may not see, as whole names (``orders``, not ``orders_old``)."""
    return re.compile(rf"{world.schema}\.(?:orders|customers)\b")


async def _card_headers(world: GrantedCopies, key: str, question: str) -> tuple[dict[str, str], str, str]:
    """The card headers the LM was shown in one route of ``key`` (by bare table name), all the
    prompts' text, and the answer's."""
    async with httpx.AsyncClient(base_url=world.sim_url) as sim:
        assert (await sim.post("/stats/reset")).status_code == 200
        response = await world.client.post(
            "/route", json={"question": question, "source": "wh", "min_score": 0}, headers=world.auth(key)
        )
        assert response.status_code == 200, response.text
        prompts: list[str] = (await sim.get("/prompts")).json()["prompts"]
    assert prompts, "the route reached the LM"
    text = "\n".join(prompts)
    start = f"### {world.schema}."
    headers = {
        line[len(start) :].split(" ", 1)[0]: line for line in text.splitlines() if line.startswith(start)
    }
    return headers, text, response.text


async def test_a_key_that_cannot_see_the_original_is_not_shown_its_name(
    granted_copies: GrantedCopies,
) -> None:
    world, schema = granted_copies, granted_copies.schema
    # The control: a key that sees everything is told which table orders_old copies.
    headers, _, _ = await _card_headers(world, ADMIN_KEY, "orders per status, admin")
    assert f"[copy of {schema}.orders]" in headers["orders_old"]

    headers, prompts, answer = await _card_headers(world, world.copies_key, "orders per status, copies key")
    assert set(headers) == {"orders_old", "orders_backup_2019", "orders_staging", "returns", "returns_bak"}
    assert not _hidden(world).search(prompts), prompts
    assert "[name reads as a copy]" in headers["orders_old"]
    # The answer's reasons and the table list are guarded the same way.
    assert not _hidden(world).search(answer), answer
    reasons = {t["name"]: t["reason"] for t in json.loads(answer)["tables"]}
    assert "name reads as a copy" in reasons[f"{schema}.orders_old"]
    listed = await world.client.get("/sources/wh/tables", headers=world.auth(world.copies_key))
    assert not _hidden(world).search(listed.text), listed.text
    evidence = {t["name"]: t["evidence"] for t in listed.json()["tables"]}
    assert evidence[f"{schema}.orders_old"] == "name reads as a copy"


async def test_cards_made_again_for_a_key_keep_their_evidence(granted_copies: GrantedCopies) -> None:
    # These cards link to customers, which the key cannot see: the grant renders them again
    # without that foreign key, and with the evidence the key may read.
    world, schema = granted_copies, granted_copies.schema
    admin, _, _ = await _card_headers(world, ADMIN_KEY, "returned orders by reason, admin")
    headers, _, _ = await _card_headers(world, world.copies_key, "returned orders by reason, copies key")
    assert "[empty]" in admin["orders_staging"]  # the control: the catalog's cards carry it
    assert f"[copy of {schema}.orders]" in admin["orders_backup_2019"]
    assert "[empty]" in headers["orders_staging"]
    assert "[name reads as a copy]" in headers["orders_backup_2019"]
    assert f"[copy of {schema}.returns]" in headers["returns_bak"]
