"""Requests- and tokens-per-minute limits for all replicas together: GCRA in a Lua script.

The same reservation arithmetic as ``app.llm.rate_limit.gcra_booking``, on Redis server time:
one script call books ``cost`` units on the shared theoretical arrival time and returns how
long the caller sleeps before its units are due. No waiter polls.
"""

from __future__ import annotations

import asyncio

from app.llm.rate_limit import per_minute
from app.redis_link import UNREACHABLE, RedisLink, RedisUnavailableError

_BOOK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local tolerance = math.max(0, tonumber(ARGV[2]) - 1) * interval
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local wait = math.max(0, tat - tolerance - now)
local new_tat = tat + tonumber(ARGV[3]) * interval
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return string.format('%.3f', wait)
"""


class SharedRateLimit:
    """A per-minute limit on units (requests or tokens) that every replica books from."""

    def __init__(self, link: RedisLink, name: str, per_minute_limit: float) -> None:
        if per_minute_limit <= 0:
            raise ValueError("a rate limit must be positive")
        self.limit = per_minute_limit
        self.key = link.key("rate", name)
        interval_s, self.burst = per_minute(per_minute_limit)
        self.interval_ms = interval_s * 1000
        self._book = link.client.register_script(_BOOK)

    async def take(self, cost: float) -> None:
        """Book ``cost`` units and sleep until due; RedisUnavailableError if Redis fails."""
        try:
            wait_ms = float(await self._book(keys=[self.key], args=[self.interval_ms, self.burst, cost]))
        except UNREACHABLE as exc:
            raise RedisUnavailableError(str(exc)) from exc
        if wait_ms > 0:
            await asyncio.sleep(wait_ms / 1000)
