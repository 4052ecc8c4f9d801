"""The route use case: route a query for a key, spend its tokens, log it, and say how fresh it is.

The HTTP handlers (single, batch, stream) resolve the request into a ``RouteQuery`` and hand it
here; everything that happens to an answered route happens in this one place, in this order:
the route (counted in the metrics, its id on its log lines), the key's token and dollar spend,
the route log record (off the hot path: a queue drained by a background writer), the catalog's
age.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

from app.auth.key_limits import KeyLimiter
from app.auth.principal import Principal
from app.llm.reliability import RouteQueueFullError
from app.observability.metrics import ROUTE_COST, ROUTE_TOKENS
from app.observability.route_metrics import observed_route
from app.routing.query import RouteQuery
from app.routing.result import LEXICAL_JUDGE, RouteResult, RouteStats
from app.routing.service import OnRouteEvent, Router
from app.routing.token_hold import BudgetExhaustedError
from app.sources.registry import CatalogRegistry
from app.store.records import RouteOutcome, RouteRecord
from app.store.route_log_writer import RouteLogWriter

__all__ = ["RouteAnswer", "RouteAnswering", "route_outcome", "route_record"]


@dataclass(frozen=True, slots=True)
class RouteAnswer:
    """A route's result, and how old the catalog snapshot it ran over is."""

    result: RouteResult
    catalog_stale: bool
    catalog_age_s: float | None


def route_outcome(
    result: RouteResult, catalog_stale: bool = False, catalog_age_s: float | None = None
) -> RouteOutcome:
    """How complete ``result`` is, besides its coverage and partial: the route log's ``outcome``.

    With the age of the snapshot it ran over: a wrong answer from a stale catalog reads differently.
    """
    return RouteOutcome(
        unjudged=list(result.unjudged),
        unsettled=list(result.unsettled),
        degraded=result.degraded,
        degraded_reason=result.degraded_reason,
        budget_cut=result.budget_cut,
        budget_unjudged=list(result.budget_unjudged),
        budget_cut_reason=result.budget_cut_reason,
        catalog_stale=catalog_stale,
        catalog_age_s=catalog_age_s,
    )


def route_record(
    result: RouteResult,
    query: RouteQuery,
    key_id: str | None = None,
    catalog_stale: bool = False,
    catalog_age_s: float | None = None,
) -> RouteRecord:
    """What the route log keeps of one answered route."""
    return RouteRecord(
        route_id=result.route_id,
        created_at=datetime.now(UTC),
        source=result.source,
        catalog_version=result.catalog_version,
        judge=result.judge[:200],
        program_version=None if result.judge == LEXICAL_JUDGE else result.program_version,
        question=query.question,
        top_k=query.top_k,
        min_score=query.min_score,
        schemas=None if query.schemas is None else list(query.schemas),
        tables=[asdict(t) for t in result.tables],
        stats=asdict(result.stats),
        key_id=key_id,
        coverage=result.coverage,
        partial=result.partial,
        outcome=route_outcome(result, catalog_stale, catalog_age_s),
    )


def count_spend(source: str, principal: Principal, stats: RouteStats) -> None:
    """Add a route's tokens and dollars to the per-source, per-key counters of /metrics."""
    key = principal.key_id or "anonymous"
    ROUTE_TOKENS.labels(source, key, "prompt").inc(stats.prompt_tokens)
    ROUTE_TOKENS.labels(source, key, "cached_prompt").inc(stats.cached_prompt_tokens)
    ROUTE_TOKENS.labels(source, key, "completion").inc(stats.completion_tokens)
    if stats.cost_usd:
        ROUTE_COST.labels(source, key).inc(stats.cost_usd)


@dataclass(frozen=True, slots=True)
class RouteAnswering:
    """What answering a route needs: the router, the key limits, the route log, the sources."""

    router: Router
    limits: KeyLimiter
    route_log: RouteLogWriter
    registry: CatalogRegistry

    async def answer(
        self, query: RouteQuery, principal: Principal, on_event: OnRouteEvent | None = None
    ) -> RouteAnswer:
        """Route ``query`` for ``principal``; raises RouteQueueFullError when the LM queue is full.

        Raises BudgetExhaustedError when the key's day cannot pay for one judge call. The route
        holds its planned tokens against the key's day before its fan-out; the hold is settled
        to what it spent, or - when the route stops without its counts (cancelled, failed) - to
        what it held, since its calls may have been paid for.
        """
        hold = self.limits.hold(principal, query.route_id)
        with observed_route(query.route_id) as observed:
            try:
                result = await self.router.route(replace(query, hold=hold) if hold else query, on_event)
            except (RouteQueueFullError, BudgetExhaustedError) as exc:
                observed.outcome = "queue_full" if isinstance(exc, RouteQueueFullError) else "rejected"
                if hold is not None:
                    await hold.settle(0, None)  # refused before any LM call
                raise
            except BaseException:
                if hold is not None:
                    await asyncio.shield(hold.forfeit())
                raise
            observed.outcome = "degraded" if result.degraded else "partial" if result.partial else "ok"
        stats = result.stats
        count_spend(query.source, principal, stats)
        tokens = stats.prompt_tokens + stats.completion_tokens
        if hold is None:
            await self.limits.spend(principal, tokens, stats.cost_usd)
        else:
            await hold.settle(tokens, stats.cost_usd)
        source = self.registry.sources[query.source]
        stale, age_s = source.stale, source.age_s()  # once: the log keeps what the answer says
        self.route_log.record(route_record(result, query, principal.key_id, stale, age_s))
        return RouteAnswer(result, stale, age_s)
