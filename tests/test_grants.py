"""Authorization: a key sees only its granted sources and tables, everywhere, and never another key's routes.

The question names the secret tables outright, the simulator judges by word overlap (so it
would pick them if it were shown them), and the simulator's received prompts are read back to
check that no hidden name ever reached the LM.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from tests.fixtures.auth import QUESTION, SECRET_TABLES, GrantWorld, GrantWorldBuilder

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(make_grant_world: GrantWorldBuilder) -> AsyncIterator[GrantWorld]:
    # Route and verdict caches on: a narrower key must never be served a wider key's answer.
    async with make_grant_world() as w:
        yield w


def _leaks(world: GrantWorld, text: str) -> list[str]:
    return [name for name in world.secret_names() if name in text]


async def _prompts(world: GrantWorld) -> list[str]:
    async with httpx.AsyncClient() as sim:
        prompts: list[str] = (await sim.get(f"{world.sim_url}/prompts")).json()["prompts"]
        return prompts


async def _reset_sim(world: GrantWorld) -> None:
    async with httpx.AsyncClient() as sim:
        assert (await sim.post(f"{world.sim_url}/stats/reset")).status_code == 200


async def test_admin_sees_the_secret_tables(world: GrantWorld) -> None:
    # The control: without a grant limiting it, the question does find the secret tables.
    response = await world.client.post(
        "/route", json={"question": QUESTION, "source": "sales"}, headers=world.auth("admin")
    )
    assert response.status_code == 200, response.text
    names = {t["name"] for t in response.json()["tables"]}
    assert {f"{world.sec}.{t}" for t in SECRET_TABLES} <= names
    assert response.json()["judge_kind"] == "lm"


async def test_a_granted_key_never_gets_a_hidden_table_cached_or_not(world: GrantWorld) -> None:
    # The admin asked the very same question before (test above): its answer is cached.
    for _ in range(2):
        response = await world.client.post(
            "/route", json={"question": QUESTION, "source": "sales"}, headers=world.auth("pub")
        )
        assert response.status_code == 200, response.text
        assert not _leaks(world, response.text), response.text
        body = response.json()
        assert {t["name"] for t in body["tables"]} <= {
            f"{world.pub}.customers",
            f"{world.pub}.orders",
            f"{world.pub}.order_lines",
        }
        assert body["stats"]["tables_considered"] == 3


async def test_the_lm_is_never_shown_a_hidden_table(world: GrantWorld) -> None:
    await _reset_sim(world)
    questions = [QUESTION + " by order line product", QUESTION + " by product"]  # new: no cached verdict
    for question, headers in zip(questions, ({}, {"Accept": "text/event-stream"}), strict=True):
        response = await world.client.post(
            "/route", json={"question": question, "source": "sales"}, headers={**world.auth("pub"), **headers}
        )
        assert response.status_code == 200, response.text
        assert not _leaks(world, response.text.replace(question, ""))
    prompts = await _prompts(world)
    assert prompts, "the routes reached the LM"
    assert any(f"{world.pub}.orders" in p for p in prompts)
    # The question itself names the secret tables (the user typed them): the cards must not.
    shown = [p.replace(q, "") for p in prompts for q in questions if q in p]
    assert len(shown) == len(prompts)
    leaked = [(n, p) for p in shown for n in world.secret_names() if n in p]
    assert not leaked, leaked[:1]


async def test_a_batch_sees_the_same_grant(world: GrantWorld) -> None:
    requests = [
        {"question": QUESTION + " per month", "source": "sales"},
        {"question": QUESTION, "source": "hr"},
        {"question": QUESTION, "source": "no_such_source"},
    ]
    response = await world.client.post("/route/batch", json={"requests": requests}, headers=world.auth("pub"))
    assert response.status_code == 200
    results = response.json()["results"]
    assert results[0]["result"] is not None
    # hr exists but is not granted: the very same answer as a source that does not exist.
    assert results[1]["error"]["status"] == results[2]["error"]["status"] == 404
    assert results[1]["error"]["detail"].replace("'hr'", "'no_such_source'") == results[2]["error"]["detail"]
    assert not _leaks(world, response.text)


async def test_ungranted_source_is_as_unknown_as_a_missing_one(world: GrantWorld) -> None:
    for method, path, body in [
        ("POST", "/route", {"question": QUESTION, "source": "{s}"}),
        ("GET", "/sources/{s}", None),
        ("GET", "/sources/{s}/tables", None),
    ]:
        answers = []
        for source in ("hr", "nope"):
            payload = json.loads(json.dumps(body).replace("{s}", source)) if body else None
            response = await world.client.request(
                method, path.replace("{s}", source), json=payload, headers=world.auth("pub")
            )
            answers.append((response.status_code, response.json()["detail"].replace(source, "X")))
        assert answers[0] == answers[1], (path, answers)
        assert answers[0][0] == 404


async def test_sources_and_tables_show_only_the_grant(world: GrantWorld) -> None:
    listed = await world.client.get("/sources", headers=world.auth("pub"))
    assert [s["name"] for s in listed.json()["sources"]] == ["sales"]
    assert listed.json()["sources"][0]["tables"] == 3
    assert listed.json()["sources"][0]["schemas"] == [world.pub]
    tables = await world.client.get("/sources/sales/tables", headers=world.auth("pub"))
    assert tables.json()["total"] == 3
    assert not _leaks(world, listed.text + tables.text)
    orders = next(t for t in tables.json()["tables"] if t["name"] == f"{world.pub}.orders")
    # The FK into the secret schema is not shown; the one to customers is.
    assert [fk["ref_table"] for fk in orders["foreign_keys"]] == [f"{world.pub}.customers"]
    # The admin sees it all.
    full = await world.client.get("/sources/sales/tables", headers=world.auth("admin"))
    assert full.json()["total"] == 5


async def test_a_key_without_any_visible_source(world: GrantWorld) -> None:
    listed = await world.client.get("/sources", headers=world.auth("nothing"))
    assert listed.json() == {"sources": [], "store": "ok"}
    response = await world.client.post("/route", json={"question": QUESTION}, headers=world.auth("nothing"))
    assert response.status_code == 422
    assert "sales" not in response.text
    assert "hr" not in response.json()["detail"].split(":")[-1]


async def test_the_only_visible_source_is_the_default(world: GrantWorld) -> None:
    response = await world.client.post("/route", json={"question": "staff names"}, headers=world.auth("hr"))
    assert response.status_code == 200
    assert response.json()["source"] == "hr"


async def test_a_schema_with_only_hidden_tables_is_unknown(world: GrantWorld) -> None:
    answers = []
    for schema in (world.sec, "tr_no_such_schema"):
        response = await world.client.post(
            "/route",
            json={"question": QUESTION, "source": "sales", "schemas": [schema]},
            headers=world.auth("pub"),
        )
        assert response.status_code == 422
        answers.append(response.json()["detail"].replace(schema, "X"))
    assert answers[0] == answers[1]


async def test_another_keys_route_is_404_and_its_feedback_too(world: GrantWorld) -> None:
    mine = await world.client.post(
        "/route", json={"question": "customers orders", "source": "sales"}, headers=world.auth("pub")
    )
    route_id = mine.json()["route_id"]
    assert (await world.client.get(f"/routes/{route_id}", headers=world.auth("pub"))).status_code == 200
    theirs = await world.client.get(f"/routes/{route_id}", headers=world.auth("pub2"))
    missing = await world.client.get(f"/routes/{'0' * 32}", headers=world.auth("pub2"))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["detail"].replace(route_id, "X") == missing.json()["detail"].replace("0" * 32, "X")
    feedback = {"used_tables": [f"{world.pub}.orders"]}
    stolen = await world.client.post(
        f"/routes/{route_id}/feedback", json=feedback, headers=world.auth("pub2")
    )
    assert stolen.status_code == 404
    # The admin reads every route; the route log keeps which key asked.
    logged = await world.client.get(f"/routes/{route_id}", headers=world.auth("admin"))
    assert logged.status_code == 200
    state = world.app.state.tablerouter
    await state.store.writer.wait_written(route_id)
    record = await state.store.routes.get(route_id)
    assert record is not None
    assert record.key_id == world.key_ids["pub"]


async def test_feedback_cannot_name_a_hidden_table(world: GrantWorld) -> None:
    mine = await world.client.post(
        "/route", json={"question": "orders of customers", "source": "sales"}, headers=world.auth("pub")
    )
    route_id = mine.json()["route_id"]
    answers = []
    for table in (f"{world.sec}.salary_ledger", f"{world.pub}.no_such_table"):
        response = await world.client.post(
            f"/routes/{route_id}/feedback", json={"used_tables": [table]}, headers=world.auth("pub")
        )
        assert response.status_code == 422
        answers.append(response.json()["detail"].replace(table, "X"))
    assert answers[0] == answers[1]
    sql = f"SELECT * FROM {world.sec}.salary_ledger"  # the same, read from SQL
    hidden = await world.client.post(
        f"/routes/{route_id}/feedback", json={"sql": sql}, headers=world.auth("pub")
    )
    assert hidden.status_code == 422
    ok = await world.client.post(
        f"/routes/{route_id}/feedback",
        json={"used_tables": [f"{world.pub}.orders"]},
        headers=world.auth("pub"),
    )
    assert ok.status_code == 201
