"""The route cache and its single-flight shared by every replica, in Redis.

An answer is a value under ``<prefix>:route:<digest>`` with a TTL. The replica that computes
it first takes ``<prefix>:route:<digest>:lock`` (``SET NX`` with a short TTL, renewed while it
computes); the others wait for the answer - woken by a message on ``<prefix>:route:done``, or
by a poll - for a bounded time, and compute it themselves when that time is up or the lock
is gone without an answer (its holder died, or its answer was not kept). A dead holder's lock
expires within the lock time.

Any Redis failure marks the link down and the route is computed here; while the link is down
nothing is asked of Redis (the local cache still answers), so Redis can never fail a route.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import RedisError

from app.redis_link import UNREACHABLE, RedisLink
from app.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
# A cache must never fail a route: an error reply (out of memory, a read-only replica) counts as
# an outage too.
FAILED: tuple[type[BaseException], ...] = (*UNREACHABLE, RedisError)

# Store the answer (if any), then drop the lock only if it is still ours, and wake the waiters.
_PUBLISH = """
if ARGV[2] ~= '' then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
redis.call('PUBLISH', KEYS[3], ARGV[4])
return 1
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
POLL_SECONDS = 0.1  # how often a waiter looks again when no message woke it


class SharedRouteCache:
    """Answers of every replica under one Redis prefix, computed once across replicas."""

    def __init__(
        self,
        link: RedisLink,
        ttl_seconds: float,
        lock_seconds: float,
        wait_seconds: float,
        max_bytes: int,
    ) -> None:
        self.link = link
        self.ttl_ms = max(1, int(ttl_seconds * 1000))
        self.lock_ms = max(1, int(lock_seconds * 1000))
        self.wait_seconds = wait_seconds
        self.max_bytes = max_bytes
        self.channel = link.key("route", "done")
        self._publish = link.client.register_script(_PUBLISH)
        self._renew = link.client.register_script(_RENEW)
        self._woken: dict[str, asyncio.Event] = {}
        self._listener: asyncio.Task[None] | None = None

    def _keys(self, digest: str) -> tuple[str, str]:
        return self.link.key("route", digest), self.link.key("route", digest, "lock")

    async def get_or_compute(
        self,
        digest: str,
        compute: Callable[[], Awaitable[T]],
        encode: Callable[[T], bytes | None],
        decode: Callable[[bytes], T | None],
        wait_limit: float,
    ) -> tuple[T, bool]:
        """The shared answer for ``digest`` (and True), or ``compute()``'s (and False).

        ``encode`` gives None for an answer not to share; ``decode`` None for one it cannot
        read. A replica waits for another's computation at most ``wait_limit`` seconds (and at
        most the configured wait).
        """
        token: str | None = None
        if self.link.up:
            try:
                shared, token = await self._find_or_claim(digest, min(wait_limit, self.wait_seconds), decode)
            except FAILED as exc:
                self.link.mark_down(exc)
            else:
                if shared is not None:
                    return shared, True
        if token is None:
            return await compute(), False
        renewing = asyncio.create_task(self._renew_lock(digest, token), name="route-lock-renew")
        blob: bytes | None = None
        try:
            result = await compute()
            blob = encode(result)
            if blob is not None and len(blob) > self.max_bytes:
                log.info("route answer of %d bytes not shared (limit %d)", len(blob), self.max_bytes)
                blob = None
            return result, False
        finally:
            renewing.cancel()
            # Shielded: a cancelled computation still frees its lock for the waiters at once.
            await asyncio.shield(self._release(digest, token, blob))

    async def _find_or_claim(
        self, digest: str, wait: float, decode: Callable[[bytes], T | None]
    ) -> tuple[T | None, str | None]:
        """(the shared answer, None), or (None, our lock token), or (None, None) if we waited enough."""
        value_key, lock_key = self._keys(digest)
        client = self.link.client
        loop = asyncio.get_running_loop()
        give_up = loop.time() + wait
        token = f"{self.link.replica_id}:{uuid.uuid4().hex[:8]}"
        woken = self._woken.setdefault(digest, asyncio.Event())
        self._listen()
        try:
            while True:
                woken.clear()
                async with client.pipeline(transaction=False) as pipe:
                    pipe.get(value_key)
                    pipe.set(lock_key, token, nx=True, px=self.lock_ms)
                    blob, claimed = await pipe.execute()
                if blob is not None:
                    found = decode(blob)
                    if found is not None:
                        return found, None
                    # Unreadable (another release's format): compute, and overwrite it if ours.
                    return None, token if claimed else None
                if claimed:
                    return None, token
                left = give_up - loop.time()
                if left <= 0:
                    log.info("waited %.1f s for another replica's route: computing it here", wait)
                    return None, None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), min(POLL_SECONDS, left))
        finally:
            self._woken.pop(digest, None)

    async def _renew_lock(self, digest: str, token: str) -> None:
        _, lock_key = self._keys(digest)
        while True:
            await asyncio.sleep(self.lock_ms / 3000)
            try:
                await self._renew(keys=[lock_key], args=[token, self.lock_ms])
            except FAILED as exc:
                self.link.mark_down(exc)
                return

    async def _release(self, digest: str, token: str, blob: bytes | None) -> None:
        value_key, lock_key = self._keys(digest)
        try:
            await self._publish(
                keys=[value_key, lock_key, self.channel], args=[token, blob or b"", self.ttl_ms, digest]
            )
        except FAILED as exc:
            self.link.mark_down(exc)  # the lock expires by itself

    def _listen(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._wake_waiters(), name="route-cache-listen")

    async def _wake_waiters(self) -> None:
        """Wake the waiter of each digest some replica published; resubscribe after an outage."""
        while True:
            pubsub = self.link.client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None:
                        event = self._woken.get(message["data"].decode())
                        if event is not None:
                            event.set()
            except FAILED:
                await asyncio.sleep(1.0)  # the waiters' poll covers the gap
            finally:
                with contextlib.suppress(*UNREACHABLE):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def aclose(self) -> None:
        """Stop listening; locks still held expire by themselves."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, *UNREACHABLE):
                await self._listener


def shared_route_cache(settings: Settings, link: RedisLink) -> SharedRouteCache:
    """The shared route cache the settings describe, on ``link``."""
    return SharedRouteCache(
        link,
        ttl_seconds=settings.redis_route_ttl_seconds,
        lock_seconds=settings.redis_route_lock_seconds,
        wait_seconds=settings.redis_route_wait_seconds,
        max_bytes=settings.redis_route_max_bytes,
    )
