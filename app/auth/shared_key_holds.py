"""Routes' holds on their key's daily budget for all replicas together, in Redis.

Per key and UTC day, one hash ``<prefix>:key-limit:{<key id>}:holds:<day>`` (the key's hash
slot) maps each route in flight to ``"<tokens> <micro-dollars> <expiry ms>"``. ``hold`` is one
Lua script: drop the expired holds, sum the others, grant what the day's counters and the
other holds leave, and store this route's hold. ``settle`` adds the real spend to the day's
counters, then drops the hold (in that order: for a moment both count, never neither). A hold
expires ``HOLD_TTL_S`` after it was set, so a replica that dies mid-route frees its holds by
itself. While Redis is unreachable a route holds against this replica's part of the budget,
as the rest of the key limits fall back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.auth.key_holds import TOKENS_REASON, USD_REASON, LocalHold, Spend
from app.auth.key_limits import MICRO_USD, micro_usd, utc_day
from app.auth.principal import Principal
from app.routing.token_hold import Held

if TYPE_CHECKING:
    from app.auth.shared_key_limits import SharedKeyLimits

__all__ = ["HOLD_SCRIPT", "HOLD_TTL_S", "SharedHold"]

# Longer than the longest route (ROUTE_DEADLINE_MS is at most 600 s) and its shutdown.
HOLD_TTL_S = 660

# KEYS: today's tokens, today's micro-dollars, today's holds. ARGV: route id, tokens and
# micro-dollars asked for, token budget (0: none), micro-dollar budget (0: none), hold TTL in
# ms. Returns {tokens granted, tokens the other routes hold, 0/1/2: uncut/tokens cut/dollars cut}.
HOLD_SCRIPT = """
local t = redis.call('TIME')
local now = math.floor(tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000)
local held = redis.call('HGETALL', KEYS[3])
local other_t, other_u = 0, 0
for i = 1, #held, 2 do
  local tok, mic, exp = string.match(held[i + 1], '^(%d+) (%d+) (%d+)$')
  if exp == nil or tonumber(exp) < now then
    redis.call('HDEL', KEYS[3], held[i])
  elseif held[i] ~= ARGV[1] then
    other_t, other_u = other_t + tonumber(tok), other_u + tonumber(mic)
  end
end
local want, micro = tonumber(ARGV[2]), tonumber(ARGV[3])
local granted, cut = want, 0
local budget = tonumber(ARGV[4])
if budget > 0 then
  local left = budget - tonumber(redis.call('GET', KEYS[1]) or '0') - other_t
  if left < granted then granted, cut = math.max(0, left), 1 end
end
local usd_budget = tonumber(ARGV[5])
if usd_budget > 0 and micro > 0 then
  local left = usd_budget - tonumber(redis.call('GET', KEYS[2]) or '0') - other_u
  if left < micro then
    local by_usd = math.max(0, math.floor(want * left / micro))
    if by_usd < granted then granted, cut = by_usd, 2 end
  end
end
local granted_micro = 0
if want > 0 then granted_micro = math.floor(micro * granted / want) end
if granted > 0 or granted_micro > 0 then
  local ttl = tonumber(ARGV[6])
  redis.call('HSET', KEYS[3], ARGV[1], string.format('%d %d %d', granted, granted_micro, now + ttl))
  redis.call('PEXPIRE', KEYS[3], 2 * 24 * 3600 * 1000)
else
  redis.call('HDEL', KEYS[3], ARGV[1])
end
return {granted, other_t, cut}
"""


class SharedHold:
    """One route's hold on its key's budget in Redis; this replica's part while Redis is out."""

    def __init__(self, limits: SharedKeyLimits, principal: Principal, route_id: str) -> None:
        assert principal.key_id is not None  # only a key's routes hold anything
        self.limits = limits
        self.principal = principal
        self.key_id = principal.key_id
        self.route_id = route_id
        self.day = utc_day()
        self.fallback = LocalHold(limits.local, principal, route_id, limits.replicas)
        self.held = Spend()  # what the route holds now

    def _holds_key(self) -> str:
        return self.limits.key_of(self.key_id, "holds", self.day)

    async def hold(self, tokens: int, cost_usd: float | None) -> Held:
        link = self.limits.link
        if link.up:
            budgets = self.limits.local.budgets(self.principal)
            keys = [
                self.limits.key_of(self.key_id, "tokens", self.day),
                self.limits.key_of(self.key_id, "micro-usd", self.day),
                self._holds_key(),
            ]
            args: list[str | int] = [
                self.route_id,
                max(0, tokens),
                micro_usd(cost_usd),
                budgets.tokens,
                budgets.micro_usd,
                HOLD_TTL_S * 1000,
            ]
            try:
                got, others, cut = await self.limits.hold_script(keys=keys, args=args)
            except self.limits.failures as exc:
                link.mark_down(exc)
            else:
                reason = {
                    1: TOKENS_REASON.format(budget=budgets.tokens),
                    2: USD_REASON.format(budget=budgets.micro_usd / MICRO_USD),
                }.get(int(cut))
                got, asked = int(got), max(0, tokens)
                micro = micro_usd(cost_usd)
                self.held = Spend(got, micro * got // asked if asked else 0)
                return Held(got, asked - got, int(others), reason)
        held = await self.fallback.hold(tokens, cost_usd)
        self.held = self.fallback.held
        return held

    async def settle(self, tokens: int, cost_usd: float | None) -> None:
        await self._end(tokens, micro_usd(cost_usd))

    async def forfeit(self) -> None:
        await self._end(self.held.tokens, self.held.micro_usd)

    async def _end(self, tokens: int, micro: int) -> None:
        await self.limits.spend(self.principal, tokens, micro / MICRO_USD)
        self.fallback.release()
        if not self.limits.link.up:
            return
        try:
            await self.limits.link.client.hdel(self._holds_key(), self.route_id)
        except self.limits.failures as exc:
            self.limits.link.mark_down(exc)  # the hold expires by itself
