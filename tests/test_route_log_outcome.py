"""How sure and how complete a route was, kept in the route log and read back by id.

The real service on a real socket over a PostgreSQL warehouse, the oracle simulator (which
misses gold tables, so votes split) over a real socket, and a fresh store per backend. Routes
spilled to a file before the service starts, by this build and by one before it, are replayed
into the store at start-up and read back too.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from app.harness.stores import STORE_BACKENDS, fresh_store_url
from app.routing.result import RouteStats
from app.simulator.service import SimulatorConfig, running_simulator
from app.store.records import OUTCOME_KEYS, RouteOutcome
from app.store.route_log_spill import RouteLogSpill
from tests.fixtures.live_server import LiveService
from tests.fixtures.route_log import logged_route
from tests.fixtures.settings import SettingsBuilder
from tests.fixtures.warehouse import SyntheticWarehouse, WarehouseBuilder

pytestmark = pytest.mark.asyncio(loop_scope="module")
FNR = 0.25  # the oracle misses a gold table this often: a gold table's two votes often split
OUTCOME = ("coverage", "partial", *OUTCOME_KEYS)
STORE_PAGE = Path(__file__).resolve().parents[1] / "docs" / "store.md"
SQL_SAMPLE = re.compile(
    r"<!-- sample:(?P<name>route-log-[\w-]+)[^>]*-->\s*```sql\n(?P<sql>.*?)\n```", re.DOTALL
)
STATS = asdict(RouteStats(120, 3, 3, 0, 0, 900, 40, 12.5))
# A spill file's line as the build before routes kept their outcome wrote it.
OLD_SPILLED_ID = "spilled0before0outcome000000000"
OLD_SPILLED_LINE = (
    '{"route_id":"' + OLD_SPILLED_ID + '","created_at":"2026-11-30T10:00:00+00:00","source":"wh",'
    '"catalog_version":"v0","judge":"openai/tablerouter-sim","program_version":"judge-v1",'
    '"question":"orders per customer","top_k":10,"min_score":0.5,"schemas":null,"tables":[],'
    '"stats":' + json.dumps(STATS, separators=(",", ":")) + ',"key_id":null}\n'
)
SPILLED_OUTCOME = RouteOutcome(
    unjudged=["s.a"],
    unsettled=["s.b"],
    degraded=False,
    degraded_reason=None,
    budget_cut=True,
    budget_unjudged=["s.c"],
    budget_cut_reason="the route's token budget",
    catalog_stale=True,
    catalog_age_s=3600.5,
)


@dataclass(frozen=True)
class Served:
    url: str
    store_url: str
    sim: httpx.AsyncClient
    spilled_id: str  # a route this build spilled before the service started


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def warehouse(build_warehouse: WarehouseBuilder) -> AsyncIterator[SyntheticWarehouse]:
    async with build_warehouse(prefix="tr_outcome", tables=120, questions=6, seeds=(11, 13)) as built:
        yield built


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim_url(warehouse: SyntheticWarehouse) -> AsyncIterator[str]:
    config = SimulatorConfig(
        port=0, policy="oracle", oracle=warehouse.oracle, fnr=FNR, latency_ms="uniform:5:15"
    )
    async with running_simulator(config) as url:
        yield url


@pytest.fixture(scope="module")
def outcome_settings(make_settings: SettingsBuilder, warehouse: SyntheticWarehouse) -> SettingsBuilder:
    return make_settings.extend(
        sources=warehouse.source(),
        chunk_tokens=1200,
        votes=2,
        judge_fnr=FNR,
        judge_fpr=0.01,
        max_extra_votes=0,  # the split votes stay split: 'unsettled' is not empty
        llm_timeout=60,
        refresh_interval_s=0,
        route_cache_size=0,
        verdict_cache_size=0,
    )


def _spill_before_start(folder: Path) -> str:
    """A spill file holding a route of the build before this one, and one of this build; its id."""
    spill = RouteLogSpill(folder, 1 << 20)
    record = logged_route(None, datetime.now(UTC), STATS)
    record = replace(record, source="spilled", coverage=0.42, partial=True, outcome=SPILLED_OUTCOME)
    assert spill.write(record)
    spill.close()  # unlocked: the next process to start replays it
    (folder / "route-log-old-build.jsonl").write_text(OLD_SPILLED_LINE)
    return record.route_id


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=STORE_BACKENDS)
async def served(
    request: pytest.FixtureRequest,
    pg_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    outcome_settings: SettingsBuilder,
    live_server: LiveService,
    sim_url: str,
) -> AsyncIterator[Served]:
    tmp = tmp_path_factory.mktemp("outcome")
    spilled_id = _spill_before_start(tmp / "spill")
    async with (
        fresh_store_url(request.param, pg_url, tmp) as store_url,
        httpx.AsyncClient(base_url=sim_url, timeout=30) as sim,
    ):
        settings = outcome_settings(
            sim_url=sim_url, database_url=store_url, route_log_spill_dir=str(tmp / "spill")
        )
        with live_server(settings) as url:
            yield Served(url, store_url, sim, spilled_id)


async def _route(served: Served, body: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=served.url, timeout=60) as client:
        response = await client.post("/route", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _read_back(served: Served, route_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=served.url, timeout=60) as client:
        response = await client.get(f"/routes/{route_id}")
    assert response.status_code == 200, response.text
    logged: dict[str, Any] = response.json()
    return logged


async def _stored(store_url: str, route_ids: list[str]) -> dict[str, tuple[Any, ...]]:
    """Each route's coverage, partial and outcome as the store holds them."""
    engine = create_async_engine(store_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.text("SELECT route_id, coverage, partial, outcome FROM route_log WHERE route_id IN :ids")
                .bindparams(sa.bindparam("ids", expanding=True))
                .columns(outcome=sa.JSON()),
                {"ids": route_ids},
            )
            return {row[0]: tuple(row[1:]) for row in rows}
    finally:
        await engine.dispose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def answered(served: Served, warehouse: SyntheticWarehouse) -> list[dict[str, Any]]:
    """The LM judge's answers: plain, cut by a token budget, partial (a chunk hangs past the deadline)."""
    questions = [q["question"] for q in warehouse.questions]
    bodies = [await _route(served, {"question": q}) for q in questions]
    budget = bodies[0]["stats"]["estimated_tokens"] // 3
    bodies.append(await _route(served, {"question": questions[0], "token_budget": budget}))
    gold = warehouse.questions[1]["gold_tables"][0]
    await served.sim.post("/faults", json={"hang_on_tables": [gold]})
    try:
        bodies.append(await _route(served, {"question": questions[1], "deadline_ms": 1500}))
    finally:
        await served.sim.post("/faults", json={})
    return bodies


async def test_a_route_reads_back_as_sure_and_as_complete_as_it_was_answered(
    served: Served, answered: list[dict[str, Any]]
) -> None:
    for body in answered:
        logged = await _read_back(served, body["route_id"])
        assert {k: logged[k] for k in OUTCOME} == {k: body[k] for k in OUTCOME}
    # The answers showed what the log must keep: split votes, a budget's cut, a deadline's.
    assert all(b["coverage"] is not None for b in answered)
    assert any(b["unsettled"] for b in answered)
    assert any(b["budget_cut"] and b["budget_unjudged"] for b in answered)
    assert any(b["partial"] and b["unjudged"] for b in answered)
    stored = await _stored(served.store_url, [b["route_id"] for b in answered])
    for body in answered:
        coverage, partial, outcome = stored[body["route_id"]]
        assert (coverage, partial) == (body["coverage"], body["partial"])
        assert outcome == {k: body[k] for k in OUTCOME_KEYS}


async def _documented(store_url: str, name: str) -> list[dict[str, Any]]:
    """The rows docs/store.md's SQL sample ``name`` gives on the store at ``store_url``."""
    samples = {m["name"]: m["sql"] for m in SQL_SAMPLE.finditer(STORE_PAGE.read_text(encoding="utf-8"))}
    assert name in samples, f"docs/store.md has no {name} sample"
    engine = create_async_engine(store_url)
    try:
        async with engine.connect() as conn:
            return [dict(row) for row in (await conn.execute(sa.text(samples[name]))).mappings()]
    finally:
        await engine.dispose()


async def test_the_documented_queries_find_the_unsure_and_the_partial_routes(
    served: Served, answered: list[dict[str, Any]]
) -> None:
    if not served.store_url.startswith("postgresql"):
        pytest.skip("docs/store.md's queries are PostgreSQL's")
    found = await _documented(served.store_url, "route-log-sql")
    unsure = {b["route_id"]: b for b in answered if b["coverage"] < 0.9}
    assert unsure, "no answer had coverage under 0.9: the query shows nothing"
    # The route this build spilled (coverage 0.42) was replayed at start-up: it is the day's too.
    assert {row["route_id"] for row in found} == {*unsure, served.spilled_id}
    for row in found:
        if row["route_id"] in unsure:
            body = unsure[row["route_id"]]
            assert (row["coverage"], row["partial"]) == (body["coverage"], body["partial"])
            assert row["unsettled"] == body["unsettled"]
    assert [row["coverage"] for row in found] == sorted(row["coverage"] for row in found)
    # Per source: the LM routes' partial ones and budget cuts (a lexical route, if one ran, has none).
    day = {row["source"]: row for row in await _documented(served.store_url, "route-log-sql-summary")}
    assert day["wh"]["partial"] == sum(b["partial"] for b in answered)
    assert day["wh"]["budget_cut"] == sum(b["budget_cut"] for b in answered)
    assert day["wh"]["degraded"] == 0
    assert (day["spilled"]["routes"], day["spilled"]["partial"], day["spilled"]["budget_cut"]) == (1, 1, 1)


async def test_a_lexical_route_logs_no_coverage(
    served: Served, outcome_settings: SettingsBuilder, live_server: LiveService
) -> None:
    settings = outcome_settings(database_url=served.store_url, llm_model=None, route_log_spill_dir="")
    with live_server(settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            body = (await client.post("/route", json={"question": "orders per customer"})).json()
            logged = (await client.get(f"/routes/{body['route_id']}")).json()
    assert body["judge"] == logged["judge"] == "lexical"
    assert body["coverage"] is None
    assert {k: logged[k] for k in OUTCOME} == {k: body[k] for k in OUTCOME}
    stored = await _stored(served.store_url, [body["route_id"]])
    # Known and false, not unknown: only a route logged before keeps null here.
    assert stored[body["route_id"]][:2] == (None, False)


async def test_spilled_routes_of_this_build_and_the_one_before_replay_with_their_outcome(
    served: Served,
) -> None:
    spilled = await _read_back(served, served.spilled_id)
    assert (spilled["coverage"], spilled["partial"]) == (0.42, True)
    assert {k: spilled[k] for k in OUTCOME_KEYS} == SPILLED_OUTCOME
    before = await _read_back(served, OLD_SPILLED_ID)
    assert before["question"] == "orders per customer"
    assert {k: before[k] for k in OUTCOME} == dict.fromkeys(OUTCOME)  # not known: null, not a guess
    assert json.loads(OLD_SPILLED_LINE).keys().isdisjoint(OUTCOME)
