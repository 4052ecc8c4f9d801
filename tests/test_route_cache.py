"""Caching, the shortlist and dense similarity through the real service: PostgreSQL, simulator over HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.harness.service import service_client
from app.simulator.service import SimulatorConfig, running_simulator
from tests.fixtures.settings import SettingsBuilder
from tests.fixtures.warehouse import WarehouseBuilder

pytestmark = pytest.mark.asyncio(loop_scope="module")
N_TABLES = 90


@dataclass
class World:
    schema: str
    questions: list[dict[str, Any]]
    sim: str
    settings: SettingsBuilder


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(build_warehouse: WarehouseBuilder, make_settings: SettingsBuilder) -> AsyncIterator[World]:
    async with (
        build_warehouse(prefix="tr_cache", tables=N_TABLES, questions=8, seeds=(11, 2)) as wh,
        running_simulator(SimulatorConfig(port=0, latency_ms=20, oracle=wh.oracle)) as sim,
    ):
        settings = make_settings.extend(sim_url=sim, sources=wh.source(), chunk_tokens=800, llm_timeout=10)
        yield World(wh.schema, wh.questions, sim, settings)


async def _sim_calls(sim: str) -> int:
    async with httpx.AsyncClient(base_url=sim) as c:
        calls: int = (await c.get("/stats")).json()["calls"]
        return calls


async def test_identical_route_is_a_hit_with_no_lm_call(world: World) -> None:
    async with service_client(world.settings()) as client:
        body = {"question": world.questions[0]["question"], "top_k": 5}
        first = (await client.post("/route", json=body)).json()
        calls = await _sim_calls(world.sim)
        # Case and spacing do not make another route.
        again = {**body, "question": "  " + body["question"].upper().replace(" ", "   ")}
        second = (await client.post("/route", json=again)).json()
        assert await _sim_calls(world.sim) == calls
        assert first["stats"]["cache"] == "miss"
        assert first["stats"]["lm_calls"] == first["stats"]["chunks"] > 0
        assert second["stats"]["cache"] == "hit"
        assert second["stats"]["lm_calls"] == 0
        assert second["tables"] == first["tables"]
        assert second["route_id"] != first["route_id"]
        counters = (await client.get("/cache")).json()
        assert counters["routes"]["hits"] == 1
        assert counters["routes"]["misses"] == 1
        assert counters["routes"]["size"] == 1


async def test_other_options_miss_the_route_cache_but_hit_the_verdict_cache(world: World) -> None:
    async with service_client(world.settings()) as client:
        question = world.questions[1]["question"]
        first = (await client.post("/route", json={"question": question, "top_k": 5})).json()
        calls = await _sim_calls(world.sim)
        other = (await client.post("/route", json={"question": question, "top_k": 7})).json()
        assert other["stats"]["cache"] == "miss"
        assert other["stats"]["cached_chunks"] == first["stats"]["chunks"]
        assert other["stats"]["lm_calls"] == 0
        assert await _sim_calls(world.sim) == calls
        verdicts = (await client.get("/cache")).json()["verdicts"]
        assert verdicts["hits"] == first["stats"]["chunks"]


async def test_identical_routes_in_flight_share_one_computation(world: World) -> None:
    async with service_client(world.settings()) as client:
        before = await _sim_calls(world.sim)
        body = {"question": world.questions[2]["question"]}
        responses = await asyncio.gather(*(client.post("/route", json=body) for _ in range(5)))
        bodies = [r.json() for r in responses]
        assert all(r.status_code == 200 for r in responses)
        assert await _sim_calls(world.sim) - before == bodies[0]["stats"]["chunks"]
        assert sorted(b["stats"]["cache"] for b in bodies) == ["hit", "hit", "hit", "hit", "miss"]
        assert (await client.get("/cache")).json()["routes"]["coalesced"] == 4
        assert len({json.dumps(b["tables"]) for b in bodies}) == 1


async def test_shortlist_judges_the_best_m_and_ranks_the_rest_after(world: World) -> None:
    settings = world.settings(shortlist_size=12)
    async with service_client(settings) as client:
        q = world.questions[3]
        request = {"question": q["question"], "top_k": 40, "min_score": 0}
        body = (await client.post("/route", json=request)).json()
    stats = body["stats"]
    assert stats["tables_considered"] == N_TABLES
    assert stats["shortlisted"] == 12
    judged = [t for t in body["tables"] if t["votes_total"] > 0]
    rest = [t for t in body["tables"] if t["reason"].startswith("not shortlisted")]
    assert len({t["name"] for t in judged}) <= 12
    assert set(q["gold_tables"]) <= {t["name"] for t in judged}
    assert rest
    assert all(t["score"] == 0 for t in rest)
    names = [t["name"] for t in body["tables"]]
    assert max(names.index(t["name"]) for t in judged) < min(names.index(t["name"]) for t in rest)


async def test_dense_similarity_from_the_simulators_embeddings(world: World) -> None:
    settings = world.settings(
        shortlist_size=12, embedding_model="openai/tablerouter-embed", embedding_api_base=f"{world.sim}/v1"
    )
    async with service_client(settings) as client:
        for q in world.questions[4:6]:
            body = (await client.post("/route", json={"question": q["question"], "top_k": 10})).json()
            assert body["stats"]["shortlisted"] == 12
            assert set(q["gold_tables"]) <= {t["name"] for t in body["tables"]}


async def test_unreachable_embeddings_fall_back_to_the_lexical_shortlist(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    settings = world.settings(
        shortlist_size=12,
        embedding_model="openai/tablerouter-embed",
        embedding_api_base="http://127.0.0.1:1/v1",
    )
    async with service_client(settings) as client:
        q = world.questions[6]
        response = await client.post("/route", json={"question": q["question"]})
    assert response.status_code == 200
    assert response.json()["stats"]["shortlisted"] == 12
    assert any("dense similarity unavailable" in r.getMessage() for r in caplog.records)
