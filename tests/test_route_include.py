"""``include`` on POST /route: the chosen tables' columns, DDL and joins, from the route's snapshot.

Over the grant world's PostgreSQL warehouse (FKs across schemas, a plain and an instruction-like
comment) and the service with keys: the admin sees everything; a key granted the public schema
never learns a secret table's name from a column's FK target, a DDL or a join.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from app.catalog.model import Column, Table
from app.routing.schema_detail import DDL_DIALECTS, SchemaPart, SchemaRequest, schema_detail
from tests.fixtures.auth import ORDERS_COMMENT, TOTAL_COMMENT, GrantWorld, GrantWorldBuilder

pytestmark = pytest.mark.asyncio(loop_scope="module")

QUESTION = "total of the orders of each customer with their order_lines"
ALL_PARTS = ["columns", "ddl", "joins"]
# The answer's keys before 'include' existed: a client that does not ask sees exactly these.
ANSWER_KEYS = {
    "route_id",
    "source",
    "catalog_version",
    "judge",
    "judge_kind",
    "catalog_stale",
    "catalog_age_s",
    "tables",
    "partial",
    "unjudged",
    "unsettled",
    "coverage",
    "budget_cut",
    "budget_unjudged",
    "budget_cut_reason",
    "degraded",
    "degraded_reason",
    "stats",
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(make_grant_world: GrantWorldBuilder) -> AsyncIterator[GrantWorld]:
    async with make_grant_world(comments=True) as w:
        yield w


async def _route(world: GrantWorld, key: str, **body: Any) -> dict[str, Any]:
    response = await world.client.post(
        "/route", json={"question": QUESTION, "source": "sales"} | body, headers=world.auth(key)
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _tables(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in answer["schema_detail"]["tables"]}


def _columns(table: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in table["columns"]}


async def test_columns_ddl_and_joins_of_the_returned_tables(world: GrantWorld) -> None:
    answer = await _route(world, "admin", include=ALL_PARTS)
    pub, sec = world.pub, world.sec
    detail = answer["schema_detail"]
    # One schema per returned table, in the answer's order.
    assert [t["name"] for t in detail["tables"]] == [t["name"] for t in answer["tables"]]
    tables = _tables(answer)
    orders = tables[f"{pub}.orders"]
    assert orders["comment"] == ORDERS_COMMENT
    columns = _columns(orders)
    assert columns["id"] | {"comment": None} == {
        "name": "id",
        "type": "integer",
        "nullable": False,
        "primary_key": True,
        "references": None,
        "comment": None,
        "comment_withheld": False,
    }
    assert columns["customer_id"]["references"] == f"{pub}.customers.id"
    assert columns["customer_id"]["nullable"] is False
    assert columns["ledger_id"]["references"] == f"{sec}.salary_ledger.id"  # the admin sees it
    assert columns["total"]["comment"] == TOTAL_COMMENT
    # The instruction-like comment never reaches the frontend's prompt either; the column says so.
    name = _columns(tables[f"{pub}.customers"])["name"]
    assert name["comment"] is None
    assert name["comment_withheld"] is True
    assert "previous instructions" not in json.dumps(answer)

    assert detail["ddl_dialect"] == "postgres"
    ddl = orders["ddl"]
    assert ddl.startswith(f"CREATE TABLE {pub}.orders (")
    assert "customer_id INT NOT NULL" in ddl
    assert f"FOREIGN KEY (customer_id) REFERENCES {pub}.customers(id)" in ddl
    assert f"FOREIGN KEY (ledger_id) REFERENCES {sec}.salary_ledger(id)" in ddl

    joins = {(j["from_table"], j["to_table"]): j for j in detail["joins"]}
    assert joins[(f"{pub}.orders", f"{pub}.customers")] == {
        "from_table": f"{pub}.orders",
        "from_columns": ["customer_id"],
        "to_table": f"{pub}.customers",
        "to_columns": ["id"],
        "condition": f"{pub}.orders.customer_id = {pub}.customers.id",
        "mined": False,  # declared by the warehouse
        "count": None,
    }
    assert (f"{pub}.order_lines", f"{pub}.orders") in joins
    # Only joins between returned tables.
    returned = set(tables)
    assert all({j["from_table"], j["to_table"]} <= returned for j in detail["joins"])


async def test_only_the_parts_asked_for(world: GrantWorld) -> None:
    answer = await _route(world, "admin", include=["joins"])
    detail = answer["schema_detail"]
    assert detail["joins"]
    assert detail["ddl_dialect"] is None
    assert all(t["columns"] is None and t["ddl"] is None for t in detail["tables"])


async def test_the_answer_without_include_is_unchanged(world: GrantWorld) -> None:
    plain = await _route(world, "admin")
    assert set(plain) == ANSWER_KEYS
    assert all(
        set(t) == {"name", "schema", "table", "score", "votes_for", "votes_total", "reason", "via_fk"}
        for t in plain["tables"]
    )
    # The schema is built after the route cache: the same route with 'include' is a hit, same tables.
    detailed = await _route(world, "admin", include=ALL_PARTS)
    assert detailed["stats"]["cache"] == "hit"
    assert detailed["tables"] == plain["tables"]
    assert detailed["catalog_version"] == plain["catalog_version"]


async def test_ddl_in_the_dialect_asked_for(world: GrantWorld) -> None:
    answer = await _route(world, "admin", include=["ddl", "joins"], ddl_dialect="tsql")
    detail = answer["schema_detail"]
    assert detail["ddl_dialect"] == "tsql"
    customers = _tables(answer)[f"{world.pub}.customers"]
    # PostgreSQL's text is T-SQL's VARCHAR(MAX).
    assert "name VARCHAR(MAX) NOT NULL" in customers["ddl"]
    postgres = _tables(await _route(world, "admin", include=["ddl"]))[f"{world.pub}.customers"]
    assert "name TEXT NOT NULL" in postgres["ddl"]


async def test_an_unknown_dialect_is_a_422_problem(world: GrantWorld) -> None:
    response = await world.client.post(
        "/route",
        json={"question": QUESTION, "source": "sales", "include": ["ddl"], "ddl_dialect": "klingon"},
        headers=world.auth("admin"),
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert [p["name"] for p in problem["invalid_params"]] == ["body.ddl_dialect"]
    assert "snowflake" in problem["detail"]
    bad_part = await world.client.post(
        "/route", json={"question": QUESTION, "include": ["indexes"]}, headers=world.auth("admin")
    )
    assert bad_part.status_code == 422
    assert bad_part.headers["content-type"].startswith("application/problem+json")


async def test_a_restricted_key_never_sees_a_hidden_table(world: GrantWorld) -> None:
    answer = await _route(world, "pub", include=ALL_PARTS)
    text = json.dumps(answer)
    assert [name for name in world.secret_names() if name in text] == []
    orders = _tables(answer)[f"{world.pub}.orders"]
    # The column stays; its FK into the hidden schema is gone from the columns and the DDL.
    ledger = _columns(orders)["ledger_id"]
    assert ledger["references"] is None
    assert "ledger_id INT" in orders["ddl"]
    assert orders["ddl"].count("FOREIGN KEY") == 1
    assert {(j["from_table"], j["to_table"]) for j in answer["schema_detail"]["joins"]} == {
        (f"{world.pub}.orders", f"{world.pub}.customers"),
        (f"{world.pub}.order_lines", f"{world.pub}.orders"),
    }


async def test_batch_items_carry_the_schema(world: GrantWorld) -> None:
    response = await world.client.post(
        "/route/batch",
        json={
            "requests": [
                {"question": QUESTION, "source": "sales", "include": ALL_PARTS},
                {"question": QUESTION, "source": "sales"},
            ]
        },
        headers=world.auth("pub"),
    )
    assert response.status_code == 200, response.text
    detailed, plain = (item["result"] for item in response.json()["results"])
    assert detailed["schema_detail"]["joins"]
    assert [name for name in world.secret_names() if name in json.dumps(detailed)] == []
    assert set(plain) == ANSWER_KEYS


async def test_the_event_stream_result_carries_the_schema(world: GrantWorld) -> None:
    headers = {**world.auth("pub"), "Accept": "text/event-stream"}
    body = {"question": "customers and orders by total", "source": "sales", "include": ALL_PARTS}
    async with world.client.stream("POST", "/route", json=body, headers=headers) as response:
        assert response.status_code == 200
        text = "".join([chunk async for chunk in response.aiter_text()])
    events = [block.split("\n", 1) for block in text.strip().split("\n\n") if block.startswith("event:")]
    results = [json.loads(data.removeprefix("data: ")) for name, data in events if name == "event: result"]
    assert len(results) == 1
    detail = results[0]["schema_detail"]
    assert {t["name"] for t in detail["tables"]} == {t["name"] for t in results[0]["tables"]}
    assert all(t["ddl"].startswith("CREATE TABLE") for t in detail["tables"])
    assert [name for name in world.secret_names() if name in text] == []


async def test_joins_run_through_a_table_added_via_fk(world: GrantWorld) -> None:
    # The question names customers and lines, not orders: orders joins them and comes via_fk.
    answer = await _route(
        world, "pub", question="customer name with lines product", min_score=0.8, include=["joins"]
    )
    pub = world.pub
    via_fk = {t["name"] for t in answer["tables"] if t["via_fk"]}
    assert via_fk == {f"{pub}.orders"}, answer["tables"]
    assert {(j["from_table"], j["to_table"]) for j in answer["schema_detail"]["joins"]} == {
        (f"{pub}.order_lines", f"{pub}.orders"),
        (f"{pub}.orders", f"{pub}.customers"),
    }


async def test_a_type_that_is_not_a_type_name_cannot_break_the_ddl() -> None:
    # A PostgreSQL type may be any quoted name: it goes into the DDL as one quoted name.
    table = Table("s", "t", columns=(Column("a", 'x"); DROP TABLE s.t; --'), Column("b", "my_domain")))
    request = SchemaRequest(frozenset({SchemaPart.DDL}))
    ddl = schema_detail({"s.t": table}, ["s.t"], None, request, "postgresql").tables[0].ddl
    assert ddl == 'CREATE TABLE s.t (\n  a "x""); DROP TABLE s.t; --",\n  b my_domain\n)'


async def test_the_written_out_dialects_are_the_installed_sqlglots() -> None:
    from sqlglot.dialects.dialect import Dialects  # noqa: PLC0415

    assert tuple(sorted(d.value for d in Dialects if d.value)) == DDL_DIALECTS


async def test_a_column_the_warehouse_gives_no_type_has_none() -> None:
    # SQLite declares no type for a view's computed columns (SQLAlchemy's NullType).
    view = Table("", "v", columns=(Column("month", "NULLTYPE"), Column("code", "char(3)")), kind="view")
    request = SchemaRequest(frozenset({SchemaPart.COLUMNS, SchemaPart.DDL}))
    detail = schema_detail({"v": view}, ["v"], None, request, "sqlite").tables[0]
    assert detail.columns is not None
    assert [c.type for c in detail.columns] == [None, "char(3)"]
    assert detail.ddl == "-- a view\nCREATE TABLE v (\n  month,\n  code TEXT(3)\n)"
