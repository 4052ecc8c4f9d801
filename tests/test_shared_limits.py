"""The Redis-backed limits in-process, on the local Redis: two links stand for two replicas."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from app.llm.failover_limiter import FailoverLimiter
from app.llm.lease_semaphore import LeaseSemaphore
from app.llm.limiter import Limiter, SlotLimiter
from app.llm.rate_limit import gcra_booking, per_minute
from app.llm.shared_rate import SharedRateLimit
from app.redis_link import RedisLink
from app.simulator.launcher import free_port

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest_asyncio.fixture
async def links() -> AsyncIterator[list[RedisLink]]:
    """Two replicas' links under one fresh prefix; the prefix's keys are deleted afterwards."""
    prefix = f"tr-test-{uuid.uuid4().hex[:10]}"
    pair = [RedisLink(REDIS_URL, prefix) for _ in range(2)]
    for link in pair:
        await link.start()
    yield pair
    keys = [k async for k in pair[0].client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await pair[0].client.delete(*keys)
    for link in pair:
        await link.aclose()


class Gauge:
    """Counts bodies running at once across limiters."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    async def hold(self, limiter: SlotLimiter, seconds: float) -> None:
        async with limiter.slot():
            self.now += 1
            self.peak = max(self.peak, self.now)
            await asyncio.sleep(seconds)
            self.now -= 1


async def test_two_replicas_never_exceed_the_shared_limit(links: list[RedisLink]) -> None:
    semaphores = [LeaseSemaphore(link, "lm", limit=3, lease_seconds=5) for link in links]
    gauge = Gauge()
    await asyncio.gather(*(gauge.hold(semaphores[i % 2], 0.01) for i in range(40)))
    assert gauge.peak == 3
    assert await links[0].client.zcard(semaphores[0].key) == 0
    for semaphore in semaphores:
        await semaphore.aclose()


async def test_cancelled_waiters_and_holders_leave_no_lease(links: list[RedisLink]) -> None:
    semaphore = LeaseSemaphore(links[0], "lm", limit=2, lease_seconds=5)
    gauge = Gauge()
    tasks = [asyncio.create_task(gauge.hold(semaphore, 10)) for _ in range(6)]
    await asyncio.sleep(0.2)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0.05)  # releases of cancelled holders run shielded
    assert gauge.peak == 2
    assert await links[0].client.zcard(semaphore.key) == 0
    await semaphore.aclose()


async def test_shared_rate_books_one_interval_per_request(links: list[RedisLink]) -> None:
    # 6 per minute: a request every 10 s, a burst of one; waits are booked, not slept, here.
    rate = SharedRateLimit(links[0], "rpm", per_minute_limit=6)
    waits = [
        float(await rate._book(keys=[rate.key], args=[rate.interval_ms, rate.burst, 1])) for _ in range(4)
    ]
    for i, wait in enumerate(waits):
        assert i * 10_000 - 2_000 <= wait <= i * 10_000


def test_gcra_arithmetic() -> None:
    interval, burst = per_minute(120)  # 2 per second, a burst of 2
    tat, waits = 0.0, []
    for _ in range(5):
        wait, tat = gcra_booking(tat, 100.0, interval, burst, 1)
        waits.append(wait)
    assert waits == [0.0, 0.0, 0.5, 1.0, 1.5]


async def test_unreachable_redis_falls_back_to_the_local_share() -> None:
    link = RedisLink(f"redis://127.0.0.1:{free_port()}/0", "tr-test-closed", probe_interval=60)
    await link.start()
    assert not link.up
    shared = LeaseSemaphore(link, "lm", limit=6, lease_seconds=5)
    limiter = FailoverLimiter(link, shared, Limiter(6 // 3))
    gauge = Gauge()
    await asyncio.gather(*(gauge.hold(limiter, 0.01) for _ in range(10)))
    assert gauge.peak == 2
    await shared.aclose()
    await link.aclose()


@pytest.mark.parametrize("limit", [1, 4])
async def test_redis_failing_mid_wait_moves_waiters_to_local(limit: int) -> None:
    link = RedisLink(REDIS_URL, f"tr-test-{uuid.uuid4().hex[:10]}", probe_interval=60)
    await link.start()
    shared = LeaseSemaphore(link, "lm", limit=limit, lease_seconds=5)
    limiter = FailoverLimiter(link, shared, Limiter(limit))
    gauge = Gauge()
    tasks = [asyncio.create_task(gauge.hold(limiter, 0.05)) for _ in range(8)]
    await asyncio.sleep(0.02)
    # Point the client at a closed port: the next Redis call fails as if Redis died.
    link.client.connection_pool.connection_kwargs["port"] = free_port()
    await link.client.connection_pool.disconnect()
    await asyncio.gather(*tasks)
    assert not link.up
    assert gauge.peak <= 2 * limit  # at most the shared holders plus the local ones
    await shared.aclose()
    await link.aclose()
