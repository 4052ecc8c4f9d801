"""A key's daily token budget holds whatever the request mix: concurrent single routes, a batch
and streams at once, on one instance and on two sharing Redis.

The LM is the simulator over a real socket, with enough latency that the routes overlap; its
own counters say what the LM was asked to spend, whatever the service reports. A key whose
budget covers four routes sends fourteen at once: the LM spends at most 1.05 x the budget,
most of it is used, the routes that found the day held by others were cut (``budget_cut``,
with the reason) or refused with the token budget's 429, and every token the LM counted is in
an answer's stats.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.harness.service import service_app_client
from app.simulator.service import SimulatorConfig, running_simulator
from tests.fixtures.auth import ADMIN_KEY, make_key
from tests.fixtures.replicas import REDIS_URL
from tests.fixtures.settings import SettingsBuilder

pytestmark = pytest.mark.asyncio(loop_scope="module")
QUESTIONS = [
    "Which customers placed the most orders?",
    "Total revenue per product category last month",
    "Which suppliers ship the products that were returned most?",
]
SINGLES, BATCH, STREAMS = 4, 6, 4
ROUTES_OF_BUDGET = 4


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim() -> AsyncIterator[httpx.AsyncClient]:
    # 30-60 ms a call: a route's four chunks overlap with the other routes'.
    async with (
        running_simulator(SimulatorConfig(port=0, latency_ms="uniform:30:60")) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        yield client


def _body(i: int) -> dict[str, Any]:
    return {"question": QUESTIONS[i % len(QUESTIONS)]}


def _answer(response: httpx.Response) -> dict[str, Any] | None:
    """A route's answer (JSON or the stream's result event); None when refused for the budget."""
    if response.status_code == 429:
        assert response.json()["type"].endswith("/token-budget-spent"), response.text
        return None
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("text/event-stream"):
        events = response.text.split("\n\n")
        results = [e for e in events if e.startswith("event: result")]
        if not results:
            (error,) = [e for e in events if e.startswith("event: error")]
            problem = json.loads(error.split("data: ", 1)[1])
            assert problem["type"].endswith("/token-budget-spent"), problem
            return None
        return dict(json.loads(results[0].split("data: ", 1)[1]))
    return dict(response.json())


async def _mix(clients: list[httpx.AsyncClient], headers: dict[str, str]) -> list[dict[str, Any] | None]:
    """Singles, a batch and streams of one key at once, spread over ``clients``; their answers."""
    sse = {**headers, "Accept": "text/event-stream"}
    calls = [clients[i % len(clients)].post("/route", json=_body(i), headers=headers) for i in range(SINGLES)]
    calls += [
        clients[(i + 1) % len(clients)].post("/route", json=_body(i), headers=sse) for i in range(STREAMS)
    ]
    batch = clients[0].post(
        "/route/batch", json={"requests": [_body(i) for i in range(BATCH)]}, headers=headers
    )
    *responses, batched = await asyncio.gather(*calls, batch)
    answers = [_answer(r) for r in responses]
    assert batched.status_code == 200, batched.text
    for item in batched.json()["results"]:
        if item["error"] is not None:
            assert item["error"]["status"] == 429
            assert item["error"]["type"].endswith("/token-budget-spent")
        answers.append(item["result"])
    return answers


async def _check_mix(clients: list[httpx.AsyncClient], sim: httpx.AsyncClient) -> float:
    """Run the mix under a budget of four routes; the LM's spend as a share of the budget."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    one = await clients[0].post("/route", json=_body(0), headers=admin)
    budget = ROUTES_OF_BUDGET * int(one.json()["stats"]["estimated_tokens"])
    secret, _ = await make_key(clients[0], "mix", grants={"demo": ["*"]}, daily_tokens=budget)
    await sim.post("/stats/reset")
    answers = await _mix(clients, {"Authorization": f"Bearer {secret}"})
    stats = (await sim.get("/stats")).json()
    spent = int(stats["prompt_tokens"]) + int(stats["completion_tokens"])
    answered = [a for a in answers if a is not None]
    reported = sum(int(a["stats"]["prompt_tokens"]) + int(a["stats"]["completion_tokens"]) for a in answered)
    assert spent == reported  # every token the LM counted is in an answer
    assert spent <= 1.05 * budget, (spent, budget)
    assert spent >= 0.75 * budget, (spent, budget)  # the day was used, not refused wholesale
    assert len(answered) >= ROUTES_OF_BUDGET - 1  # a first pass plans its second step roughly
    assert len(answered) < SINGLES + STREAMS + BATCH  # some routes found nothing left
    cut = [a for a in answered if a["budget_cut"]]
    assert all(a["budget_cut_reason"] == f"the key's daily budget of {budget} LM tokens" for a in cut)
    return spent / budget


@pytest.fixture
def mix_settings(make_settings: SettingsBuilder, tmp_path: Path, sim: httpx.AsyncClient) -> SettingsBuilder:
    return make_settings.extend(
        sim_url=str(sim.base_url),
        tmp=tmp_path,
        auth=True,
        admin_key=ADMIN_KEY,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'store.db'}",
        key_rate_limit=0,
        # Every route reaches the LM and spends tokens.
        route_cache_size=0,
        verdict_cache_size=0,
        max_batch=BATCH,
    )


async def test_a_mix_of_routes_at_once_stays_within_the_budget(
    mix_settings: SettingsBuilder, sim: httpx.AsyncClient
) -> None:
    async with service_app_client(mix_settings()) as (_, client):
        await _check_mix([client], sim)


async def test_two_instances_sharing_redis_hold_one_budget_through_both_passes(
    mix_settings: SettingsBuilder, sim: httpx.AsyncClient, redis_prefix: str
) -> None:
    # A first pass on compact cards above 30 tables: its full-card step holds its tokens too.
    settings = mix_settings(redis_url=REDIS_URL, redis_key_prefix=redis_prefix, first_pass_above=30)
    async with AsyncExitStack() as stack:
        clients = [(await stack.enter_async_context(service_app_client(settings)))[1] for _ in range(2)]
        await _check_mix(clients, sim)
