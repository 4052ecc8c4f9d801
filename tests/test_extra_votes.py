"""Extra votes for unsettled tables, end to end: a PostgreSQL warehouse, the oracle over a real socket.

The oracle errs per (question, table, chunk), so a gold table it splits in the first round
meets new neighbours in an extra round and is judged afresh.
"""

from __future__ import annotations

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
N_TABLES = 120
# The simulator misses a gold table this often and never picks a wrong one, and the service is
# told so: a split is then always a gold table's.
FNR = 0.25


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def warehouse(build_warehouse: WarehouseBuilder) -> AsyncIterator[SyntheticWarehouse]:
    async with build_warehouse(prefix="tr_extra", tables=N_TABLES, questions=16, seeds=(11, 13)) as built:
        yield built


@pytest.fixture(scope="module")
def extra_settings(make_settings: SettingsBuilder, warehouse: SyntheticWarehouse) -> SettingsBuilder:
    return make_settings.extend(
        sources=warehouse.source(),
        chunk_tokens=1200,
        votes=2,
        judge_fnr=FNR,
        judge_fpr=0.01,
        llm_timeout=10,
        route_cache_size=0,
        verdict_cache_size=0,
    )


async def _routes(settings: Any, questions: list[str]) -> list[dict[str, Any]]:
    async with service_client(settings) as client:
        bodies = []
        for question in questions:
            response = await client.post("/route", json={"question": question, "top_k": 40, "min_score": 0})
            assert response.status_code == 200, response.text
            bodies.append(response.json())
        return bodies


async def test_a_split_gold_table_is_settled_by_extra_votes(
    warehouse: SyntheticWarehouse, extra_settings: SettingsBuilder
) -> None:
    questions = [q["question"] for q in warehouse.questions]
    config = SimulatorConfig(port=0, policy="oracle", oracle=warehouse.oracle, fnr=FNR)
    async with running_simulator(config) as url:
        # The same seed plans the same first round: with extra votes off, it is all there is.
        first_only = await _routes(extra_settings(sim_url=url, max_extra_votes=0), questions)
        settled = await _routes(extra_settings(sim_url=url), questions)
    split_then: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = []
    for q, before, after in zip(warehouse.questions, first_only, settled, strict=True):
        assert before["stats"]["extra_lm_calls"] == 0
        was = {t["name"]: t for t in before["tables"]}
        now = {t["name"]: t for t in after["tables"]}
        for gold in q["gold_tables"]:
            if was[gold]["votes_total"] == 2 and was[gold]["votes_for"] == 1:
                assert gold in before["unsettled"]
                split_then.append((was[gold], now[gold], after))
    assert split_then, "the oracle split no gold table's first two votes"
    for _, now_t, after in split_then:
        # Asked again, in extra rounds the stats count (their calls are LM calls of the route too).
        assert now_t["votes_total"] > 2
        stats = after["stats"]
        assert 0 < stats["extra_lm_calls"] <= stats["lm_calls"]
        assert stats["extra_rounds"] >= 1
        assert stats["extra_votes"] >= now_t["votes_total"] - 2
        lead = 2 * now_t["votes_for"] - now_t["votes_total"]
        assert (now_t["name"] in after["unsettled"]) == (abs(lead) < 2)
    # Settled as needed: two votes ahead, and scored higher than the split left it.
    won = [
        (was_t, now_t) for was_t, now_t, _ in split_then if 2 * now_t["votes_for"] - now_t["votes_total"] >= 2
    ]
    assert won
    assert all(now_t["score"] > max(0.5, was_t["score"]) for was_t, now_t in won), won


async def test_unanimous_tables_get_no_extra_call(
    warehouse: SyntheticWarehouse, extra_settings: SettingsBuilder
) -> None:
    config = SimulatorConfig(port=0, policy="oracle", oracle=warehouse.oracle)
    questions = [q["question"] for q in warehouse.questions[:4]]
    async with running_simulator(config) as url, httpx.AsyncClient(base_url=url) as sim:
        bodies = await _routes(extra_settings(sim_url=url), questions)
        calls = (await sim.get("/stats")).json()["calls"]
    for body in bodies:
        stats = body["stats"]
        assert (stats["extra_rounds"], stats["extra_lm_calls"], stats["extra_votes"]) == (0, 0, 0)
        assert body["unsettled"] == []
        assert all(t["votes_for"] in {0, t["votes_total"]} for t in body["tables"])
    assert calls == sum(b["stats"]["chunks"] for b in bodies)
