"""A semaphore for all replicas together: leases in a Redis sorted set, scored by expiry.

A lease is a member of the set; its score is when it expires (Redis server time, so replica
clocks do not matter). Acquiring first drops expired leases, then adds new ones while the set
holds fewer than ``limit``: one Lua script, so no two replicas can both see the last free slot.
A holder renews its leases every third of the lease time; a replica that dies stops renewing
and its leases expire within ``lease_seconds``.

Waiting costs Redis nothing per waiter: each replica queues its waiters in memory and one pump
task asks Redis for as many leases as it has waiters, then sleeps until some replica publishes
a release (or a short poll, which also catches expired leases).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from app.observability.metrics import LEASES_LOST
from app.redis_link import UNREACHABLE, RedisLink, RedisUnavailableError

log = logging.getLogger(__name__)

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local free = tonumber(ARGV[1]) - redis.call('ZCARD', KEYS[1])
local ttl = tonumber(ARGV[2])
local granted = 0
for i = 3, #ARGV do
    if granted >= free then break end
    redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
    granted = granted + 1
end
redis.call('PEXPIRE', KEYS[1], 2 * ttl)
return granted
"""
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local lost = {}
for i = 2, #ARGV do
    if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
        redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
    else
        table.insert(lost, ARGV[i])
    end
end
redis.call('PEXPIRE', KEYS[1], 2 * ttl)
return lost
"""
_RELEASE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then redis.call('PUBLISH', KEYS[2], '1') end
return 1
"""
MAX_BATCH = 64  # leases asked for in one script call


class LeaseSemaphore:
    """At most ``limit`` holders across every replica sharing ``name`` in Redis."""

    def __init__(
        self, link: RedisLink, name: str, limit: int, lease_seconds: float, poll_seconds: float = 0.2
    ) -> None:
        self.link = link
        self.limit = limit
        self.key = link.key("sem", name)
        self.channel = link.key("sem", name, "released")
        self.lease_ms = max(1, int(lease_seconds * 1000))
        self.poll_seconds = poll_seconds
        self._acquire = link.client.register_script(_ACQUIRE)
        self._renew = link.client.register_script(_RENEW)
        self._release = link.client.register_script(_RELEASE)
        self._ids = itertools.count()
        self._waiters: deque[asyncio.Future[str]] = deque()
        self._held: set[str] = set()
        self._kick = asyncio.Event()
        self._released = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._releases: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def slot(self, tokens: int = 0) -> AsyncIterator[None]:
        """Hold one lease for the body; RedisUnavailableError if Redis fails while waiting."""
        lease = await self.acquire()
        try:
            yield
        finally:
            await asyncio.shield(self.release(lease))

    async def acquire(self) -> str:
        """Wait for a lease; returns its id."""
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._start("pump", self._pump)
        self._start("listen", self._listen)
        self._kick.set()
        try:
            lease = await waiter
        except asyncio.CancelledError:
            # Granted in the same tick we were cancelled: give the lease back.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._spawn_release(waiter.result())
            raise
        self._held.add(lease)
        self._start("renew", self._renew_while_held)
        return lease

    async def release(self, lease: str) -> None:
        """Give a lease back and wake the waiters of every replica; a Redis failure is ignored."""
        self._held.discard(lease)
        self._released.set()
        try:
            await self._release(keys=[self.key, self.channel], args=[lease])
        except UNREACHABLE as exc:
            # The lease expires by itself; the next acquire notices the outage.
            log.debug("could not release lease %s: %s", lease, exc)

    def _spawn_release(self, lease: str) -> None:
        task = asyncio.create_task(self.release(lease))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    def _start(self, name: str, body: Callable[[], Coroutine[Any, Any, None]]) -> None:
        task = self._tasks.get(name)
        if task is None or task.done():
            self._tasks[name] = asyncio.create_task(body(), name=f"lease-{name}")

    async def _pump(self) -> None:
        try:
            while True:
                while self._waiters and self._waiters[0].done():
                    self._waiters.popleft()
                if not self._waiters:
                    self._kick.clear()
                    await self._kick.wait()
                    continue
                await self._grant(list(itertools.islice(self._waiters, MAX_BATCH)))
        except UNREACHABLE as exc:
            self._fail_waiters(exc)

    async def _grant(self, batch: list[asyncio.Future[str]]) -> None:
        """Ask Redis for a lease per waiter of ``batch``; sleep until a release if short."""
        self._released.clear()
        leases = [f"{self.link.replica_id}:{next(self._ids)}" for _ in batch]
        granted = int(await self._acquire(keys=[self.key], args=[self.limit, self.lease_ms, *leases]))
        for lease in leases[:granted]:
            waiter = self._waiters.popleft()
            if waiter.done():  # cancelled while Redis answered
                self._spawn_release(lease)
            else:
                waiter.set_result(lease)
        if granted < len(batch):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), self.poll_seconds)

    def _fail_waiters(self, exc: BaseException) -> None:
        self.link.mark_down(exc)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(RedisUnavailableError(str(exc)))

    async def _listen(self) -> None:
        """Wake the pump whenever any replica releases a lease; resubscribe after an outage."""
        while True:
            pubsub = self.link.client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                while True:
                    if await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0):
                        self._released.set()
            except UNREACHABLE:
                await asyncio.sleep(1.0)  # the pump's poll covers the gap
            finally:
                with contextlib.suppress(*UNREACHABLE):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _renew_while_held(self) -> None:
        while self._held:
            await asyncio.sleep(self.lease_ms / 3000)
            held = list(self._held)
            if not held:
                break
            try:
                lost = await self._renew(keys=[self.key], args=[self.lease_ms, *held])
            except UNREACHABLE as exc:
                log.debug("could not renew %d leases: %s", len(held), exc)
                continue
            if lost:
                LEASES_LOST.inc(len(lost))
                log.warning("%d leases expired while their calls ran (renewal too late)", len(lost))

    async def aclose(self) -> None:
        """Stop the background tasks; held leases expire or are released by their holders."""
        for task in self._tasks.values():
            task.cancel()
        for task in (*self._tasks.values(), *self._releases):
            with contextlib.suppress(asyncio.CancelledError, *UNREACHABLE):
                await task
