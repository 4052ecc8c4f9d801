"""Routes' holds on their key's daily budget, in this process (``TokenHold`` for ``KeyLimits``).

A route holds its planned tokens (and their dollars) before its fan-out; what it may hold is
the day's budget less what was spent and what the key's other routes in flight hold. The hold
ends with ``settle``: the route's real tokens and dollars are spent and its hold dropped, so a
route that spent less than it planned gives the rest back at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from app.auth.principal import Principal
from app.routing.token_hold import Held, TokenHold

if TYPE_CHECKING:
    from app.auth.key_limits import KeyLimits

__all__ = ["KeyHold", "LocalHold", "LocalHolds", "granted"]

TOKENS_REASON = "the key's daily budget of {budget} LM tokens"
USD_REASON = "the key's daily dollar budget of ${budget:.6g}"


class KeyHold(TokenHold, Protocol):
    """A route's hold, and its end: the route's real spend replaces it."""

    async def settle(self, tokens: int, cost_usd: float | None) -> None:
        """Spend the route's real ``tokens`` and ``cost_usd`` and drop its hold."""
        ...

    async def forfeit(self) -> None:
        """End a route whose counts were lost (cancelled, failed): spend what it held, drop the hold."""
        ...


@dataclass(frozen=True, slots=True)
class Spend:
    """Tokens and micro-dollars."""

    tokens: int = 0
    micro_usd: int = 0


def granted(want: Spend, left: Spend, budgets: Spend, held_by_others: int) -> tuple[Spend, Held]:
    """What of ``want`` fits in ``left`` under ``budgets`` (0: none), and the ``Held`` to tell the route."""
    tokens, reason = want.tokens, None
    if budgets.tokens > 0 and left.tokens < tokens:
        tokens, reason = max(0, left.tokens), TOKENS_REASON.format(budget=budgets.tokens)
    if budgets.micro_usd > 0 and want.micro_usd > left.micro_usd:
        # Dollars are held in proportion to tokens: the plan's cost is close to linear in them.
        by_usd = max(0, want.tokens * max(0, left.micro_usd) // want.micro_usd)
        if by_usd < tokens:
            tokens, reason = by_usd, USD_REASON.format(budget=budgets.micro_usd / 1_000_000)
    micro = want.micro_usd * tokens // want.tokens if want.tokens > 0 else 0
    return Spend(tokens, micro), Held(tokens, want.tokens - tokens, held_by_others, reason)


class LocalHolds:
    """What each key's routes in flight hold, in this process."""

    def __init__(self) -> None:
        self._held: dict[str, dict[str, Spend]] = {}

    def others(self, key_id: str, route_id: str) -> Spend:
        """What the key's routes other than ``route_id`` hold."""
        held = [s for r, s in self._held.get(key_id, {}).items() if r != route_id]
        return Spend(sum(s.tokens for s in held), sum(s.micro_usd for s in held))

    def put(self, key_id: str, route_id: str, spend: Spend) -> None:
        self._held.setdefault(key_id, {})[route_id] = spend

    def drop(self, key_id: str, route_id: str) -> None:
        routes = self._held.get(key_id, {})
        routes.pop(route_id, None)
        if not routes:
            self._held.pop(key_id, None)


class LocalHold:
    """One route's hold on its key's budget in this process (its part of it, with ``share`` replicas)."""

    def __init__(self, limits: KeyLimits, principal: Principal, route_id: str, share: int = 1) -> None:
        assert principal.key_id is not None  # only a key's routes hold anything
        self.limits = limits
        self.principal = principal
        self.key_id = principal.key_id
        self.route_id = route_id
        self.share = share
        self.held = Spend()  # what the route holds now

    async def hold(self, tokens: int, cost_usd: float | None) -> Held:
        held, self.held = self.limits.grant(self.principal, self.route_id, tokens, cost_usd, self.share)
        return held

    async def settle(self, tokens: int, cost_usd: float | None) -> None:
        await self.limits.spend(self.principal, tokens, cost_usd)
        self.release()

    async def forfeit(self) -> None:
        self.limits.add(self.principal, self.held.tokens, self.held.micro_usd)
        self.release()

    def release(self) -> None:
        """Drop the hold without spending (the route never reached the LM)."""
        self.limits.holds.drop(self.key_id, self.route_id)
