"""The route memory on real parts: a PostgreSQL warehouse without foreign keys, the service over a
real socket (lexical judge; the LM simulator for the confident, narrowed route), rows imported
over HTTP, feedback through HTTP, and a key whose grant hides a remembered table.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.harness.service import running_service
from app.simulator.service import SimulatorConfig, running_simulator
from tests.fixtures.auth import ADMIN_KEY, make_key
from tests.fixtures.settings import SettingsBuilder

pytestmark = pytest.mark.asyncio(loop_scope="module")

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
# No foreign key anywhere: the joins can only be mined from SQL.
TABLES = {
    "customers": "id integer PRIMARY KEY, full_name text",
    "orders": "id integer PRIMARY KEY, customer_id integer, placed_on date, total numeric",
    "order_lines": "id integer PRIMARY KEY, order_id integer, product_id integer, qty integer",
    "products": "id integer PRIMARY KEY, title text, price numeric",
    "shipments": "id integer PRIMARY KEY, order_id integer, carrier text",
    "earned_items": "id integer PRIMARY KEY, holder_ref integer, token_ref integer",
    "loyalty_badges": "id integer PRIMARY KEY, badge_label text",
    "weather_stations": "id integer PRIMARY KEY, station_name text",
    "rainfall_readings": "id integer PRIMARY KEY, station_id integer, mm numeric",
    "library_books": "id integer PRIMARY KEY, isbn text",
}
SECRET = "payroll_runs"


@dataclass
class World:
    client: httpx.AsyncClient
    shop: str  # the visible schema
    sec: str  # the schema only admins see
    pub_key: str
    env: dict[str, str] = field(default_factory=dict)  # the service's store and sources, for the CLI

    def name(self, table: str) -> str:
        return f"{self.sec}.{table}" if table == SECRET else f"{self.shop}.{table}"

    async def route(self, question: str, key: str | None = None, **body: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {key}"} if key else ADMIN
        response = await self.client.post(
            "/route", json={"question": question, "source": "shop", **body}, headers=headers
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def remember(self, rows: list[Any], source: str = "shop") -> dict[str, Any]:
        response = await self.client.post(f"/sources/{source}/memory", json={"rows": rows}, headers=ADMIN)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def warehouse(pg_url: str) -> AsyncIterator[tuple[str, str]]:
    tag = uuid.uuid4().hex[:8]
    shop, sec = f"mem_{tag}", f"memsec_{tag}"
    engine = create_async_engine(pg_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{shop}"'))
            await conn.execute(text(f'CREATE SCHEMA "{sec}"'))
            for table, columns in TABLES.items():
                await conn.execute(text(f'CREATE TABLE "{shop}".{table} ({columns})'))
            secret = f'"{sec}".{SECRET}'
            await conn.execute(
                text(f"CREATE TABLE {secret} (id integer PRIMARY KEY, customer_id integer, amount numeric)")
            )
        yield shop, sec
    finally:
        async with engine.begin() as conn:
            for schema in (shop, sec):
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()


def _settings(pg_url: str, shop: str, sec: str, **overrides: Any) -> SettingsBuilder:
    return SettingsBuilder().extend(
        auth=True,
        admin_key=ADMIN_KEY,
        sources={"shop": {"url": pg_url, "schemas": [shop, sec]}},
        key_rate_limit=0,
        key_daily_tokens=0,
        memory_refresh_s=0,
        **overrides,
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(
    pg_url: str, warehouse: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    shop, sec = warehouse
    store = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('memory') / 'store.db'}"
    settings = _settings(pg_url, shop, sec, llm_model=None, database_url=store)()
    env = {
        "TABLEROUTER_DATABASE_URL": store,
        "TABLEROUTER_SOURCES": json.dumps({"shop": {"url": pg_url, "schemas": [shop, sec]}}),
    }
    async with running_service(settings) as (url, _), httpx.AsyncClient(base_url=url, timeout=60) as client:
        pub_key, _ = await make_key(client, "pub", grants={"shop": [f"{shop}.*"]})
        yield World(client, shop, sec, pub_key, env)


async def test_an_import_remembers_the_good_rows_and_reports_each_bad_one(world: World) -> None:
    s = world.shop
    result = await world.remember(
        [
            {"question": "how many products were sold", "sql": f"SELECT count(*) FROM {s}.order_lines"},
            {"question": "list every product title", "tables": [f"{s}.products"]},
            {"sql": f"SELECT 1 FROM {s}.products p JOIN {s}.order_lines l ON l.product_id = p.id"},
            {"question": "broken", "sql": "SELEC oops FROM"},
            {"question": "a table the source lacks", "tables": [f"{s}.no_such_table"]},
            "not an object",
            {"question": "neither tables nor sql"},
        ]
    )
    assert result["imported"] == 3
    assert result["joins"] == 1
    bad = {b["line"]: b["reason"] for b in result["bad"]}
    assert sorted(bad) == [4, 5, 6, 7]
    assert "does not parse" in bad[4]
    assert "no_such_table" in bad[5]
    state = (await world.client.get("/sources/shop/memory", headers=ADMIN)).json()
    assert state["entries"] >= 3
    assert {"left_table": f"{s}.order_lines", "left_column": "product_id"}.items() <= state["joins"][
        0
    ].items()


async def test_an_import_needs_an_admin_key_and_a_known_source(world: World) -> None:
    rows = {"rows": [{"question": "q", "tables": [world.name("orders")]}]}
    forbidden = await world.client.post(
        "/sources/shop/memory", json=rows, headers={"Authorization": f"Bearer {world.pub_key}"}
    )
    assert forbidden.status_code == 403
    unknown = await world.client.post("/sources/nowhere/memory", json=rows, headers=ADMIN)
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")
    empty = await world.client.post("/sources/shop/memory", json={"rows": []}, headers=ADMIN)
    assert empty.status_code == 422


async def test_a_similar_past_question_lends_its_tables_and_the_reason_says_so(world: World) -> None:
    question = "who are our biggest spenders this year"
    before = await world.route(question, top_k=2)
    assert before["stats"]["memory_matches"] == 0
    assert {t["name"] for t in before["tables"]} != {world.name("customers"), world.name("orders")}
    await world.remember(
        [
            {
                "question": "who were our biggest spenders last year",
                "tables": [world.name("customers"), world.name("orders")],
            }
        ]
    )
    after = await world.route(question, top_k=2)
    assert {t["name"] for t in after["tables"]} == {world.name("customers"), world.name("orders")}
    assert all("similar past questions used it" in t["reason"] for t in after["tables"])
    assert after["stats"]["memory_matches"] >= 1
    assert after["stats"]["memory_tables"] >= 2


async def test_a_remembered_table_stays_hidden_from_a_key_that_may_not_see_it(world: World) -> None:
    question = "payroll run amounts per customer"
    sql = (
        f"SELECT c.full_name, sum(p.amount) FROM {world.sec}.{SECRET} p "
        f"JOIN {world.shop}.customers c ON c.id = p.customer_id GROUP BY 1"
    )
    assert (await world.remember([{"question": question, "sql": sql}]))["imported"] == 1
    admin = await world.route(question, include=["joins"])
    assert world.name(SECRET) in {t["name"] for t in admin["tables"]}
    response = await world.client.post(
        "/route",
        json={"question": question, "source": "shop", "include": ["joins"]},
        headers={"Authorization": f"Bearer {world.pub_key}"},
    )
    assert response.status_code == 200, response.text
    assert SECRET not in response.text
    assert world.sec not in response.text
    # The memory lent the hidden table nothing this key can see, and it is not counted.
    assert response.json()["stats"]["memory_tables"] == admin["stats"]["memory_tables"] - 1


async def test_feedback_sql_is_remembered_and_its_join_is_mined(world: World) -> None:
    routed = await world.route("carrier of every shipment with its order date")
    s = world.shop
    sql = f"SELECT o.placed_on, s.carrier FROM {s}.orders o JOIN {s}.shipments s ON s.order_id = o.id"
    response = await world.client.post(
        f"/routes/{routed['route_id']}/feedback", json={"sql": sql}, headers=ADMIN
    )
    assert response.status_code == 201, response.text
    state = (await world.client.get("/sources/shop/memory", headers=ADMIN)).json()
    mined = {(j["left_table"], j["left_column"], j["right_table"], j["right_column"]) for j in state["joins"]}
    assert (world.name("orders"), "id", world.name("shipments"), "order_id") in mined
    answer = await world.route("which carrier shipped each order on which date", include=["joins"])
    names = {t["name"] for t in answer["tables"]}
    assert {world.name("orders"), world.name("shipments")} <= names
    joins = answer["schema_detail"]["joins"]
    assert any(j["mined"] and j["count"] == 1 and j["to_table"] == world.name("shipments") for j in joins), (
        joins
    )


async def test_mined_joins_complete_a_join_path_the_warehouse_never_declared(world: World) -> None:
    question = "customers full_name with their loyalty_badges badge_label"
    junction = world.name("earned_items")
    before = await world.route(question, min_score=0.5)
    assert junction not in {t["name"] for t in before["tables"]}
    s = world.shop
    log = (
        f"SELECT c.full_name, b.badge_label FROM {s}.customers c "
        f"JOIN {s}.earned_items e ON e.holder_ref = c.id JOIN {s}.loyalty_badges b ON b.id = e.token_ref"
    )
    assert (await world.remember([{"sql": log}]))["joins"] == 2
    after = await world.route(question, min_score=0.5)
    path = [t for t in after["tables"] if t["name"] == junction]
    assert path, after["tables"]
    assert path[0]["via_fk"]


async def test_a_forgotten_entry_lends_nothing(world: World) -> None:
    question = "rainfall millimetres at every station yesterday"
    await world.remember([{"question": question, "tables": [world.name("rainfall_readings")]}])
    similar = (
        await world.client.get("/sources/shop/memory", params={"question": question}, headers=ADMIN)
    ).json()["similar"]
    assert similar[0]["tables"] == [world.name("rainfall_readings")]
    entry = similar[0]["id"]
    assert (await world.client.delete(f"/sources/shop/memory/{entry}", headers=ADMIN)).status_code == 204
    assert (await world.route(question))["stats"]["memory_matches"] == 0
    again = await world.client.delete(f"/sources/shop/memory/{entry}", headers=ADMIN)
    assert again.status_code == 404
    assert again.headers["content-type"].startswith("application/problem+json")


async def test_a_confident_memory_narrows_the_judged_shortlist_and_says_so(
    pg_url: str, warehouse: tuple[str, str]
) -> None:
    shop, sec = warehouse
    question = "weather station names and their rainfall"
    async with running_simulator(SimulatorConfig(port=0, latency_ms="uniform:1:3")) as sim_url:
        settings = _settings(
            pg_url,
            shop,
            sec,
            memory_shortlist_size=3,
            memory_confident_similarity=0.5,
            verdict_cache_size=0,
            chunk_tokens=200,
        )(sim_url=sim_url)
        async with (
            running_service(settings) as (url, _),
            httpx.AsyncClient(base_url=url, timeout=60) as client,
        ):
            world = World(client, shop, sec, "")
            before = await world.route(question)
            assert before["stats"]["memory_shortlist"] == 0
            assert before["stats"]["shortlisted"] == len(TABLES) + 1
            await world.remember(
                [
                    {
                        "question": "names of weather stations with rainfall",
                        "tables": [world.name("weather_stations"), world.name("rainfall_readings")],
                    }
                ]
            )
            after = await world.route(question)
            stats = after["stats"]
            assert stats["memory_shortlist"] == 3
            assert stats["shortlisted"] == 3
            assert stats["lm_calls"] >= 1  # the judge still decides, over fewer tables
            assert stats["prompt_tokens"] < before["stats"]["prompt_tokens"]
            assert {world.name("weather_stations"), world.name("rainfall_readings")} <= {
                t["name"] for t in after["tables"]
            }


async def test_the_cli_imports_a_file_and_reports_its_bad_lines(world: World, tmp_path: Path) -> None:
    rows = tmp_path / "log.jsonl"
    good = {"question": "the isbn of every library book", "tables": [world.name("library_books")]}
    rows.write_text(json.dumps(good) + "\n{not json\n" + json.dumps({"sql": "SELECT * FROM nowhere"}) + "\n")
    tablerouter = str(Path(sys.executable).with_name("tablerouter"))
    process = await asyncio.create_subprocess_exec(
        tablerouter,
        "memory",
        "import",
        "--source",
        "shop",
        str(rows),
        env={**os.environ, **world.env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert "1 rows remembered" in out.decode()
    assert "line 2: not JSON" in err.decode()
    assert "line 3: tables not in the source's catalog: nowhere" in err.decode()
    # The service loads what another process stored when it syncs (here: after its own import).
    await world.remember([{"question": "rainfall per station", "tables": [world.name("rainfall_readings")]}])
    answer = await world.route("the isbn of every library book please", top_k=1)
    assert answer["tables"][0]["name"] == world.name("library_books")
    assert answer["stats"]["memory_matches"] >= 1
