"""A table is (schema, table): odd names stay distinct, and grants match each part on its own.

Real PostgreSQL schemas and tables named with dots, quotes and glob characters, the service over
HTTP with auth on and keys made through its admin API, the simulator over a real socket.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.catalog.identifiers import NameSyntaxError, display_name, parse_name, parse_pattern
from app.harness.service import service_client
from app.simulator.service import SimulatorConfig, running_simulator
from tests.fixtures.auth import ADMIN_KEY, make_key
from tests.fixtures.settings import SettingsBuilder


@pytest.mark.parametrize(
    ("schema", "table", "shown"),
    [
        ("public", "orders", "public.orders"),
        (None, "orders", "orders"),
        ("a", "b.x", 'a."b.x"'),
        ("a.b", "x", '"a.b".x'),
        ("p*", "t", '"p*".t'),
        ("s", 'say "hi"', 's."say ""hi"""'),
        ("Mixed Case", "t t", "Mixed Case.t t"),
    ],
)
def test_display_names_are_unambiguous_and_parse_back(schema: str | None, table: str, shown: str) -> None:
    assert display_name(schema, table) == shown
    assert parse_name(shown) == (schema, table)


def test_patterns_match_each_part_and_quoted_parts_literally() -> None:
    public = parse_pattern("public.*")
    assert public.sees("public", "orders")
    assert not public.sees("public.hidden", "x")
    starred = parse_pattern('"p*".*')
    assert starred.sees("p*", "t")
    assert not starred.sees("public", "t")
    assert parse_pattern("p*.*").sees("public", "t")
    assert parse_pattern('a."b.x"').sees("a", "b.x")
    assert not parse_pattern('a."b.x"').sees("a.b", "x")
    assert not parse_pattern("Public.*").sees("public", "t")  # case-sensitive
    assert parse_pattern("*").sees("any.schema", "t")
    assert parse_pattern("orders").sees(None, "orders")
    assert not parse_pattern("orders").sees("public", "orders")
    for bad in ('"open.*', "a.b.*", "a..b", 'a"b.c'):
        with pytest.raises(NameSyntaxError):
            parse_pattern(bad)


@dataclass
class OddWorld:
    client: httpx.AsyncClient
    base: str  # the "public" schema; siblings: {base}.hidden, {base}_a, {base}_a.b, {base}*
    keys: dict[str, str] = field(default_factory=dict)

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_KEY if name == 'admin' else self.keys[name]}"}

    async def tables(self, key: str) -> dict[str, dict[str, Any]]:
        listed = await self.client.get("/sources/wh/tables", headers=self.auth(key))
        assert listed.status_code == HTTPStatus.OK, listed.text
        return {t["name"]: t for t in listed.json()["tables"]}

    async def route(self, key: str, question: str, **extra: Any) -> httpx.Response:
        body = {"question": question, "source": "wh", "min_score": 0, "top_k": 50, **extra}
        return await self.client.post("/route", json=body, headers=self.auth(key))


def _schemas(base: str) -> dict[str, list[str]]:
    return {
        base: [
            "customers (id integer PRIMARY KEY, name text)",
            "orders (id integer PRIMARY KEY, customer_id integer, total numeric)",
            '"q""t" (id integer PRIMARY KEY, quote_text text)',
        ],
        f"{base}.hidden": ["secret_salary (id integer PRIMARY KEY, salary numeric)"],
        f"{base}_a": ['"b.x" (id integer PRIMARY KEY, shipment_weight numeric)'],
        f"{base}_a.b": ["x (id integer PRIMARY KEY, shipment_weight numeric)"],
        f"{base}*": ["starred (id integer PRIMARY KEY, salary numeric)"],
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def odd(pg_url: str, make_settings: SettingsBuilder) -> AsyncIterator[OddWorld]:
    base = f"tr_ids_{uuid.uuid4().hex[:8]}"
    schemas = _schemas(base)
    engine = create_async_engine(pg_url)
    try:
        async with engine.begin() as conn:
            for schema, tables in schemas.items():
                quoted = '"' + schema.replace('"', '""') + '"'
                await conn.execute(text(f"CREATE SCHEMA {quoted}"))
                for table in tables:
                    await conn.execute(text(f"CREATE TABLE {quoted}.{table}"))
        async with running_simulator(SimulatorConfig(port=0)) as sim_url:
            settings = make_settings(
                sim_url=sim_url,
                auth=True,
                admin_key=ADMIN_KEY,
                sources={"wh": {"url": pg_url, "schemas": list(schemas)}},
                refresh_interval_s=0,
                key_rate_limit=0,
                key_daily_tokens=0,
            )
            async with service_client(settings) as client:
                world = OddWorld(client, base)
                grants = {
                    "public": [f"{base}.*"],
                    "star": [f'"{base}*".*'],
                    "ab_x": [f'"{base}_a.b".x'],
                }
                for name, patterns in grants.items():
                    world.keys[name], _ = await make_key(client, name, grants={"wh": patterns})
                yield world
    finally:
        async with engine.begin() as conn:
            for schema in schemas:
                await conn.execute(
                    text('DROP SCHEMA IF EXISTS "{}" CASCADE'.format(schema.replace('"', '""')))
                )
        await engine.dispose()


@pytest.mark.asyncio(loop_scope="module")
async def test_dotted_names_are_listed_distinctly_with_their_parts(odd: OddWorld) -> None:
    b = odd.base
    listed = await odd.tables("admin")
    assert listed[f'{b}_a."b.x"']["schema"] == f"{b}_a"
    assert listed[f'{b}_a."b.x"']["table"] == "b.x"
    assert listed[f'"{b}_a.b".x']["schema"] == f"{b}_a.b"
    assert listed[f'"{b}_a.b".x']["table"] == "x"
    assert listed[f'{b}."q""t"']["table"] == 'q"t'
    assert listed[f"{b}.orders"]["schema"] == b  # an ordinary name prints as schema.table


@pytest.mark.asyncio(loop_scope="module")
async def test_grants_match_each_part(odd: OddWorld) -> None:
    b = odd.base
    assert set(await odd.tables("public")) == {f"{b}.customers", f"{b}.orders", f'{b}."q""t"'}
    assert set(await odd.tables("star")) == {f'"{b}*".starred'}
    assert set(await odd.tables("ab_x")) == {f'"{b}_a.b".x'}
    # The question names the hidden tables outright: the lexical simulator would pick them if shown.
    for key, allowed in (("public", b), ("ab_x", f"{b}_a.b")):
        routed = await odd.route(key, "salary secret_salary starred shipment weight of customers")
        assert routed.status_code == HTTPStatus.OK, routed.text
        assert {t["schema"] for t in routed.json()["tables"]} == {allowed}
    hidden = await odd.route("public", "salary", schemas=[f'"{b}.hidden"'])
    assert hidden.status_code == HTTPStatus.UNPROCESSABLE_ENTITY


@pytest.mark.asyncio(loop_scope="module")
async def test_answers_schemas_and_feedback_take_the_quoted_form(odd: OddWorld) -> None:
    b = odd.base
    for written in (f'"{b}_a.b"', f"{b}_a.b"):
        routed = await odd.route("admin", "shipment weight", schemas=[written])
        assert routed.status_code == HTTPStatus.OK, routed.text
        assert [t["name"] for t in routed.json()["tables"]] == [f'"{b}_a.b".x']
    routed = await odd.route("admin", "shipment weight", schemas=[f"{b}_a", f"{b}_a.b"])
    answer = routed.json()
    chosen = {(t["schema"], t["table"]): t["name"] for t in answer["tables"] if t["votes_for"]}
    assert chosen == {(f"{b}_a", "b.x"): f'{b}_a."b.x"', (f"{b}_a.b", "x"): f'"{b}_a.b".x'}
    feedback = f"/routes/{answer['route_id']}/feedback"
    named = await odd.client.post(feedback, json={"used_tables": [f'"{b}_a.b".x']}, headers=odd.auth("admin"))
    assert named.status_code == HTTPStatus.CREATED, named.text
    assert named.json()["used_tables"] == [f'"{b}_a.b".x']
    from_sql = await odd.client.post(
        feedback, json={"sql": f'SELECT * FROM "{b}_a"."b.x"'}, headers=odd.auth("admin")
    )
    assert from_sql.json()["used_tables"] == [f'{b}_a."b.x"']
    ambiguous = await odd.client.post(
        feedback, json={"used_tables": [f"{b}_a.b.x"]}, headers=odd.auth("admin")
    )
    assert ambiguous.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    logged = await odd.client.get(f"/routes/{answer['route_id']}", headers=odd.auth("admin"))
    assert {t["name"] for t in logged.json()["tables"]} >= set(chosen.values())


@pytest.mark.asyncio(loop_scope="module")
async def test_a_pattern_that_does_not_parse_is_refused_when_the_key_is_made(odd: OddWorld) -> None:
    made = await odd.client.post(
        "/keys", json={"name": "bad", "grants": {"wh": ['"open.*']}}, headers=odd.auth("admin")
    )
    assert made.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert "double quote is not closed" in made.json()["detail"]
