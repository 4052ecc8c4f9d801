"""A key's daily budget in dollars, on real parts.

The LM is the simulator over a real socket, priced through TABLEROUTER_LLM_PRICE_INPUT/_OUTPUT,
so every route reports ``stats.cost_usd``. A key with a small ``daily_usd`` is admitted while
its routes' summed ``cost_usd`` is under the budget and then refused with the token budget's 429
problem (Retry-After until midnight UTC, the detail naming the dollar budget): in process and
in the local Redis (a fresh key prefix per test), on SQLite and PostgreSQL stores, across a
restart (seeded from the route log), and with Redis unreachable (each replica its part).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from redis import asyncio as aioredis

from app.auth.key_limits import utc_day
from app.cli import main
from app.harness.service import service_app_client, service_client
from app.harness.stores import STORE_BACKENDS, closed_port, fresh_store_url
from app.settings import Settings, get_settings
from app.simulator.service import SimulatorConfig, running_simulator
from app.store.records import KeySpend
from tests.fixtures.auth import ADMIN_KEY, make_key
from tests.fixtures.route_log import logged_route, scratch_route_log

pytestmark = pytest.mark.asyncio(loop_scope="module")
REDIS_URL = "redis://127.0.0.1:6379/0"
ROUTE = {"question": "Which customers placed the most orders?"}
DAY_S = 24 * 3600
# Dollars per million tokens: the simulator's routes cost a fraction of a cent each.
PRICE_INPUT, PRICE_OUTPUT = "3.0", "15.0"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim_url() -> AsyncIterator[str]:
    async with running_simulator(SimulatorConfig(port=0, latency_ms=1)) as url:
        yield url


@pytest.fixture
def priced(monkeypatch: pytest.MonkeyPatch) -> None:
    """The LM's prices, from the environment as a deployment gives them."""
    monkeypatch.setenv("TABLEROUTER_LLM_PRICE_INPUT", PRICE_INPUT)
    monkeypatch.setenv("TABLEROUTER_LLM_PRICE_OUTPUT", PRICE_OUTPUT)


@pytest_asyncio.fixture(loop_scope="module")
async def redis_prefixes() -> AsyncIterator[Callable[[], str]]:
    """Key prefixes of this test's own on the shared Redis; their keys are deleted afterwards."""
    made: list[str] = []

    def new() -> str:
        made.append(f"tr-test-{uuid.uuid4().hex[:10]}")
        return made[-1]

    yield new
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        for prefix in made:
            keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
            if keys:
                await client.delete(*keys)
    finally:
        await client.aclose()


def _settings(sim_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "auth": True,
        "admin_key": ADMIN_KEY,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'store.db'}",
        "demo_warehouse_path": str(tmp_path / "demo.db"),
        "llm_model": "openai/tablerouter-sim",
        "llm_api_base": f"{sim_url}/v1",
        "key_rate_limit": 0,
        "key_daily_tokens": 0,
        # Every route reaches the LM and costs dollars.
        "route_cache_size": 0,
        "verdict_cache_size": 0,
        **overrides,
    }
    return Settings(**values)  # the prices come from the environment (``priced``)


async def _key(client: httpx.AsyncClient, **limits: Any) -> dict[str, str]:
    secret, _ = await make_key(client, "budgeted", grants={"demo": ["*"]}, **limits)
    return {"Authorization": f"Bearer {secret}"}


def _cost(response: httpx.Response) -> float:
    assert response.status_code == 200, response.text
    cost = response.json()["stats"]["cost_usd"]
    assert cost is not None, response.json()["stats"]
    assert cost > 0
    return float(cost)


def _is_dollar_429(response: httpx.Response) -> str:
    """The token budget's 429 problem, saying it is the dollar budget; its detail."""
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/token-budget-spent")
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= DAY_S  # until 00:00 UTC
    assert problem["retry_after"] == retry_after
    assert "dollar budget" in problem["detail"]
    return str(problem["detail"])


async def _route_cost(client: httpx.AsyncClient) -> float:
    """What one route costs, asked with a key of no dollar budget."""
    return _cost(await client.post("/route", json=ROUTE, headers=await _key(client, daily_usd=0)))


async def _spend_until_refused(
    clients: Sequence[httpx.AsyncClient], headers: dict[str, str], budget: float
) -> tuple[list[float], str]:
    """Route (round robin over ``clients``) until refused: 200s exactly while under ``budget``."""
    costs: list[float] = []
    for i in range(20):
        response = await clients[i % len(clients)].post("/route", json=ROUTE, headers=headers)
        if response.status_code != 200:
            assert sum(costs) >= budget, (costs, budget)
            return costs, _is_dollar_429(response)
        assert sum(costs) < budget, (costs, budget)  # admitted only while under the budget
        costs.append(_cost(response))
    raise AssertionError(f"never refused: spent {sum(costs)} of {budget}")


@pytest.mark.usefixtures("priced")
@pytest.mark.parametrize("backend", STORE_BACKENDS)
async def test_a_dollar_budget_holds_in_process_and_survives_a_restart(
    backend: str, pg_url: str, sim_url: str, tmp_path: Path
) -> None:
    async with fresh_store_url(backend, pg_url, tmp_path) as store_url:
        settings = _settings(sim_url, tmp_path, database_url=store_url)
        async with service_client(settings) as client:
            # Whole micro-dollars, as the service counts them: the detail shows the same figure.
            budget = round(2.5 * await _route_cost(client), 6)
            spent = await _key(client, daily_usd=budget)
            roomy = await _key(client, daily_usd=1000.0)
            costs, detail = await _spend_until_refused([client], spent, budget)
            assert len(costs) == 3  # every route costs the same: 2 x cost < budget <= 3 x cost
            assert f"${budget:.6g}" in detail
            _cost(await client.post("/route", json=ROUTE, headers=roomy))
            # Streams and batches are refused too.
            streamed = await client.post(
                "/route", json=ROUTE, headers={**spent, "Accept": "text/event-stream"}
            )
            _is_dollar_429(streamed)
            _is_dollar_429(await client.post("/route/batch", json={"requests": [ROUTE]}, headers=spent))
            listed = await client.get("/keys", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
            assert sorted(k["daily_usd"] for k in listed.json()["keys"]) == [0, budget, 1000.0]
        # A new app on the same store, as after a restart: today's dollars come from the route log.
        async with service_client(settings) as client:
            _is_dollar_429(await client.post("/route", json=ROUTE, headers=spent))
            _cost(await client.post("/route", json=ROUTE, headers=roomy))


@pytest.mark.usefixtures("priced")
async def test_the_default_dollar_budget_spares_the_admin_key(sim_url: str, tmp_path: Path) -> None:
    # A service-wide budget of a millionth of a dollar.
    settings = _settings(sim_url, tmp_path, key_daily_usd=0.000001)
    async with service_client(settings) as client:
        defaulted = await _key(client)
        # Not one judge call fits in it: refused before any LM call.
        assert "$1e-06" in _is_dollar_429(await client.post("/route", json=ROUTE, headers=defaulted))
        lifted = await _key(client, daily_usd=0)
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        for headers in (lifted, admin):
            for _ in range(3):
                _cost(await client.post("/route", json=ROUTE, headers=headers))


async def test_routes_of_unknown_price_spend_no_dollars(sim_url: str, tmp_path: Path) -> None:
    # No TABLEROUTER_LLM_PRICE_* and a model no price list knows: cost_usd is null, never guessed.
    async with service_client(_settings(sim_url, tmp_path)) as client:
        headers = await _key(client, daily_usd=0.000001)
        for _ in range(3):
            response = await client.post("/route", json=ROUTE, headers=headers)
            assert response.status_code == 200, response.text
            assert response.json()["stats"]["cost_usd"] is None


@pytest.mark.usefixtures("priced")
@pytest.mark.parametrize("backend", STORE_BACKENDS)
async def test_a_dollar_budget_holds_across_instances_in_redis(
    backend: str, pg_url: str, sim_url: str, tmp_path: Path, redis_prefixes: Callable[[], str]
) -> None:
    prefix = redis_prefixes()
    async with fresh_store_url(backend, pg_url, tmp_path) as store_url:
        settings = _settings(sim_url, tmp_path, database_url=store_url, redis_url=REDIS_URL)
        shared = settings.model_copy(update={"redis_key_prefix": prefix})
        async with AsyncExitStack() as stack:
            a, b = [(await stack.enter_async_context(service_app_client(shared)))[1] for _ in range(2)]
            budget = round(2.5 * await _route_cost(a), 6)
            secret, key_id = await make_key(a, "budgeted", grants={"demo": ["*"]}, daily_usd=budget)
            headers = {"Authorization": f"Bearer {secret}"}
            costs, _ = await _spend_until_refused([a, b], headers, budget)
            assert len(costs) == 3  # 2 on A, 1 on B: each alone would have admitted more
            _is_dollar_429(await a.post("/route", json=ROUTE, headers=headers))
        redis = aioredis.Redis.from_url(REDIS_URL)
        try:
            counter = f"{prefix}:key-limit:{{{key_id}}}:micro-usd:{utc_day()}"
            assert int(await redis.get(counter) or 0) == sum(round(c * 1_000_000) for c in costs)
            assert DAY_S < await redis.ttl(counter) <= 2 * DAY_S
            # A restart onto a Redis that lost its counts (a fresh prefix): seeded from the route log.
            fresh = settings.model_copy(update={"redis_key_prefix": redis_prefixes()})
            async with service_client(fresh) as client:
                _is_dollar_429(await client.post("/route", json=ROUTE, headers=headers))
            seeded = int(
                await redis.get(f"{fresh.redis_key_prefix}:key-limit:{{{key_id}}}:micro-usd:{utc_day()}") or 0
            )
            assert abs(seeded - sum(c * 1_000_000 for c in costs)) <= 1
        finally:
            await redis.aclose()


@pytest.mark.usefixtures("priced")
async def test_unreachable_redis_leaves_each_replica_its_part_of_the_dollar_budget(
    sim_url: str, tmp_path: Path
) -> None:
    closed = f"redis://127.0.0.1:{closed_port()}/0"
    # Two replicas that cannot reach their shared counts: each allows half a key's dollars.
    async with service_client(_settings(sim_url, tmp_path, redis_url=closed, replicas=2)) as client:
        cost = await _route_cost(client)
        headers = await _key(client, daily_usd=5 * cost)
        costs, detail = await _spend_until_refused([client], headers, 2.5 * cost)
        assert len(costs) == 3
        assert "1/2" in detail


@pytest.mark.parametrize("backend", STORE_BACKENDS)
async def test_spend_by_key_since_sums_todays_tokens_and_known_dollars(
    backend: str, pg_url: str, tmp_path: Path
) -> None:
    async with scratch_route_log(backend, pg_url, tmp_path) as routes:
        now = datetime.now(UTC)
        midnight = datetime.combine(now.date(), datetime.min.time(), UTC)
        tokens = {"prompt_tokens": 10, "completion_tokens": 2}
        await routes.insert_many(
            [
                logged_route("key_a", now, {**tokens, "cost_usd": 0.25}),
                logged_route("key_a", midnight, {**tokens, "cost_usd": 0.125}),
                logged_route("key_a", now, {**tokens, "cost_usd": None}),  # prices unknown
                logged_route("key_a", midnight - timedelta(microseconds=1), {**tokens, "cost_usd": 9.0}),
                logged_route("key_b", now, tokens),  # logged before routes had a cost
                logged_route(None, now, {**tokens, "cost_usd": 5.0}),
            ]
        )
        spent = await routes.spend_by_key_since(midnight)
        assert spent == {"key_a": KeySpend(36, 0.375), "key_b": KeySpend(12, 0.0)}
        assert {key: s.tokens for key, s in spent.items()} == {"key_a": 36, "key_b": 12}


async def test_keys_api_takes_and_refuses_daily_usd(sim_url: str, tmp_path: Path) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with service_client(_settings(sim_url, tmp_path)) as client:
        secret, key_id = await make_key(client, "x", grants={"demo": ["*"]}, daily_usd=2)
        listed = {k["id"]: k for k in (await client.get("/keys", headers=admin)).json()["keys"]}
        assert listed[key_id]["daily_usd"] == 2.0
        assert secret not in str(listed)
        for bad in (-0.01, "1.5", True, 1e10):
            body = {"name": "x", "grants": {"demo": ["*"]}, "daily_usd": bad}
            assert (await client.post("/keys", json=body, headers=admin)).status_code == 422, bad


def _cli(store_url: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setenv("TABLEROUTER_DATABASE_URL", store_url)
    get_settings.cache_clear()
    try:
        return main(["keys", *args])
    except SystemExit as exc:  # argparse refusing the arguments
        return int(exc.code or 0)
    finally:
        get_settings.cache_clear()


async def test_keys_cli_create_daily_usd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    create = ("create", "--name", "bi", "--source", "demo")

    def run(*args: str) -> int:
        return _cli(url, monkeypatch, *args)

    assert await asyncio.to_thread(run, *create, "--daily-usd", "0.5") == 0
    assert await asyncio.to_thread(run, *create) == 0
    capsys.readouterr()
    assert await asyncio.to_thread(run, "list") == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.rsplit(" usd=", 1)[1] for line in listed] == ["0.5", "default"]
    for bad in ("-1", "nan", "inf", "lots"):
        assert await asyncio.to_thread(run, *create, "--daily-usd", bad) == 2, bad
