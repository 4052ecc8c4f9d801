"""Tokens a route holds against its key's daily budget while it runs.

Admission only checks that a key's day is not spent yet; without a hold, every route admitted
before the budget ran out (a batch of 32, a burst of concurrent requests, a long stream) would
spend as if it were alone. So a route asks its ``TokenHold`` for its planned tokens (and the
dollars they cost, where the key has a dollar budget) before the fan-out: the hold grants what
the day has left after what was spent and what the other routes in flight hold, and the route
plans to fit what it got. The caller settles the hold to the real count when the route ends.
``app.auth`` implements it, in this process or in Redis for every replica.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["BudgetExhaustedError", "Held", "TokenHold"]


@dataclass(frozen=True, slots=True)
class Held:
    """What a hold granted: the tokens this route may spend, and why it got less than it asked."""

    tokens: int
    short_by: int = 0  # tokens asked for and not granted
    held_by_others: int = 0  # tokens other routes in flight hold against the same budget
    reason: str | None = None  # which budget cut it, when it did


class TokenHold(Protocol):
    """One route's hold on its key's daily budget."""

    async def hold(self, tokens: int, cost_usd: float | None) -> Held:
        """Hold ``tokens`` (costing ``cost_usd``; None: unknown) in all, or what is left if less."""
        ...


class BudgetExhaustedError(Exception):
    """Nothing the judge could be asked fits in what the key's day has left."""

    def __init__(self, held: Held, needed: int) -> None:
        others = f" ({held.held_by_others} held by routes in flight)" if held.held_by_others else ""
        super().__init__(
            f"{held.reason or 'the daily budget'}: {held.tokens} LM tokens left{others}, "
            f"less than the smallest judge call of this route (~{needed} tokens)"
        )
        self.held = held
        self.needed = needed
