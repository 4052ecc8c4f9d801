"""Per-key limits for all replicas together, in Redis; this replica's own counts when it fails.

Per key, three Redis keys under the deployment's prefix (one hash slot: the key id is the tag):

- ``<prefix>:key-limit:{<key id>}:rate`` — the GCRA theoretical arrival time (ms, Redis server
  time) of the key's routes: a token bucket of ``rate`` routes refilled at ``rate`` a minute.
- ``<prefix>:key-limit:{<key id>}:tokens:<UTC day>`` — the LM tokens spent that day
  (``INCRBY``), expiring two days later.
- ``<prefix>:key-limit:{<key id>}:micro-usd:<UTC day>`` — the LM dollars spent that day, in
  whole micro-dollars (``INCRBY``: integers add exactly, on every replica alike), expiring too.

``admit`` is one Lua script: refuse if the day's tokens or dollars are spent, else book the
``n`` routes at once or none, and say how long until they would fit (the 429's Retry-After); it
never waits. ``spend`` adds to the day's counters in one transaction (one round trip). Every
count also goes to the local ``KeyLimits``, so while Redis is unreachable or answers errors (the
link logs that once and probes until it is back) the limits still hold: each replica holds its
part of them (the key's limits divided by ``TABLEROUTER_REPLICAS``, as the LM limits are), with
what this replica knows of the day's tokens and dollars. The local rate buckets are charged with
every route Redis admits here, and start from the route log's last minute, so an outage (or a
restart during one) starts each key from what is left of its part, never a fresh burst.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from redis.exceptions import RedisError

from app.auth.key_limits import (
    SECONDS_PER_MINUTE,
    KeyLimitError,
    KeyLimits,
    budget_of,
    budget_spent,
    micro_usd,
    rate_of,
    rate_refused,
    spent_at,
    too_many_at_once,
    usd_budget_of,
    usd_budget_spent,
    utc_day,
)
from app.auth.principal import Principal
from app.auth.shared_key_holds import HOLD_SCRIPT, SharedHold
from app.redis_link import UNREACHABLE, RedisLink

__all__ = ["SharedKeyLimits"]

log = logging.getLogger(__name__)
# A limit must never fail a route: an error reply (out of memory, read-only) counts as an outage.
FAILED: tuple[type[BaseException], ...] = (*UNREACHABLE, RedisError)
# The day's counter outlives its day, so a replica whose clock is a little behind still finds it.
DAY_COUNTER_TTL_S = 2 * 24 * 3600

ADMITTED, RATE, TOKENS, USD = 0, 1, 2, 3

# KEYS: the rate's arrival time, today's tokens, today's micro-dollars. ARGV: token budget (0:
# none), emission interval in ms (0: no rate), routes asked for, rate (the burst), micro-dollar
# budget (0: none). Returns {verdict, ms until the routes fit}.
_ADMIT = """
local budget = tonumber(ARGV[1])
if budget > 0 and tonumber(redis.call('GET', KEYS[2]) or '0') >= budget then
  return {2, 0}
end
local usd_budget = tonumber(ARGV[5])
if usd_budget > 0 and tonumber(redis.call('GET', KEYS[3]) or '0') >= usd_budget then
  return {3, 0}
end
local interval = tonumber(ARGV[2])
if interval <= 0 then return {0, 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local new_tat = tat + tonumber(ARGV[3]) * interval
local wait = new_tat - tonumber(ARGV[4]) * interval - now
-- A millisecond of slack: a full burst on an idle key must not be refused by float rounding.
if wait > 1 then return {1, math.ceil(wait)} end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return {0, 0}
"""


class SharedKeyLimits:
    """The per-key rate, daily tokens and daily dollars of every replica, counted in Redis."""

    def __init__(self, link: RedisLink, local: KeyLimits, replicas: int = 1) -> None:
        self.link = link
        self.local = local
        self.replicas = replicas
        self._admit = link.client.register_script(_ADMIT)
        self.hold_script = link.client.register_script(HOLD_SCRIPT)
        self.failures = FAILED

    def _key(self, key_id: str, *parts: str) -> str:
        return self.link.key("key-limit", f"{{{key_id}}}", *parts)

    def key_of(self, key_id: str, *parts: str) -> str:
        """The Redis key of ``key_id``'s counter ``parts`` (all of a key's in one hash slot)."""
        return self._key(key_id, *parts)

    def hold(self, principal: Principal, route_id: str) -> SharedHold | None:
        """Route ``route_id``'s hold on ``principal``'s daily budgets, shared by every replica."""
        if self.local.hold(principal, route_id) is None:  # no budget to hold against
            return None
        return SharedHold(self, principal, route_id)

    def _day_key(self, key_id: str, day: str) -> str:
        return self._key(key_id, "tokens", day)

    def _usd_key(self, key_id: str, day: str) -> str:
        return self._key(key_id, "micro-usd", day)

    async def admit(self, principal: Principal, routes: int = 1) -> None:
        """Count ``routes`` starting for ``principal``; KeyLimitError if over its rate or budget."""
        if not principal.limited or principal.key_id is None:
            return
        rate = rate_of(principal, self.local.default_rate)
        budget = budget_of(principal, self.local.default_tokens)
        usd_budget = usd_budget_of(principal, self.local.default_usd)
        if 0 < rate < routes:
            raise too_many_at_once(routes, rate)
        if self.link.up:
            interval_ms = SECONDS_PER_MINUTE * 1000 / rate if rate > 0 else 0
            day = utc_day()
            keys = [
                self._key(principal.key_id, "rate"),
                self._day_key(principal.key_id, day),
                self._usd_key(principal.key_id, day),
            ]
            try:
                verdict, wait_ms = await self._admit(
                    keys=keys, args=[budget and spent_at(budget), interval_ms, routes, rate, usd_budget]
                )
            except FAILED as exc:
                self.link.mark_down(exc)
            else:
                if int(verdict) == TOKENS:
                    raise budget_spent(budget)
                if int(verdict) == USD:
                    raise usd_budget_spent(usd_budget)
                if int(verdict) == RATE:
                    raise rate_refused(rate, int(wait_ms) / 1000)
                # The fallback's bucket follows what got through here: an outage starts from it.
                self.local.charge(principal, routes, share=self.replicas)
                return
        try:
            await self.local.admit(principal, routes, share=self.replicas)
        except KeyLimitError as exc:
            if self.replicas <= 1:
                raise
            note = f" (this replica's part, 1/{self.replicas}, while the shared counts are unreachable)"
            raise KeyLimitError(f"{exc}{note}", exc.retry_after_s, exc.kind) from None

    async def spend(self, principal: Principal, tokens: int, cost_usd: float | None) -> None:
        """Add a route's LM tokens and dollars (None: prices unknown) to today's counts, here and in Redis."""
        tokens, micro = max(0, tokens), micro_usd(cost_usd)
        if not principal.limited or principal.key_id is None or (tokens <= 0 and micro <= 0):
            return
        self.local.add(principal, tokens, micro)
        if not self.link.up:
            return
        day = utc_day()
        try:
            async with self.link.client.pipeline(transaction=True) as pipe:
                for key, amount in (
                    (self._day_key(principal.key_id, day), tokens),
                    (self._usd_key(principal.key_id, day), micro),
                ):
                    if amount > 0:
                        pipe.incrby(key, amount)
                        pipe.expire(key, DAY_COUNTER_TTL_S)
                await pipe.execute()
        except FAILED as exc:
            self.link.mark_down(exc)

    async def seed(
        self, day: str, tokens: Mapping[str, int], micro_dollars: Mapping[str, int] | None = None
    ) -> None:
        """Set ``day``'s counters that Redis lacks (it restarted, or lost them) to what was spent."""
        counters = [(self._day_key(key_id, day), spent) for key_id, spent in tokens.items()]
        counters += [(self._usd_key(key_id, day), spent) for key_id, spent in (micro_dollars or {}).items()]
        if not counters or not self.link.up:
            return
        try:
            async with self.link.client.pipeline(transaction=False) as pipe:
                for key, spent in counters:
                    pipe.set(key, spent, nx=True, ex=DAY_COUNTER_TTL_S)
                created = await pipe.execute()
        except FAILED as exc:
            self.link.mark_down(exc)
            return
        if any(created):
            log.info("seeded %d of today's counters for %s from the route log", sum(map(bool, created)), day)
