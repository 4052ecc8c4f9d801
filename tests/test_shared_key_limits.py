"""Per-key limits across replicas and restarts, on real parts.

Two service instances share the local Redis (a fresh key prefix per test) and one store: a
key's rate and its day's LM tokens hold for both together. Without Redis the day's tokens
survive a restart (start-up sums today's route log, on SQLite and PostgreSQL). With Redis
unreachable, or lost mid-run, each instance still enforces the limits itself: 429s, never a 5xx.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from redis import asyncio as aioredis

from app.auth.key_limits import utc_day
from app.auth.shared_key_limits import SharedKeyLimits
from app.harness.replicas import RedisServer
from app.harness.service import app_state, service_app_client, service_client
from app.harness.stores import STORE_BACKENDS, closed_port, fresh_store_url
from app.settings import Settings
from app.simulator.launcher import free_port
from app.simulator.service import SimulatorConfig, running_simulator
from tests.fixtures.auth import ADMIN_KEY, make_key
from tests.fixtures.replicas import REDIS_URL
from tests.fixtures.route_log import logged_route, scratch_route_log
from tests.fixtures.settings import SettingsBuilder

pytestmark = pytest.mark.asyncio(loop_scope="module")
QUESTION = "Which customers placed the most orders?"
ROUTE = {"question": QUESTION}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim_url() -> AsyncIterator[str]:
    async with running_simulator(SimulatorConfig(port=0, latency_ms=1)) as url:
        yield url


@pytest.fixture
def limit_settings(make_settings: SettingsBuilder, sim_url: str, tmp_path: Path) -> SettingsBuilder:
    return make_settings.extend(
        sim_url=sim_url,
        tmp=tmp_path,
        auth=True,
        admin_key=ADMIN_KEY,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'store.db'}",
        key_rate_limit=0,
        key_daily_tokens=0,
        # Every route reaches the LM and spends tokens.
        route_cache_size=0,
        verdict_cache_size=0,
    )


@asynccontextmanager
async def _instances(
    settings: Settings, n: int = 2
) -> AsyncIterator[list[tuple[FastAPI, httpx.AsyncClient]]]:
    """``n`` service instances on the same settings: the same store, the same Redis."""
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(service_app_client(settings)) for _ in range(n)]


async def _key(client: httpx.AsyncClient, **limits: Any) -> tuple[dict[str, str], str]:
    secret, key_id = await make_key(client, "limited", grants={"demo": ["*"]}, **limits)
    return {"Authorization": f"Bearer {secret}"}, key_id


def _is_429(response: httpx.Response, kind: str) -> int:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith(f"/{kind}")
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    return retry_after


def _tokens(response: httpx.Response) -> int:
    assert response.status_code == 200, response.text
    stats = response.json()["stats"]
    return int(stats["prompt_tokens"]) + int(stats["completion_tokens"])


async def _one_route(client: httpx.AsyncClient) -> int:
    """The tokens a route of ROUTE plans for: a daily budget that one such route spends."""
    response = await client.post("/route", json=ROUTE, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert response.status_code == 200, response.text
    return int(response.json()["stats"]["estimated_tokens"])


async def test_a_keys_rate_holds_for_both_instances(
    redis_prefix: str, limit_settings: SettingsBuilder
) -> None:
    settings = limit_settings(redis_url=REDIS_URL, redis_key_prefix=redis_prefix)
    async with _instances(settings) as [(_, a), (_, b)]:
        headers, _ = await _key(a, rate_limit=5)
        for i in range(5):  # 3 on A, 2 on B: each alone would admit more
            assert (await (a, b)[i % 2].post("/route", json=ROUTE, headers=headers)).status_code == 200
        for client in (a, b):
            # One route of 5 a minute is due 12 s after the burst began.
            assert _is_429(await client.post("/route", json=ROUTE, headers=headers), "rate-limited") <= 12

        # A batch takes all its routes or none: 3 on A leave 2, so 3 on B are refused and take
        # nothing; the 2 left are still there for single routes.
        batch_headers, _ = await _key(a, rate_limit=5)
        batch = {"requests": [ROUTE] * 3}
        assert (await a.post("/route/batch", json=batch, headers=batch_headers)).status_code == 200
        _is_429(await b.post("/route/batch", json=batch, headers=batch_headers), "rate-limited")
        for client in (b, a):
            assert (await client.post("/route", json=ROUTE, headers=batch_headers)).status_code == 200
        _is_429(await b.post("/route", json=ROUTE, headers=batch_headers), "rate-limited")


async def test_a_budget_spent_on_one_instance_is_refused_on_the_other(
    redis_prefix: str, limit_settings: SettingsBuilder
) -> None:
    settings = limit_settings(redis_url=REDIS_URL, redis_key_prefix=redis_prefix)
    async with _instances(settings) as [(_, a), (_, b)]:
        budget = await _one_route(a)
        headers, key_id = await _key(a, daily_tokens=budget)
        spent = _tokens(await a.post("/route", json=ROUTE, headers=headers))
        assert spent <= budget
        retry_after = _is_429(await b.post("/route", json=ROUTE, headers=headers), "token-budget-spent")
        assert retry_after <= 24 * 3600
        _is_429(
            await b.post("/route/batch", json={"requests": [ROUTE]}, headers=headers), "token-budget-spent"
        )

        redis = aioredis.Redis.from_url(REDIS_URL)
        try:
            counter = f"{redis_prefix}:key-limit:{{{key_id}}}:tokens:{utc_day()}"
            assert int(await redis.get(counter) or 0) == spent
            assert 24 * 3600 < await redis.ttl(counter) <= 2 * 24 * 3600
        finally:
            await redis.aclose()


@pytest.mark.parametrize("backend", STORE_BACKENDS)
async def test_the_days_budget_survives_a_restart(
    backend: str, pg_url: str, tmp_path: Path, limit_settings: SettingsBuilder
) -> None:
    async with fresh_store_url(backend, pg_url, tmp_path) as store_url:
        settings = limit_settings(database_url=store_url)
        async with service_client(settings) as client:
            budget = await _one_route(client)
            spent, _ = await _key(client, daily_tokens=budget)
            roomy, _ = await _key(client, daily_tokens=1_000_000)
            assert _tokens(await client.post("/route", json=ROUTE, headers=spent)) <= budget
            _tokens(await client.post("/route", json=ROUTE, headers=roomy))
            _is_429(await client.post("/route", json=ROUTE, headers=spent), "token-budget-spent")
        # A new app on the same store, as after a restart: it reads today's tokens from the route log.
        async with service_client(settings) as client:
            _is_429(await client.post("/route", json=ROUTE, headers=spent), "token-budget-spent")
            _tokens(await client.post("/route", json=ROUTE, headers=roomy))


@pytest.mark.parametrize("backend", STORE_BACKENDS)
async def test_spend_by_key_since_sums_todays_tokens(backend: str, pg_url: str, tmp_path: Path) -> None:
    async with scratch_route_log(backend, pg_url, tmp_path) as routes:
        now = datetime.now(UTC)
        midnight = datetime.combine(now.date(), datetime.min.time(), UTC)

        def tokens(prompt: int, completion: int) -> dict[str, int]:
            return {"prompt_tokens": prompt, "completion_tokens": completion}

        await routes.insert_many(
            [
                logged_route("key_a", now, tokens(100, 20)),
                logged_route("key_a", midnight, tokens(7, 3)),  # the first instant of the day counts
                logged_route("key_a", midnight - timedelta(microseconds=1), tokens(1000, 1000)),
                logged_route("key_b", now, tokens(0, 5)),
                logged_route(None, now, tokens(500, 500)),
            ]
        )
        spent = await routes.spend_by_key_since(midnight)
        assert {key: s.tokens for key, s in spent.items()} == {"key_a": 130, "key_b": 5}


async def test_unreachable_redis_leaves_each_replica_its_part_of_the_limits(
    limit_settings: SettingsBuilder,
) -> None:
    closed = f"redis://127.0.0.1:{closed_port()}/0"
    # Three replicas that cannot reach their shared counts: each allows a third of a key's rate.
    async with service_client(limit_settings(redis_url=closed, replicas=3)) as client:
        rated, _ = await _key(client, rate_limit=6)
        for _ in range(2):
            assert (await client.post("/route", json=ROUTE, headers=rated)).status_code == 200
        refused = await client.post("/route", json=ROUTE, headers=rated)
        _is_429(refused, "rate-limited")
        assert "1/3" in refused.json()["detail"]
        # Its part of three routes' tokens: one route.
        budget, _ = await _key(client, daily_tokens=3 * await _one_route(client))
        _tokens(await client.post("/route", json=ROUTE, headers=budget))
        _is_429(await client.post("/route", json=ROUTE, headers=budget), "token-budget-spent")


@pytest.mark.replicas  # a private redis-server process
async def test_redis_lost_mid_run_falls_back_to_what_this_instance_counted(
    tmp_path: Path, limit_settings: SettingsBuilder
) -> None:
    # A private redis-server, to kill without touching the shared one.
    redis = RedisServer(free_port(), tmp_path)
    await asyncio.to_thread(redis.start)
    try:
        settings = limit_settings(redis_url=redis.url)
        async with service_app_client(settings) as (app, client):
            limits = app_state(app).limits
            assert isinstance(limits, SharedKeyLimits)
            limits.link.probe_interval = 60  # stays down for the rest of the test
            budget, _ = await _key(client, daily_tokens=await _one_route(client))
            rated, _ = await _key(client, rate_limit=2)
            _tokens(await client.post("/route", json=ROUTE, headers=budget))
            await asyncio.to_thread(redis.kill)
            # The tokens spent while Redis answered were counted here too.
            _is_429(await client.post("/route", json=ROUTE, headers=budget), "token-budget-spent")
            assert not limits.link.up
            for _ in range(2):
                assert (await client.post("/route", json=ROUTE, headers=rated)).status_code == 200
            _is_429(await client.post("/route", json=ROUTE, headers=rated), "rate-limited")
    finally:
        await asyncio.to_thread(redis.kill)


async def test_an_outage_gives_no_key_a_fresh_burst_across_a_restart(limit_settings: SettingsBuilder) -> None:
    closed = f"redis://127.0.0.1:{closed_port()}/0"
    settings = limit_settings(redis_url=closed, replicas=3)  # one store: the SQLite file of the test
    through = 0
    async with service_client(settings) as client:
        rated, _ = await _key(client, rate_limit=6)
        for _ in range(3):
            through += (await client.post("/route", json=ROUTE, headers=rated)).status_code == 200
    # The limiter starts again, Redis still unreachable: a fresh bucket would let 2 more through.
    async with service_client(settings) as client:
        for _ in range(3):
            response = await client.post("/route", json=ROUTE, headers=rated)
            if response.status_code != 200:
                _is_429(response, "rate-limited")
            through += response.status_code == 200
    assert through == 2  # the key's part, 6 a minute / 3 replicas, in one burst


@pytest.mark.replicas  # a private redis-server process
async def test_an_outage_starts_each_key_from_what_got_through_before(
    tmp_path: Path, limit_settings: SettingsBuilder
) -> None:
    redis = RedisServer(free_port(), tmp_path)
    await asyncio.to_thread(redis.start)
    try:
        async with service_app_client(limit_settings(redis_url=redis.url, replicas=3)) as (app, client):
            limits = app_state(app).limits
            assert isinstance(limits, SharedKeyLimits)
            limits.link.probe_interval = 60  # stays down for the rest of the test
            rated, _ = await _key(client, rate_limit=6)
            # Redis admits the key's whole burst of 6 (all replicas together) through this one.
            for _ in range(6):
                assert (await client.post("/route", json=ROUTE, headers=rated)).status_code == 200
            await asyncio.to_thread(redis.kill)
            # The fallback starts from this replica's part less what got through: nothing left.
            _is_429(await client.post("/route", json=ROUTE, headers=rated), "rate-limited")
            assert not limits.link.up
    finally:
        await asyncio.to_thread(redis.kill)


@pytest.mark.parametrize("backend", STORE_BACKENDS)
async def test_route_times_by_key_since_lists_each_keys_recent_routes(
    backend: str, pg_url: str, tmp_path: Path
) -> None:
    async with scratch_route_log(backend, pg_url, tmp_path) as routes:
        now = datetime.now(UTC).replace(microsecond=0)
        since = now - timedelta(minutes=1)
        await routes.insert_many(
            [
                logged_route("key_a", now),
                logged_route("key_a", since),
                logged_route("key_a", since - timedelta(seconds=1)),  # before the minute
                logged_route(None, now),
            ]
        )
        times = await routes.route_times_by_key_since(since)
        assert list(times) == ["key_a"]
        assert [t.replace(tzinfo=UTC) for t in times["key_a"]] == [since, now]
