"""Reliability of POST /route over real HTTP: faults, deadlines, breaker, back-pressure, disconnects.

A 120-table PostgreSQL warehouse; the LM simulator over a real socket injects the faults.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.harness.service import app_state, running_service, service_app_client, service_client
from app.routing.retrieval.shortlist import shortlist
from app.simulator.service import FaultRates, SimulatorConfig, running_simulator
from tests.fixtures.settings import SettingsBuilder
from tests.fixtures.warehouse import SyntheticWarehouse, WarehouseBuilder

pytestmark = pytest.mark.asyncio(loop_scope="module")
N_TABLES = 120


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def warehouse(build_warehouse: WarehouseBuilder) -> AsyncIterator[SyntheticWarehouse]:
    async with build_warehouse(prefix="tr_rel", tables=N_TABLES, questions=6, seeds=(11, 2)) as built:
        yield built


@pytest.fixture(scope="module")
def route_settings(make_settings: SettingsBuilder, warehouse: SyntheticWarehouse) -> SettingsBuilder:
    return make_settings.extend(
        sources=warehouse.source(),
        chunk_tokens=1200,
        votes=2,
        llm_max_concurrency=8,
        llm_timeout=10,
        # Tests look at one route at a time: the budget's floor, not its share, must allow retries.
        retry_budget_min=1000,
        retry_backoff_ms=5,
        retry_max_attempts=5,
        # Each test watches the LM calls of its own routes: nothing may come from a cache.
        route_cache_size=0,
        verdict_cache_size=0,
    )


@asynccontextmanager
async def simulator(**faults: Any) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    config = SimulatorConfig(port=0, latency_ms="uniform:5:15", faults=FaultRates(**faults))
    async with running_simulator(config) as url, httpx.AsyncClient(base_url=url) as client:
        yield url, client


async def eventually(check: Callable[[], Awaitable[bool]], tries: int = 200) -> bool:
    """Whether ``check`` comes true within ``tries`` polls (for counters other tasks update)."""
    for _ in range(tries):
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


def assert_every_fault_retried_or_failed(
    body: dict[str, Any], sim_stats: dict[str, Any], exact: bool = True
) -> None:
    """Each faulted call was either retried or ended its chunk as failed.

    ``exact``: and nothing else failed (not so with a short LLM_TIMEOUT on a busy machine).
    """
    stats = body["stats"]
    faulted = sum(n for kind, n in sim_stats["faults"].items() if kind != "invented")
    if exact:
        assert faulted == stats["retries"] + stats["failed_chunks"]
    else:
        assert faulted <= stats["retries"] + stats["failed_chunks"]
    assert stats["lm_calls"] == stats["chunks"] + stats["retries"] + stats["hedges"]
    assert body["partial"] == bool(body["unjudged"])


@dataclass
class Shared:
    sim: httpx.AsyncClient
    client: httpx.AsyncClient


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(warehouse: SyntheticWarehouse, route_settings: SettingsBuilder) -> AsyncIterator[Shared]:
    """One simulator and one service for the single-fault tests, faults set per test."""
    async with simulator() as (url, sim):
        # Ten attempts: a chunk still failing at a 0.25 fault rate is a one-in-a-million event.
        # One vote per table and small chunks: every faulted chunk must be asked again (no other
        # chunk judges its tables), and ~30 calls leave no fault at 0.25 once in ~5,000 routes;
        # with two votes the coverage rule could skip every retry, and the test failed now and then.
        settings = route_settings(
            sim_url=url,
            llm_timeout=2,
            retry_max_attempts=10,
            votes=1,
            chunk_tokens=300,
            retry_budget_min=100,
        )
        async with service_client(settings) as client:
            yield Shared(sim, client)


async def _route_under(shared: Shared, question: str, **faults: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """One route with these faults in force; its body and the simulator's counters of it."""
    assert (await shared.sim.post("/faults", json=faults)).status_code == 200
    await shared.sim.post("/stats/reset")
    response = await shared.client.post("/route", json={"question": question, "min_score": 0, "top_k": 500})
    assert response.status_code == 200
    await shared.sim.post("/faults", json={})
    return response.json(), (await shared.sim.get("/stats")).json()


# Rates high enough that some call of a route's ~30 surely faults.
@pytest.mark.parametrize("fault", ["rate_limit", "server_error", "reset", "hang", "truncated", "malformed"])
async def test_each_fault_alone_is_retried(shared: Shared, warehouse: SyntheticWarehouse, fault: str) -> None:
    faults = {fault: 0.25, "retry_after_s": 0.02, "hang_s": 30}
    body, sim_stats = await _route_under(shared, warehouse.questions[0]["question"], **faults)
    assert body["degraded"] is False
    assert body["judge"] == "openai/tablerouter-sim"
    assert body["stats"]["retries"] > 0
    assert sim_stats["faults"][fault] > 0
    # A hang is a timeout on our side; on a busy machine a slow healthy call can time out too.
    assert_every_fault_retried_or_failed(body, sim_stats, exact=fault != "hang")
    if fault in ("truncated", "malformed"):
        return  # a parse failure is retried once only: a chunk may still fail
    # Every faulted chunk was asked again until it answered: every table has a verdict.
    assert body["stats"]["chunks"] >= 25
    assert body["partial"] is False
    assert body["unjudged"] == []
    assert len(body["tables"]) == N_TABLES


async def test_a_failed_chunk_is_not_asked_again_when_other_chunks_judged_its_tables(
    warehouse: SyntheticWarehouse,
    route_settings: SettingsBuilder,
) -> None:
    async with simulator() as (url, sim):
        settings = route_settings(sim_url=url, llm_timeout=1.0)
        async with service_app_client(settings) as (app, client):
            prepared = app_state(app).registry.sources["wh"].prepared
            assert prepared is not None
            table = prepared.chunks[0].names[0]
            holders = [c for c in prepared.chunks if table in c.names]
            assert len(holders) == 2  # VOTES=2
            # Both chunks holding the table hang on their first call and time out after 1 s. One
            # must be asked again (or the table has no verdict); the other then need not be:
            # its other tables were judged by the chunks they share.
            await sim.post("/faults", json={"hang_once_on_tables": [table], "hang_s": 30})
            q = warehouse.questions[0]["question"]
            skipped_before = await _retries_skipped(client)
            body = (await client.post("/route", json={"question": q, "min_score": 0, "top_k": 500})).json()
            skipped = await _retries_skipped(client) - skipped_before
    stats = body["stats"]
    assert stats["retries"] == 1
    assert stats["failed_chunks"] == 1
    assert stats["lm_calls"] == stats["chunks"] + 1
    assert body["partial"] is False
    assert table in [t["name"] for t in body["tables"]]
    assert len(body["tables"]) == N_TABLES
    assert skipped == 1


async def _retries_skipped(client: httpx.AsyncClient) -> float:
    """The process's count of retries given up because other chunks judged the tables."""
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith("tablerouter_lm_retries_skipped_total "):
            return float(line.split()[1])
    raise AssertionError("tablerouter_lm_retries_skipped_total is not exposed")


async def test_invented_names_are_dropped_and_counted(shared: Shared, warehouse: SyntheticWarehouse) -> None:
    body, _ = await _route_under(shared, warehouse.questions[0]["question"], invented=1.0)
    stats = body["stats"]
    assert stats["dropped_names"] == 2 * stats["chunks"]
    assert stats["retries"] == 0
    assert not any("ghost_table" in t["name"] for t in body["tables"])
    assert body["partial"] is False


async def test_mixed_faults_still_answer_every_route(
    warehouse: SyntheticWarehouse, route_settings: SettingsBuilder
) -> None:
    faults = {
        "rate_limit": 0.1,
        "server_error": 0.05,
        "reset": 0.05,
        "hang": 0.03,
        "truncated": 0.03,
        "invented": 0.05,
        "retry_after_s": 0.02,
    }
    async with simulator(**faults) as (url, sim):
        async with service_client(route_settings(sim_url=url, llm_timeout=0.5)) as client:
            questions = [q["question"] for q in warehouse.questions]
            responses = await asyncio.gather(
                *(client.post("/route", json={"question": q}) for q in questions)
            )
        sim_stats = (await sim.get("/stats")).json()
    assert [r.status_code for r in responses] == [200] * len(questions)
    bodies = [r.json() for r in responses]
    assert not any(b["degraded"] for b in bodies)
    assert sum(b["stats"]["retries"] for b in bodies) > 0
    assert len(sim_stats["faults"]) >= 4
    # A call can fail before it reaches the simulator (a timeout while connecting), never after.
    assert 0 < sim_stats["calls"] <= sum(b["stats"]["lm_calls"] for b in bodies)


async def test_deadline_answers_partial_with_the_unjudged_tables(
    warehouse: SyntheticWarehouse, route_settings: SettingsBuilder
) -> None:
    async with simulator() as (url, sim):
        settings = route_settings(sim_url=url, llm_timeout=60, route_deadline_ms=20_000)
        async with service_app_client(settings) as (app, client):
            state = app_state(app)
            prepared = state.registry.sources["wh"].prepared
            assert prepared is not None
            slow = prepared.chunks[0].names[0]
            holding = [c for c in prepared.chunks if slow in c.names]
            expected = set.intersection(*(set(c.names) for c in holding))
            await sim.post("/faults", json={"hang_on_tables": [slow]})
            q = warehouse.questions[0]["question"]
            body = (
                await client.post("/route", json={"question": q, "deadline_ms": 1500, "min_score": 0})
            ).json()
            # Every chunk task is gone and every limiter slot is free when the answer is out.
            assert [t for t in asyncio.all_tasks() if t.get_name().startswith("tablerouter-chunk")] == []
            assert state.backend is not None
            assert (state.backend.limiter.in_flight, state.backend.limiter.waiting) == (0, 0)
            prior = shortlist(prepared, prepared.full, q, state.settings.shortlist_size, None).prior
        assert await eventually(lambda: _sim_idle(sim))
    assert body["partial"] is True
    assert body["degraded"] is False
    assert set(body["unjudged"]) == expected
    assert body["unjudged"] == sorted(expected, key=lambda n: (-prior.get(n, 0.0), n))
    assert not set(body["unjudged"]) & {t["name"] for t in body["tables"] if not t["via_fk"]}
    # A hung call is cut by the deadline either way: as an unfinished chunk when the route's
    # wait ends first, or as a failed one when its own min(LLM_TIMEOUT, time left) runs out first.
    stats = body["stats"]
    assert stats["unfinished_chunks"] + stats["failed_chunks"] == len(holding)
    assert body["stats"]["deadline_ms"] == 1500


async def _sim_idle(sim: httpx.AsyncClient) -> bool:
    return bool((await sim.get("/stats")).json()["in_flight"] == 0)


async def test_request_deadline_is_capped_by_the_setting(
    warehouse: SyntheticWarehouse, route_settings: SettingsBuilder
) -> None:
    async with (
        simulator() as (url, _),
        service_client(route_settings(sim_url=url, route_deadline_ms=4000)) as client,
    ):
        q = warehouse.questions[0]["question"]
        capped = (await client.post("/route", json={"question": q, "deadline_ms": 60_000})).json()
        default = (await client.post("/route", json={"question": q})).json()
        bad = await client.post("/route", json={"question": q, "deadline_ms": 0})
    assert capped["stats"]["deadline_ms"] == default["stats"]["deadline_ms"] == 4000
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"


async def test_breaker_opens_falls_back_and_recovers(
    warehouse: SyntheticWarehouse, route_settings: SettingsBuilder
) -> None:
    async with simulator(server_error=1.0) as (url, sim):
        settings = route_settings(
            sim_url=url, breaker_failures=5, breaker_cooldown_s=1.0, retry_max_attempts=1
        )
        async with service_app_client(settings) as (app, client):
            q = warehouse.questions[0]
            first = (await client.post("/route", json={"question": q["question"], "top_k": 20})).json()
            assert first["degraded"] is True
            assert first["judge"] == "lexical"
            await sim.post("/stats/reset")
            second = (await client.post("/route", json={"question": q["question"], "top_k": 20})).json()
            assert second["degraded"] is True
            # Open: no call at all; or, on a machine slow enough that the cooldown passed, one
            # probe that failed and reopened the breaker before any other call went out.
            assert second["stats"]["lm_calls"] == (await sim.get("/stats")).json()["calls"] <= 1
            if second["stats"]["lm_calls"] == 0:
                assert second["degraded_reason"] == "the LM backend's circuit breaker is open"
            assert set(q["gold_tables"]) & {t["name"] for t in second["tables"]}

            await sim.post("/faults", json={})  # the backend recovers

            async def healthy() -> bool:
                r = await client.post("/route", json={"question": q["question"]})
                return r.status_code == 200 and r.json()["degraded"] is False

            assert await eventually(healthy)
            backend = app_state(app).backend
            assert backend is not None
            assert backend.reliability.breaker.state == "closed"
            assert backend.reliability.breaker.times_opened >= 1


async def test_back_pressure_refuses_past_the_route_queue_with_retry_after(
    warehouse: SyntheticWarehouse, route_settings: SettingsBuilder
) -> None:
    async with simulator(hang=1.0, hang_s=30) as (url, sim):
        settings = route_settings(sim_url=url, route_queue_limit=1, llm_timeout=60)
        async with service_client(settings) as client:
            q = warehouse.questions[0]["question"]
            waiting = asyncio.create_task(client.post("/route", json={"question": q, "deadline_ms": 3000}))
            assert await eventually(lambda: _sim_busy(sim))
            refused = await client.post("/route", json={"question": q})
            first = await waiting
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) >= 1
    problem = refused.json()
    assert problem["status"] == 429
    assert problem["retry_after"] == int(refused.headers["retry-after"])
    assert "ROUTE_QUEUE_LIMIT" in problem["detail"]
    assert first.status_code == 200
    assert first.json()["degraded"] is True  # nothing answered before its deadline


async def _sim_busy(sim: httpx.AsyncClient) -> bool:
    return bool((await sim.get("/stats")).json()["in_flight"] > 0)


async def test_hedging_rescues_hung_calls(
    warehouse: SyntheticWarehouse, route_settings: SettingsBuilder
) -> None:
    async with simulator() as (url, sim):
        settings = route_settings(
            sim_url=url, hedging=True, hedge_budget_ratio=1.0, llm_max_concurrency=64, llm_timeout=60
        )
        async with service_client(settings) as client:
            question = warehouse.questions[0]
            gold = question["gold_tables"][0]
            await client.post("/route", json={"question": "warm up: learn the usual latency"})
            # The first call of every chunk holding the gold table hangs; a second call of the same
            # prompt (the hedge) answers. Deterministic, unlike a hang rate.
            await sim.post("/faults", json={"hang_once_on_tables": [gold], "hang_s": 60})
            body = (
                await client.post("/route", json={"question": question["question"], "deadline_ms": 10_000})
            ).json()
            hangs = (await sim.get("/stats")).json()["faults"].get("hang", 0)
        assert await eventually(lambda: _sim_idle(sim))  # the hung losers were cancelled
    stats = body["stats"]
    assert hangs >= 1
    assert stats["hedges"] >= hangs  # every hung call was hedged (others may be, at p95)
    assert stats["unfinished_chunks"] == 0
    assert body["partial"] is False
    assert body["unjudged"] == []
    assert gold in [t["name"] for t in body["tables"]]
    assert stats["retries"] == 0
    assert stats["lm_calls"] == stats["chunks"] + stats["hedges"]


async def test_a_client_that_disconnects_cancels_its_lm_calls(
    warehouse: SyntheticWarehouse, route_settings: SettingsBuilder
) -> None:
    async with simulator(hang=1.0, hang_s=120) as (url, sim):
        settings = route_settings(sim_url=url, llm_timeout=120, route_deadline_ms=120_000)
        async with running_service(settings) as (service_url, app), httpx.AsyncClient() as client:
            q = warehouse.questions[0]["question"]
            request = asyncio.create_task(client.post(f"{service_url}/route", json={"question": q}))
            assert await eventually(lambda: _sim_busy(sim))
            request.cancel()  # the client goes away: httpx closes the connection
            await asyncio.gather(request, return_exceptions=True)
            assert await eventually(lambda: _sim_idle(sim))
            backend = app_state(app).backend
            assert backend is not None
            assert await eventually(lambda: _limiter_idle(backend.limiter))


async def _limiter_idle(limiter: Any) -> bool:
    return bool(limiter.in_flight == 0 and limiter.waiting == 0)
