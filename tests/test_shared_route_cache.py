"""The route cache and single-flight shared through Redis: three ``tablerouter serve`` processes.

The LM simulator counts the calls, so "computed once across replicas" is measured at the LM.
The verdict cache is off (a route computed again would otherwise cost no call); the route
cache is on. Each test asks its own question, so no test is answered by another's route.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from redis import asyncio as aioredis

from app.harness.replicas import RedisServer, Replica, running_replicas
from app.simulator.launcher import free_port
from tests.fixtures.replicas import REDIS_URL, ReplicaWorldBuilder, World

# Replica processes: the session forks them (~1 s each); the first module pays the forker's warm-up.
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.replicas, pytest.mark.slow]
# The computing replica renews its route lock every third of this: its loop may stall ~1.3 s
# (a loaded 2-core box) before the lock lapses and a waiter computes the route a second time.
LOCK_SECONDS = 2.0
LEASE_SECONDS = 1.0
# A waiter's patience, far above a route's ~2-4 s here, so that only a dead holder's lapsed lock,
# never a slow but live computation, makes it compute (the wait is capped at half the deadline).
WAIT_SECONDS = 30


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def replica_world(
    make_replica_world: ReplicaWorldBuilder, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    # Slow calls and a global limit of 2: a route takes long enough to kill its replica mid-way.
    env = {
        "TABLEROUTER_LLM_MAX_CONCURRENCY": "2",
        "TABLEROUTER_REPLICAS": "3",
        "TABLEROUTER_REDIS_ROUTE_LOCK_SECONDS": str(LOCK_SECONDS),
        "TABLEROUTER_REDIS_ROUTE_WAIT_SECONDS": str(WAIT_SECONDS),
        "TABLEROUTER_ROUTE_DEADLINE_MS": str(WAIT_SECONDS * 2 * 1000),
        # A killed replica's LM slots are free again by the time its route lock lapses.
        "TABLEROUTER_REDIS_LEASE_SECONDS": str(LEASE_SECONDS),
        # A computed route costs LM calls every time: only the route cache can save them.
        "TABLEROUTER_VERDICT_CACHE_SIZE": "0",
    }
    workdir = tmp_path_factory.mktemp("shared-cache")
    async with make_replica_world(
        workdir, name="tr_shcache", seeds=(12, 3), latency_ms="uniform:200:300", env=env
    ) as world:
        yield world


async def _sim_calls(client: httpx.AsyncClient, replica_world: World) -> int:
    calls: int = (await client.get(f"{replica_world.sim_url}/stats")).json()["calls"]
    return calls


async def _route(client: httpx.AsyncClient, replica: Replica, question: str) -> dict[str, Any]:
    response = await client.post(f"{replica.url}/route", json={"question": question, "top_k": 5})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _route_misses(client: httpx.AsyncClient, replica: Replica) -> int:
    misses: int = (await client.get(f"{replica.url}/cache")).json()["routes"]["misses"]
    return misses


async def _misses_rise_above(client: httpx.AsyncClient, replica: Replica, before: int) -> bool:
    """Whether the replica's route-cache misses pass ``before`` (polls 10 ms apart, for 6 s or more)."""
    for _ in range(600):
        if await _route_misses(client, replica) > before:
            return True
        await asyncio.sleep(0.01)
    return False


async def test_a_route_computed_by_one_replica_is_served_by_the_others(
    replica_world: World, trio: list[Replica]
) -> None:
    question = replica_world.questions[0]
    async with httpx.AsyncClient(timeout=60) as client:
        first = await _route(client, trio[0], question)
        calls = await _sim_calls(client, replica_world)
        others = [await _route(client, replica, question) for replica in trio[1:]]
        after = await _sim_calls(client, replica_world)
        counters = (await client.get(f"{trio[1].url}/cache")).json()["routes"]
    assert first["stats"]["cache"] == "miss"
    assert first["stats"]["lm_calls"] > 0
    assert after == calls
    for other in others:
        assert other["stats"]["cache"] == "hit"
        assert other["stats"]["lm_calls"] == 0
        assert other["tables"] == first["tables"]
        assert other["catalog_version"] == first["catalog_version"]
    assert len({first["route_id"], *(o["route_id"] for o in others)}) == 3
    assert counters["hits"] == 1
    assert counters["misses"] == 0


async def test_identical_routes_across_replicas_are_computed_once(
    replica_world: World, trio: list[Replica]
) -> None:
    question = replica_world.questions[1]
    async with httpx.AsyncClient(timeout=60) as client:
        before = await _sim_calls(client, replica_world)
        bodies = await asyncio.gather(*(_route(client, trio[i % 3], question) for i in range(9)))
        calls = await _sim_calls(client, replica_world) - before
    computed = [b for b in bodies if b["stats"]["cache"] == "miss"]
    assert len(computed) == 1
    assert calls == computed[0]["stats"]["lm_calls"] > 0
    assert len({json.dumps(b["tables"]) for b in bodies}) == 1


async def test_when_the_computing_replica_dies_another_computes_after_its_lock_expires(
    replica_world: World, trio: list[Replica], module_redis_prefix: str
) -> None:
    question = replica_world.questions[2]
    victim, survivors = trio[2], trio[:2]
    redis = aioredis.Redis.from_url(REDIS_URL)
    async with httpx.AsyncClient(timeout=60) as client:
        doomed = asyncio.create_task(client.post(f"{victim.url}/route", json={"question": question}))
        locks: list[bytes] = []
        for _ in range(2000):
            locks = [k async for k in redis.scan_iter(match=f"{module_redis_prefix}:route:*:lock")]
            if locks:
                break
            await asyncio.sleep(0.005)
        assert locks, "the victim never took the route's lock"
        missed = [await _route_misses(client, r) for r in survivors]
        waiting = [asyncio.create_task(_route(client, r, question)) for r in survivors]
        # Each survivor has looked in its own cache (a miss) and waits for the victim's answer.
        for replica, before in zip(survivors, missed, strict=True):
            assert await _misses_rise_above(client, replica, before), "a survivor never looked"
        assert not any(task.done() for task in waiting)
        victim.kill()
        bodies = await asyncio.gather(*waiting)
        with pytest.raises(httpx.TransportError):
            await doomed
    await redis.aclose()
    # Nothing renews a dead replica's lock: one survivor computes, the other waits for it.
    # (The LM's call count is not compared here: the victim's last calls may still be
    # arriving at the simulator when the survivors start.)
    computed, served = sorted(bodies, key=lambda b: str(b["stats"]["cache"]), reverse=True)
    assert computed["stats"]["cache"] == "miss"
    assert computed["stats"]["lm_calls"] > 0
    assert served["stats"]["cache"] == "hit"
    assert served["stats"]["lm_calls"] == 0
    assert served["tables"] == computed["tables"]


async def test_redis_down_mid_load_routes_go_on_with_the_local_cache(replica_world: World) -> None:
    prefix = f"tr-test-{uuid.uuid4().hex[:10]}"  # a private Redis: nothing to clean up
    redis_server = RedisServer(free_port(), replica_world.workdir)
    redis_server.start()
    env = {
        **replica_world.env,
        "TABLEROUTER_REDIS_URL": redis_server.url,
        "TABLEROUTER_REDIS_KEY_PREFIX": prefix,
    }
    env["TABLEROUTER_LLM_MAX_CONCURRENCY"] = "12"
    questions = replica_world.questions[3:]
    try:
        async with httpx.AsyncClient(timeout=60) as client:
            with running_replicas(2, env, replica_world.workdir / prefix, replica_world.spawn) as replicas:

                async def one(i: int) -> int:
                    body = {"question": questions[i % len(questions)], "top_k": 5}
                    response = await client.post(f"{replicas[i % 2].url}/route", json=body)
                    return response.status_code

                load = asyncio.gather(*(one(i) for i in range(12)))
                await asyncio.sleep(0.3)
                redis_server.kill()
                statuses = await load
                after = await asyncio.gather(*(one(i) for i in range(6)))
                log = replicas[0].log.read_text() + replicas[1].log.read_text()
    finally:
        redis_server.kill()
    assert statuses == [200] * 12
    assert after == [200] * 6
    assert "falling back to local limits and the local route cache" in log
