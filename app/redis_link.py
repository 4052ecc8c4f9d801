"""The one Redis connection pool a replica uses for everything it shares with the others.

The LM limits, the per-key limits and the shared route cache use its ``client`` and ``key``
scheme. The link tracks whether Redis answers: a component that sees a connection error calls
``mark_down``, which logs once, tells the listeners (the metrics gauge, the limits) and probes
Redis in the background until it answers again, then marks it up and logs that too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable

from redis import asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

# What "Redis is not there" looks like from redis-py: refused, reset, timed out, DNS.
UNREACHABLE: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisUnavailableError(Exception):
    """Redis did not answer; the caller falls back to its local behaviour."""


class RedisLink:
    """A Redis client, a key prefix, this replica's id, and whether Redis answers."""

    def __init__(self, url: str, prefix: str, probe_interval: float = 1.0) -> None:
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            # Fail fast when Redis is gone: the fallback is better than a stalled route.
            socket_connect_timeout=1.0,
            socket_timeout=2.0,
            retry_on_timeout=False,
        )
        self.prefix = prefix
        self.replica_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.probe_interval = probe_interval
        self.up = True
        self._listeners: list[Callable[[bool], None]] = []
        self._probe: asyncio.Task[None] | None = None

    def key(self, *parts: str) -> str:
        """A key under this deployment's prefix."""
        return ":".join((self.prefix, *parts))

    def on_change(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(up)`` now and whenever Redis goes away or comes back."""
        self._listeners.append(listener)
        listener(self.up)

    async def start(self) -> None:
        """Check Redis once; a replica whose Redis is down at start serves on local limits."""
        try:
            await self.client.ping()
        except UNREACHABLE as exc:
            self.mark_down(exc)
        else:
            log.info("limits and route cache shared in Redis (replica %s)", self.replica_id)

    def mark_down(self, exc: BaseException) -> None:
        """Redis failed: switch to local behaviour (once) and probe until it answers."""
        if not self.up:
            return
        self.up = False
        name = type(exc).__name__
        log.warning("Redis unavailable (%s): falling back to local limits and the local route cache", name)
        self._notify()
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._probe_until_up(), name="redis-probe")

    async def _probe_until_up(self) -> None:
        while not self.up:
            await asyncio.sleep(self.probe_interval)
            try:
                await self.client.ping()
            except UNREACHABLE:
                continue
            self.up = True
            log.warning("Redis is back: LM limits and the route cache shared across replicas again")
            self._notify()

    def _notify(self) -> None:
        for listener in self._listeners:
            listener(self.up)

    async def aclose(self) -> None:
        """Stop probing and close the connections."""
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        await self.client.aclose()
