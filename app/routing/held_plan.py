"""A route's plan fitted to what its key's daily budget still holds, before the fan-out.

The route asks its ``TokenHold`` for the plan's estimated tokens; when it gets less (the day is
nearly spent, or other routes in flight hold the rest), the plan is made again under what was
granted - fewer tables, so fewer chunks - and the hold shrinks to the smaller plan's estimate.
When not even one judge call fits, the route is refused (``BudgetExhaustedError``) rather than
answered by a judge it cannot pay for. A first pass's full-card step is held the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from app.routing.judging.outcome import ChunkOutcome
from app.routing.plan import REPLY_TOKENS_PER_CALL, FirstPass, RoutePlanned, estimated_tokens, second_pass
from app.routing.preparation.cards import estimate_tokens
from app.routing.query import RouteQuery
from app.routing.token_hold import BudgetExhaustedError, Held, TokenHold

if TYPE_CHECKING:
    from app.llm.prices import Prices

__all__ = ["estimated_cost", "held_plan", "held_room", "held_second_pass"]

Replan = Callable[[RouteQuery], Awaitable[RoutePlanned]]


def estimated_cost(tokens: int, calls: int, prices: Prices | None) -> float | None:
    """Dollars ``tokens`` over ``calls`` judge calls are expected to cost (no prefix cache assumed).

    Replies get twice the token plan's allowance: they often run longer, and an output token
    costs several input tokens, so the token plan's allowance would undercount dollars.
    """
    if prices is None:
        return None
    completion = min(tokens, 2 * calls * REPLY_TOKENS_PER_CALL)
    return prices.cost(tokens - completion, 0, completion)


def _calls(plan: RoutePlanned) -> int:
    return len(plan.first_pass) + len(plan.shortlist.chunks)


def _smallest_call(plan: RoutePlanned) -> int:
    chunks = plan.first_pass or plan.shortlist.chunks
    smallest = min(chunks, key=lambda c: c.tokens)
    return estimated_tokens([smallest], estimate_tokens(plan.query.question))


def _cut(plan: RoutePlanned, held: Held) -> RoutePlanned:
    return dataclasses.replace(plan, budget_cut=True, budget_cut_reason=held.reason)


async def _hold(hold: TokenHold, plan: RoutePlanned, prices: Prices | None, spent: int = 0) -> Held:
    tokens = spent + plan.estimated_tokens
    return await hold.hold(tokens, estimated_cost(tokens, _calls(plan), prices))


async def held_plan(plan: RoutePlanned, replan: Replan, prices: Prices | None) -> RoutePlanned:
    """``plan``, or a smaller one, whose estimated tokens the query's hold granted.

    Raises BudgetExhaustedError when the grant cannot pay for one judge call.
    """
    hold = plan.query.hold
    if hold is None or not plan.judged:
        return plan
    held = await _hold(hold, plan, prices)
    if held.short_by <= 0:
        return plan
    asked = plan.query.token_budget
    budget = held.tokens if asked is None else min(asked, held.tokens)
    smaller = await replan(dataclasses.replace(plan.query, token_budget=budget))
    if not smaller.judged:
        await hold.hold(0, 0.0)
        raise BudgetExhaustedError(held, _smallest_call(plan))
    await _hold(hold, smaller, prices)  # never more than granted: it shrinks the hold
    return _cut(dataclasses.replace(smaller, query=plan.query), held)


async def held_second_pass(
    plan: RoutePlanned,
    outcomes: Sequence[ChunkOutcome],
    first: FirstPass,
    prices: Prices | None,
) -> RoutePlanned:
    """The full-card step after a first pass, cut (best prior first) to what the hold grants beyond it."""
    second = second_pass(plan, outcomes, first)
    hold = plan.query.hold
    if hold is None:
        return second
    spent = sum(o.prompt_tokens + o.completion_tokens for o in outcomes)
    held = await _hold(hold, second, prices, spent)
    limit, reason = len(second.shortlist.names), None
    while held.short_by > 0 and limit > 0:
        reason = reason or held.reason
        # The estimate is close to linear in the tables kept: shrink in proportion, then check.
        room = max(0, held.tokens - spent)
        limit = min(limit - 1, int(limit * room / max(1, second.estimated_tokens) * 0.97))
        second = second_pass(plan, outcomes, first, max(0, limit))
        held = await _hold(hold, second, prices, spent)
    if reason is None:
        return second
    return dataclasses.replace(second, budget_cut=True, budget_cut_reason=reason)


async def held_room(hold: TokenHold, spent: int, wanted: int, calls: int, prices: Prices | None) -> int:
    """Tokens beyond ``spent`` that ``hold`` grants of ``wanted`` more (over ``calls`` calls in all).

    The hold becomes ``spent`` plus the grant: what a route spent so far replaces its estimate.
    """
    total = spent + wanted
    held = await hold.hold(total, estimated_cost(total, calls, prices))
    return max(0, held.tokens - spent)
