"""The route: query → plan (shortlist, chunks) → concurrent judge calls → merged, FK-completed ranking.

``RouteService.route`` is the one place a route is computed. It tells its caller what happens
as it happens (``on_event``): first the plan (``RoutePlanned``: the shortlist and the chunks the
LM will be asked about), then each chunk's outcome as it lands. The stream shows progress from
those events, so its totals are the route's own.

The fan-out runs against the query's deadline: at the deadline the route answers with the
chunks that finished (``partial``, the shortlisted tables no finished chunk judged listed as
``unjudged``) and cancels the rest. When the LM cannot help at all - its circuit breaker is
open, or no chunk answered - the route answers with the lexical judge instead (``degraded``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from app.routing.deadline import Deadline
from app.routing.judging.coverage import Coverage
from app.routing.judging.outcome import ChunkOutcome
from app.routing.judging.versions import PROGRAM_VERSION
from app.routing.plan import FirstPass, RoutePlanned, plan_route, second_pass
from app.routing.preparation.chunks import Chunk
from app.routing.query import RouteQuery
from app.routing.ranking.final import (
    finish_ranking,
    lexical_ranking,
    rank_votes,
    unjudged_by_shortlist,
    unjudged_tables,
)
from app.routing.ranking.live_tables import prefer_live
from app.routing.ranking.merge import Vote
from app.routing.result import LEXICAL_JUDGE, RouteResult, RouteStats
from app.routing.retrieval.shortlist import shortlist

if TYPE_CHECKING:  # DSPy's: only an LM-backed route has them, and the lexical path never imports DSPy
    from app.llm.backend import LMBackend
    from app.llm.prices import Prices
    from app.routing.retrieval.dense import TableEmbeddings

__all__ = [
    "DEFAULT_SHORTLIST_SIZE",
    "Judge",
    "OnRouteEvent",
    "RouteEvent",
    "RouteService",
    "Router",
    "fan_out",
]

DEFAULT_SHORTLIST_SIZE = 3000
# Tables the budget kept from the judge that the answer names (best lexical match first).
MAX_BUDGET_UNJUDGED = 100
log = logging.getLogger(__name__)


class Judge(Protocol):
    """What the route needs of a judge: its backend (breaker, limiter, model) and one chunk's verdicts."""

    @property
    def backend(self) -> LMBackend: ...

    async def judge(
        self,
        question: str,
        chunk: Chunk,
        deadline: Deadline,
        outcome: ChunkOutcome,
        coverage: Coverage | None = None,
    ) -> None: ...


RouteEvent = RoutePlanned | ChunkOutcome
OnRouteEvent = Callable[[RouteEvent], None]


class Router(Protocol):
    """Anything that answers a route query: the service, or a cache around it."""

    async def route(self, query: RouteQuery, on_event: OnRouteEvent | None = None) -> RouteResult: ...


async def fan_out(
    judge: Judge,
    question: str,
    chunks: Sequence[Chunk],
    deadline: Deadline,
    on_chunk: Callable[[ChunkOutcome], None] | None = None,
) -> list[ChunkOutcome]:
    """Judge every chunk at once until ``deadline``; cancel what is unfinished, and wait for it.

    Waiting for the cancelled calls to unwind is what frees their limiter slots before the
    route answers; it takes no longer than their cancellation.
    """
    outcomes = [ChunkOutcome(c.index) for c in chunks]
    coverage = Coverage(chunks)

    async def judged(chunk: Chunk, outcome: ChunkOutcome) -> None:
        try:
            await judge.judge(question, chunk, deadline, outcome, coverage)
        finally:
            coverage.settle(chunk.index, outcome.answered)
        if on_chunk is not None:
            on_chunk(outcome)

    tasks = [
        asyncio.create_task(judged(c, o), name=f"tablerouter-chunk-{c.index}")
        for c, o in zip(chunks, outcomes, strict=True)
    ]
    try:
        await asyncio.wait(tasks, timeout=deadline.remaining())
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return outcomes


class RouteService:
    """Routes queries with the LM judge, or lexically without one."""

    def __init__(
        self,
        judge: Judge | None,
        shortlist_size: int = DEFAULT_SHORTLIST_SIZE,
        embeddings: TableEmbeddings | None = None,
        prior_weight: float = 0.0,
        *,
        prices: Prices | None = None,
        program_version: str = PROGRAM_VERSION,
        first_pass: FirstPass | None = None,
    ) -> None:
        self.program_version = program_version
        self.first_pass = first_pass or FirstPass()
        self.judge = judge
        self.prices = prices
        self.shortlist_size = shortlist_size
        self.embeddings = embeddings
        self.prior_weight = prior_weight

    @property
    def judge_name(self) -> str:
        return self.judge.backend.model if self.judge else LEXICAL_JUDGE

    async def plan(self, query: RouteQuery) -> RoutePlanned:
        """The tables the route sends to the judge, in chunks, with every scope table's prior."""
        dense = None
        # Dense similarity matters where it decides: the cut, or the lexical judge's ranking.
        if self.embeddings is not None and (
            self.judge is None or len(query.scope.cards) > self.shortlist_size
        ):
            dense = await self.embeddings.scores(query.prepared, query.question)
        if self.judge is None:
            short = shortlist(query.prepared, query.scope, query.question, self.shortlist_size, dense)
            return RoutePlanned(query, short, False, self.prior_weight)
        return plan_route(query, self.shortlist_size, dense, self.first_pass, self.prior_weight)

    async def _judged(
        self, judge: Judge, query: RouteQuery, chunks: Sequence[Chunk], on_event: OnRouteEvent | None
    ) -> tuple[list[ChunkOutcome], str | None]:
        """The chunks' outcomes, or a reason to answer lexically instead."""
        backend = judge.backend
        if not backend.reliability.breaker.accepts_routes():
            return [], "the LM backend's circuit breaker is open"
        with backend.reliability.route_slot(backend.limiter):
            deadline = query.deadline.for_lm_calls()
            outcomes = await fan_out(judge, query.question, chunks, deadline, on_event)
        failed = [o.error for o in outcomes if o.failed and o.error]
        unfinished = sum(not o.answered and not o.failed for o in outcomes)
        # A failed chunk whose tables other chunks judged cost the answer nothing: no warning.
        if any(o.failed and not o.covered for o in outcomes) or unfinished:
            # One line per route, not per chunk: an outage would otherwise log every chunk.
            first = f" (first: {failed[0]})" if failed else ""
            log.warning(
                "route %s: %d chunks failed%s, %d unfinished at the deadline",
                query.route_id,
                len(failed),
                first,
                unfinished,
            )
        if any(o.answered for o in outcomes):
            return outcomes, None
        reason = f"every LM call failed: {failed[0]}" if failed else "no chunk answered before the deadline"
        return outcomes, reason

    async def route(self, query: RouteQuery, on_event: OnRouteEvent | None = None) -> RouteResult:
        """Route ``query`` before its deadline, telling ``on_event`` the plan and each chunk's outcome.

        Raises RouteQueueFullError when too many routes already wait for the LM backend.
        """
        started = time.perf_counter()
        plan = await self.plan(query)
        if on_event is not None:
            on_event(plan)
        outcomes: list[ChunkOutcome] = []
        degraded: str | None = None
        unjudged: list[str] = []
        shortlisted, first_pass = len(plan.shortlist.names) if plan.judged else 0, 0
        if self.judge is None or not plan.judged:
            ranked = lexical_ranking(plan.shortlist.prior)
        else:
            if plan.first_pass:
                first_pass = len(plan.first_pass)
                outcomes, degraded = await self._judged(self.judge, query, plan.first_pass, on_event)
                if degraded is None:
                    plan = second_pass(plan, outcomes, self.first_pass)
                    if on_event is not None:
                        on_event(plan)
            first = len(outcomes)
            if degraded is None:
                judged, degraded = await self._judged(self.judge, query, plan.shortlist.chunks, on_event)
                outcomes.extend(judged)
            if degraded is None:
                # Only full cards vote: the first pass decided which tables get them.
                votes: list[Vote] = [v for o in outcomes[first:] for v in o.votes]
                short = plan.shortlist
                # Left-out tables can only show in a full ranking (they have no votes, so score 0).
                cut = short.cut and query.min_score <= 0
                rest = unjudged_by_shortlist(short, query.top_k) if cut else []
                ranked = rank_votes(votes, short.prior, self.prior_weight, rest)
                unjudged = unjudged_tables(short.names, votes, short.prior)
            else:
                ranked = lexical_ranking(plan.shortlist.prior)
        ranked = prefer_live(ranked, query.prepared.evidence, plan.shortlist.prior, query.scope.names)
        tables = finish_ranking(ranked, query.prepared, query.scope, query.top_k, query.min_score)
        lm_judged = self.judge is not None and degraded is None
        return RouteResult(
            route_id=query.route_id,
            source=query.source,
            catalog_version=query.prepared.version,
            judge=self.judge_name if lm_judged else LEXICAL_JUDGE,
            tables=tables,
            stats=_stats(
                query, plan, outcomes, started, self.prices, shortlisted=shortlisted, first_pass=first_pass
            ),
            partial=bool(unjudged),
            unjudged=unjudged,
            degraded=degraded is not None,
            degraded_reason=degraded,
            program_version=self.program_version if lm_judged else None,
            budget_cut=plan.budget_cut,
            budget_unjudged=_left_out(plan) if plan.budget_cut else [],
        )


def _left_out(plan: RoutePlanned) -> list[str]:
    """The scope tables the plan leaves out, best prior first (at most MAX_BUDGET_UNJUDGED)."""
    judged, prior = set(plan.shortlist.names), plan.shortlist.prior
    left = [c.name for c in plan.query.scope.cards if c.name not in judged]
    return sorted(left, key=lambda n: (-prior.get(n, 0.0), n))[:MAX_BUDGET_UNJUDGED]


def _stats(
    query: RouteQuery,
    plan: RoutePlanned,
    outcomes: Sequence[ChunkOutcome],
    started: float,
    prices: Prices | None,
    *,
    shortlisted: int,
    first_pass: int,
) -> RouteStats:
    prompt = sum(o.prompt_tokens for o in outcomes)
    cached = sum(o.cached_prompt_tokens for o in outcomes)
    completion = sum(o.completion_tokens for o in outcomes)
    return RouteStats(
        tables_considered=len(query.scope.cards),
        chunks=len(outcomes),
        lm_calls=sum(o.lm_calls for o in outcomes),
        failed_chunks=sum(o.failed for o in outcomes),
        dropped_names=sum(o.dropped_names for o in outcomes),
        prompt_tokens=prompt,
        completion_tokens=completion,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
        shortlisted=shortlisted,
        first_pass_chunks=first_pass,
        first_pass_kept=len(plan.shortlist.names) if first_pass else 0,
        cached_chunks=sum(o.cached for o in outcomes),
        unfinished_chunks=sum(not o.answered and not o.failed for o in outcomes),
        retries=sum(o.retries for o in outcomes),
        hedges=sum(o.hedges for o in outcomes),
        deadline_ms=round(query.deadline.budget_s * 1000, 1),
        cached_prompt_tokens=cached,
        token_budget=query.token_budget,
        estimated_tokens=plan.estimated_tokens,
        cost_usd=None if prices is None else round(prices.cost(prompt, cached, completion), 6),
    )
