"""Replicas sharing one LM limit through Redis: three ``tablerouter serve`` processes on loopback.

The LM simulator counts the calls in flight at the LM itself, so "at most the global limit"
is measured where it matters. Each test's keys live under their own Redis prefix.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest
import pytest_asyncio
from redis import asyncio as aioredis

from app.harness.replicas import RedisServer, Replica, running_replicas
from app.llm.limits import backend_key
from app.settings import Settings
from app.simulator.launcher import free_port
from tests.fixtures.replicas import REDIS_URL, ReplicaWorldBuilder, World
from tests.fixtures.settings import SIM_MODEL

# Replica processes: the session forks them (~1 s each); the first module pays the forker's warm-up.
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.replicas, pytest.mark.slow]
GLOBAL_LIMIT = 4
LEASE_SECONDS = 2.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def replica_world(
    make_replica_world: ReplicaWorldBuilder, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    env = {
        "TABLEROUTER_LLM_MAX_CONCURRENCY": str(GLOBAL_LIMIT),
        "TABLEROUTER_LLM_TIMEOUT": "30",
        "TABLEROUTER_REDIS_LEASE_SECONDS": str(LEASE_SECONDS),
        "TABLEROUTER_LOG_FORMAT": "json",
        # Every route must reach the LM (and its limiter): no answers from a cache.
        "TABLEROUTER_ROUTE_CACHE_SIZE": "0",
        "TABLEROUTER_VERDICT_CACHE_SIZE": "0",
    }
    workdir = tmp_path_factory.mktemp("replicas")
    async with make_replica_world(
        workdir, name="tr_scale", seeds=(11, 2), latency_ms="uniform:40:80", env=env
    ) as world:
        yield world


def _lease_key(replica_world: World, module_redis_prefix: str) -> str:
    settings = Settings.model_validate(
        {"llm_model": SIM_MODEL, "llm_api_base": replica_world.env["TABLEROUTER_LLM_API_BASE"]}
    )
    return f"{module_redis_prefix}:sem:{backend_key(settings)}"


async def _sim_stats(client: httpx.AsyncClient, replica_world: World, reset: bool = False) -> dict[str, Any]:
    response = await client.request(
        "POST" if reset else "GET", f"{replica_world.sim_url}/stats{'/reset' * reset}"
    )
    stats: dict[str, Any] = response.json()
    return stats


async def _routes(
    client: httpx.AsyncClient, replicas: list[Replica], questions: list[str], n: int
) -> list[int | BaseException]:
    """``n`` concurrent routes spread round-robin; a status per route, or the transport error."""

    async def one(i: int) -> int:
        body = {"question": questions[i % len(questions)], "top_k": 5}
        response = await client.post(f"{replicas[i % len(replicas)].url}/route", json=body)
        return response.status_code

    return await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)


def _metric(client_text: str, name: str) -> float | None:
    for line in client_text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return None


async def test_three_replicas_hold_one_global_limit(replica_world: World, trio: list[Replica]) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        await _sim_stats(client, replica_world, reset=True)
        # Each replica alone would allow GLOBAL_LIMIT calls: 3x the limit without Redis.
        statuses = await _routes(client, trio, replica_world.questions, 12)
        stats = await _sim_stats(client, replica_world)
        metrics = (await client.get(f"{trio[0].url}/metrics")).text
    assert statuses == [200] * 12
    assert stats["calls"] >= 12 * 3
    assert 1 < stats["max_in_flight"] <= GLOBAL_LIMIT
    assert _metric(metrics, "tablerouter_shared_limits") == 1.0
    assert (_metric(metrics, 'tablerouter_routes_total{outcome="ok"}') or 0) >= 4


async def test_an_idle_connection_outlives_uvicorns_default_keep_alive(trio: list[Replica]) -> None:
    # uvicorn closes a connection idle for 5 s by default; a load balancer in front reuses its
    # idle connections for up to 60 s and answers 502 when the server closed one first.
    reader, writer = await asyncio.open_connection("127.0.0.1", trio[0].port)
    request = b"GET /healthz HTTP/1.1\r\nHost: replica\r\n\r\n"
    try:
        for pause in (0.0, 6.0):
            await asyncio.sleep(pause)
            writer.write(request)
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), 10)
            assert status.startswith(b"HTTP/1.1 200"), status  # b"" once the server has closed it
            headers = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            length = int(
                next(h for h in headers.split(b"\r\n") if h.lower().startswith(b"content-length")).split(
                    b":"
                )[1]
            )
            await asyncio.wait_for(reader.readexactly(length), 10)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_killed_replica_leases_expire_within_the_lease_time(
    replica_world: World, trio: list[Replica], module_redis_prefix: str
) -> None:
    redis = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    key = _lease_key(replica_world, module_redis_prefix)
    victim, survivors = trio[2], trio[:2]
    mark = f":{victim.pid}:"
    async with httpx.AsyncClient(timeout=60) as client:
        load = asyncio.create_task(_routes(client, trio, replica_world.questions, 30))
        for _ in range(2000):
            held = [m for m in await redis.zrange(key, 0, -1) if mark in m]
            if held:
                break
            await asyncio.sleep(0.005)
        assert held, "the victim never held a lease"
        victim.kill()
        seconds, micros = await redis.time()
        killed_at_ms = seconds * 1000 + micros // 1000
        # Nothing renews a dead replica's leases: each expires at most a lease time from now.
        leases = await redis.zrange(key, 0, -1, withscores=True)
        scores = [float(score) for member, score in cast(list[tuple[str, float]], leases) if mark in member]
        statuses = await load
        # Later routes on the survivors drop the expired leases when they acquire.
        more = await _routes(client, survivors, replica_world.questions, 4)
        left = [m for m in await redis.zrange(key, 0, -1) if mark in m]
    await redis.aclose()
    assert all(score <= killed_at_ms + LEASE_SECONDS * 1000 for score in scores)
    assert left == []
    survivor_statuses = [s for i, s in enumerate(statuses) if i % 3 != 2]
    assert survivor_statuses == [200] * len(survivor_statuses)
    assert more == [200] * 4


async def test_redis_down_mid_load_routes_go_on_under_local_limits(replica_world: World) -> None:
    prefix = f"tr-test-{uuid.uuid4().hex[:10]}"  # a private Redis: nothing to clean up
    redis_server = RedisServer(free_port(), replica_world.workdir)
    redis_server.start()
    env = {
        **replica_world.env,
        "TABLEROUTER_REDIS_URL": redis_server.url,
        "TABLEROUTER_REDIS_KEY_PREFIX": prefix,
    }
    env["TABLEROUTER_REPLICAS"] = "2"
    try:
        async with httpx.AsyncClient(timeout=60) as client:
            with running_replicas(2, env, replica_world.workdir / prefix, replica_world.spawn) as replicas:
                load = asyncio.create_task(_routes(client, replicas, replica_world.questions, 16))
                await asyncio.sleep(0.3)
                redis_server.kill()
                statuses = await load
                after = await _routes(client, replicas, replica_world.questions, 6)
                down = (await client.get(f"{replicas[0].url}/metrics")).text
                redis_server.start()
                shared_again = await _wait_for_shared(client, replicas[0])
                back = await _routes(client, replicas, replica_world.questions, 4)
                log = replicas[0].log.read_text()
    finally:
        redis_server.kill()
    assert statuses == [200] * 16
    assert after == [200] * 6
    assert _metric(down, "tablerouter_shared_limits") == 0.0
    assert shared_again
    assert back == [200] * 4
    assert "falling back to local limits" in log
    assert "Redis is back" in log


async def _wait_for_shared(client: httpx.AsyncClient, replica: Replica) -> bool:
    """Wait (bounded) until the replica holds its limits in Redis again."""
    for _ in range(100):
        if _metric((await client.get(f"{replica.url}/metrics")).text, "tablerouter_shared_limits") == 1:
            return True
        await asyncio.sleep(0.1)
    return False
