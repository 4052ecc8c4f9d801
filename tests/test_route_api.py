"""POST /route end to end: a 240-table PostgreSQL warehouse, the LM simulator over a real socket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.harness.service import service_client
from app.simulator.service import SimulatorConfig, running_simulator
from tests.fixtures.settings import SettingsBuilder
from tests.fixtures.warehouse import SyntheticWarehouse, WarehouseBuilder

pytestmark = pytest.mark.asyncio(loop_scope="module")
N_TABLES = 240
MAX_CONCURRENCY = 6


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def warehouse(build_warehouse: WarehouseBuilder) -> AsyncIterator[SyntheticWarehouse]:
    async with build_warehouse(prefix="tr_route", tables=N_TABLES, questions=12, seeds=(3, 5)) as built:
        yield built


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim_url(warehouse: SyntheticWarehouse) -> AsyncIterator[str]:
    config = SimulatorConfig(port=0, latency_ms="uniform:20:40", oracle=warehouse.oracle, policy="oracle")
    async with running_simulator(config) as url:
        yield url


@pytest.fixture(scope="module")
def route_settings(make_settings: SettingsBuilder, warehouse: SyntheticWarehouse) -> SettingsBuilder:
    return make_settings.extend(
        sources=warehouse.source(),
        chunk_tokens=1200,
        votes=2,
        llm_max_concurrency=MAX_CONCURRENCY,
        llm_timeout=10,
        # These tests count LM calls per route; the caches have tests of their own.
        route_cache_size=0,
        verdict_cache_size=0,
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(route_settings: SettingsBuilder, sim_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = route_settings(sim_url=sim_url)
    async with service_client(settings) as c:
        yield c


async def test_routes_find_the_gold_tables(client: httpx.AsyncClient, warehouse: SyntheticWarehouse) -> None:
    for q in warehouse.questions:
        response = await client.post("/route", json={"question": q["question"], "top_k": 10})
        assert response.status_code == 200, response.text
        body = response.json()
        names = [t["name"] for t in body["tables"]]
        assert set(q["gold_tables"]) <= set(names), (q, names)
        judged = [t for t in body["tables"] if not t["via_fk"]]
        assert all(t["votes_total"] == 2 and t["votes_for"] == 2 and t["score"] >= 0.5 for t in judged)
        assert body["judge"] == "openai/tablerouter-sim"
        assert body["source"] == "wh"
        stats = body["stats"]
        assert stats["tables_considered"] == N_TABLES
        assert stats["chunks"] > MAX_CONCURRENCY
        assert stats["lm_calls"] == stats["chunks"]
        assert stats["failed_chunks"] == 0
        assert stats["prompt_tokens"] > 0
        assert stats["completion_tokens"] > 0


async def test_fk_join_path_tables_are_marked(
    client: httpx.AsyncClient, warehouse: SyntheticWarehouse, route_settings: SettingsBuilder
) -> None:
    # Two tables two FK hops apart: the table between them must come back, marked via_fk.
    tables = (await client.get("/sources/wh/tables", params={"limit": 1000})).json()["tables"]
    refs = {t["name"]: {fk["ref_table"] for fk in t["foreign_keys"]} for t in tables}
    a, b = next(
        (a, b)
        for a in sorted(refs)
        for mid in sorted(refs[a])
        for b in sorted(refs.get(mid, ()))
        if b != a and b not in refs[a] and a not in refs.get(b, set())
    )
    question = f"compare {a.split('.')[1].replace('_', ' ')} with {b.split('.')[1].replace('_', ' ')}"
    oracle_line = json.dumps({"question": question, "gold_tables": [a, b]})
    with warehouse.oracle.open("a") as f:
        f.write("\n" + oracle_line)
    # The simulator read its oracle at start: use a fresh one for this question.
    config = SimulatorConfig(port=0, oracle=warehouse.oracle, policy="oracle")
    async with running_simulator(config) as url:
        settings = route_settings(sim_url=url)
        async with service_client(settings) as own:
            body = (await own.post("/route", json={"question": question, "top_k": 20})).json()
    by_name = {t["name"]: t for t in body["tables"]}
    assert {a, b} <= set(by_name)
    path = [t for t in body["tables"] if t["via_fk"]]
    assert len(path) == 1, body["tables"]
    (joiner,) = path
    for end in (a, b):
        assert end in refs[joiner["name"]] or joiner["name"] in refs[end]
    assert joiner["score"] < min(by_name[a]["score"], by_name[b]["score"])
    assert joiner["reason"].startswith("joins ")


async def test_fan_out_is_concurrent_and_bounded_across_requests(
    client: httpx.AsyncClient, warehouse: SyntheticWarehouse, sim_url: str
) -> None:
    async with httpx.AsyncClient(base_url=sim_url) as sim:
        await sim.post("/stats/reset")
        questions = [q["question"] for q in warehouse.questions[:4]]
        responses = await asyncio.gather(*(client.post("/route", json={"question": q}) for q in questions))
        assert all(r.status_code == 200 for r in responses)
        stats = (await sim.get("/stats")).json()
    chunks = sum(r.json()["stats"]["chunks"] for r in responses)
    assert stats["calls"] == chunks
    assert 1 < stats["max_in_flight"] <= MAX_CONCURRENCY


async def test_schemas_filter_and_unknown_schema(
    client: httpx.AsyncClient, warehouse: SyntheticWarehouse
) -> None:
    q = warehouse.questions[0]["question"]
    ok = await client.post("/route", json={"question": q, "schemas": [warehouse.schema]})
    assert ok.status_code == 200
    bad = await client.post("/route", json={"question": q, "schemas": ["nope"]})
    assert bad.status_code == 422
    assert "nope" in bad.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"question": ""}, 422, "question"),
        ({"question": "   \n\t "}, 422, "blank"),
        ({"question": "x" * 4001}, 422, "4000"),
        ({"question": "orders", "source": "nope"}, 404, "unknown source"),
        ({"question": "orders", "top_k": 0}, 422, "top_k"),
        ({"question": "orders", "top_k": 501}, 422, "top_k"),
        ({"question": 42}, 422, "question"),
        ({"question": "orders", "top_k": "ten"}, 422, "top_k"),
        ({"question": ["a"]}, 422, "question"),
        ({"question": "orders", "surprise": 1}, 422, "surprise"),
        ([1, 2], 422, "body"),
    ],
)
async def test_bad_route_input_is_a_problem(
    client: httpx.AsyncClient, body: Any, status: int, needle: str
) -> None:
    response = await client.post("/route", json=body)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    assert problem["type"].startswith("https://")
    assert needle in problem["detail"]


async def test_body_that_is_not_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/route", content=b"{question: nope", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert "not valid JSON" in response.json()["detail"]


async def test_body_of_another_media_type_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post("/route", content=b"question=orders", headers={"content-type": "text/plain"})
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert "application/json" in response.json()["detail"]


async def test_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    big = json.dumps({"question": "x" * 200_000})
    response = await client.post("/route", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x" * 4096

    streamed = await client.post("/route", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413


async def test_unknown_path_and_method_are_problems(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    wrong = await client.get("/route")
    assert wrong.status_code == 405
    assert wrong.json()["status"] == 405


async def test_source_browsing_and_refresh(client: httpx.AsyncClient) -> None:
    sources = (await client.get("/sources")).json()["sources"]
    assert [(s["name"], s["dialect"], s["tables"]) for s in sources] == [("wh", "postgresql", N_TABLES)]
    page = (await client.get("/sources/wh/tables", params={"offset": 5, "limit": 7})).json()
    assert page["total"] == N_TABLES
    assert len(page["tables"]) == 7
    assert all(t["columns"] and t["primary_key"] == ["id"] for t in page["tables"])
    refreshed = (await client.post("/sources/wh/refresh")).json()
    assert refreshed["catalog_version"] == sources[0]["catalog_version"]
    assert refreshed["last_error"] is None
    assert (await client.get("/sources/nope/tables")).status_code == 404
    assert (await client.get("/healthz")).json()["status"] == "ok"
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["sources"] == {"wh": True}


async def test_unreachable_lm_answers_lexically_degraded_not_a_5xx(
    warehouse: SyntheticWarehouse, route_settings: SettingsBuilder
) -> None:
    settings = route_settings(sim_url="http://127.0.0.1:1")
    q = warehouse.questions[0]
    async with service_client(settings) as c:
        response = await c.post("/route", json={"question": q["question"], "top_k": 20})
    assert response.status_code == 200
    body = response.json()
    assert body["degraded"] is True
    assert body["judge"] == "lexical"
    assert body["degraded_reason"].startswith("every LM call failed")
    assert "connect" in body["degraded_reason"]
    assert body["partial"] is False
    assert body["unjudged"] == []
    assert body["stats"]["failed_chunks"] == body["stats"]["chunks"] > 0
    assert set(q["gold_tables"]) & {t["name"] for t in body["tables"]}


async def test_hanging_lm_times_out_into_a_degraded_answer(
    warehouse: SyntheticWarehouse, route_settings: SettingsBuilder
) -> None:
    async with running_simulator(SimulatorConfig(port=0, latency_ms=30_000)) as url:
        settings = route_settings(sim_url=url, llm_timeout=0.3)
        async with service_client(settings) as c:
            response = await c.post("/route", json={"question": warehouse.questions[0]["question"]})
    assert response.status_code == 200
    body = response.json()
    assert body["degraded"] is True
    assert body["judge"] == "lexical"
    assert "timed out" in body["degraded_reason"]


async def test_without_an_lm_the_lexical_judge_routes(
    warehouse: SyntheticWarehouse, route_settings: SettingsBuilder
) -> None:
    async with service_client(route_settings()) as c:
        q = warehouse.questions[0]
        body = (await c.post("/route", json={"question": q["question"], "top_k": 20})).json()
    assert body["judge"] == "lexical"
    assert body["stats"]["lm_calls"] == 0
    assert set(q["gold_tables"]) & {t["name"] for t in body["tables"]}
