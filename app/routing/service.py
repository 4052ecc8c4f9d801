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
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from app.llm.reliability import RouteQueueFullError
from app.routing.cutoff import RouteCutoff
from app.routing.deadline import Deadline
from app.routing.extra_votes import ExtraRounds, ExtraVotes, extra_rounds
from app.routing.held_plan import held_plan, held_room, held_second_pass
from app.routing.judging.chunk_judge import Judge
from app.routing.judging.coverage import Coverage
from app.routing.judging.outcome import ChunkOutcome
from app.routing.judging.versions import PROGRAM_VERSION
from app.routing.plan import FirstPass, RoutePlanned, estimated_tokens, plan_route
from app.routing.preparation.cards import estimate_tokens
from app.routing.preparation.chunks import Chunk
from app.routing.query import RouteQuery
from app.routing.ranking.answer_coverage import answer_coverage
from app.routing.ranking.final import (
    finish_ranking,
    lexical_ranking,
    rank_votes,
    unjudged_by_shortlist,
    unjudged_tables,
)
from app.routing.ranking.live_tables import prefer_live
from app.routing.ranking.merge import RankedTable, Vote
from app.routing.ranking.relevance import RelevanceModel, RelevanceScorer
from app.routing.result import LEXICAL_JUDGE, RouteResult, RouteStats
from app.routing.retrieval.memory_prior import (
    MemorySource,
    MemoryTuning,
    MemoryUse,
    memory_scores,
    memory_use,
    with_memory_reasons,
)
from app.routing.retrieval.shortlist import shortlist

if TYPE_CHECKING:  # DSPy's: only an LM-backed route has them, and the lexical path never imports DSPy
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
    *,
    cutoff: RouteCutoff | None = None,
) -> list[ChunkOutcome]:
    """Judge every chunk at once until ``deadline`` (or the server's ``cutoff``); cancel what is unfinished.

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
    stop = None if cutoff is None else asyncio.create_task(cutoff.reached(), name="tablerouter-cutoff")
    try:
        if stop is None:
            await asyncio.wait(tasks, timeout=deadline.remaining())
        else:
            chunks_done = asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.wait(
                (chunks_done, stop), timeout=deadline.remaining(), return_when="FIRST_COMPLETED"
            )
    finally:
        if stop is not None:
            stop.cancel()
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
        relevance: RelevanceModel | None = None,
        extra_votes: ExtraVotes | None = None,
        cutoff: RouteCutoff | None = None,
        memory: MemorySource | None = None,
        memory_tuning: MemoryTuning | None = None,
    ) -> None:
        self.relevance = relevance or RelevanceModel(prior_weight=prior_weight)
        self.extra_votes = extra_votes or ExtraVotes()
        self.cutoff = cutoff  # the server's shutdown: routes answer with what finished
        self.memory = memory
        self.memory_tuning = memory_tuning or MemoryTuning()
        self.program_version = program_version
        self.first_pass = first_pass or FirstPass()
        self.judge = judge
        self.prices = prices
        self.shortlist_size = shortlist_size
        self.embeddings = embeddings

    @property
    def judge_name(self) -> str:
        return self.judge.backend.model if self.judge else LEXICAL_JUDGE

    def memory_version(self, source: str) -> str | None:
        """What the memory of ``source`` holds (part of the route cache's key); None: no memory."""
        return None if self.memory is None else self.memory.version(source)

    async def _memory_use(self, query: RouteQuery) -> MemoryUse:
        tuning = self.memory_tuning
        if self.memory is None or tuning.neighbours == 0:
            return MemoryUse()
        # The dense side embeds the text the dense shortlist embeds: one embeddings call per route.
        match = await self.memory.search(query.source, query.question, query.lexical_question)
        return memory_use(match, self.memory.index(query.source), query.scope, tuning.weight)

    async def plan(self, query: RouteQuery, use: MemoryUse | None = None) -> RoutePlanned:
        """The tables the route sends to the judge, in chunks, with every scope table's prior.

        When the memory is confident (its closest past question is similar enough) the LM judges
        a smaller shortlist; the route's stats say so (``memory_shortlist``).
        """
        use = use or MemoryUse()
        memory = memory_scores(query.prepared, use)
        dense = None
        # Dense similarity matters where it decides: the cut, or the lexical judge's ranking.
        if self.embeddings is not None and (
            self.judge is None or len(query.scope.cards) > self.shortlist_size
        ):
            dense = await self.embeddings.scores(query.prepared, query.lexical_question)
        if self.judge is None:
            short = shortlist(
                query.prepared,
                query.scope,
                query.lexical_question,
                self.shortlist_size,
                dense,
                carried=query.carried,
                memory=memory,
            )
            return RoutePlanned(query, short, False, self.relevance)
        size = self.shortlist_size
        if use.best >= self.memory_tuning.confident_similarity:
            size = min(size, self.memory_tuning.shortlist_size)
        return plan_route(query, size, dense, self.first_pass, self.relevance, memory=memory)

    async def _judged(
        self, judge: Judge, query: RouteQuery, chunks: Sequence[Chunk], on_event: OnRouteEvent | None
    ) -> tuple[list[ChunkOutcome], str | None]:
        """The chunks' outcomes, or a reason to answer lexically instead."""
        backend = judge.backend
        if not backend.reliability.breaker.accepts_routes():
            return [], "the LM backend's circuit breaker is open"
        with backend.reliability.route_slot(backend.limiter):
            deadline = query.deadline.for_lm_calls()
            outcomes = await fan_out(
                judge, query.judged_question, chunks, deadline, on_event, cutoff=self.cutoff
            )
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

    @staticmethod
    def _every(query: RouteQuery) -> list[str]:
        """Every scope table when the request asks for the full ranking (min_score 0), else none."""
        return [c.name for c in query.scope.cards] if query.min_score <= 0 else []

    async def _extra_rounds(
        self,
        judge: Judge,
        plan: RoutePlanned,
        votes: list[Vote],
        scorer: RelevanceScorer,
        on_event: OnRouteEvent | None,
        *,
        spent_on: Sequence[ChunkOutcome],
    ) -> ExtraRounds:
        """Extra votes for the tables the first round left unsettled, under the same limiter and deadline."""
        backend, query, short = judge.backend, plan.query, plan.shortlist
        deadline = query.deadline.for_lm_calls()

        async def judged(chunks: Sequence[Chunk]) -> list[ChunkOutcome]:
            return await fan_out(judge, query.judged_question, chunks, deadline, on_event, cutoff=self.cutoff)

        first_tokens = estimated_tokens(short.chunks, estimate_tokens(query.judged_question))
        budget = query.token_budget
        room = None if budget is None else max(0, budget - plan.estimated_tokens)
        if not backend.reliability.breaker.accepts_routes():
            return ExtraRounds()
        if query.hold is not None and self.extra_votes.enabled:
            # Held against the key's day like the first round: what was spent so far plus the
            # extra votes' share, or what the day still grants.
            spent = sum(o.prompt_tokens + o.completion_tokens for o in spent_on)
            wanted = int(self.extra_votes.token_share * first_tokens)
            granted = await held_room(query.hold, spent, wanted, len(spent_on) + 1, self.prices)
            room = granted if room is None else min(room, granted)
        try:
            with backend.reliability.route_slot(backend.limiter):
                return await extra_rounds(
                    judged,
                    votes,
                    scorer,
                    self.extra_votes,
                    question=query.judged_question,
                    judged=short.names,
                    card=lambda name: query.scope.card(query.prepared.card(name)),
                    chunk_tokens=query.prepared.chunk_tokens,
                    seed=query.prepared.seed,
                    first_tokens=first_tokens,
                    token_room=room,
                    deadline=deadline,
                    first_index=max((c.index for c in short.chunks), default=-1) + 1,
                )
        except RouteQueueFullError:
            # The first round answered: a full queue costs the extra votes, not the route.
            return ExtraRounds()

    async def _held_plan(self, query: RouteQuery) -> tuple[RoutePlanned, MemoryUse]:
        """The route's plan, held against its key's day, and what the route memory lent it."""
        use = await self._memory_use(query)
        # Held before the fan-out: a route spends at most what its key's day has left.
        plan = await held_plan(await self.plan(query, use), lambda q: self.plan(q, use), self.prices)
        narrowed = len(plan.shortlist.names) < min(self.shortlist_size, len(query.scope.cards))
        confident = use.best >= self.memory_tuning.confident_similarity
        if plan.judged and narrowed and confident and not plan.budget_cut:
            use = dataclasses.replace(use, shortlist=len(plan.shortlist.names))
        return plan, use

    async def route(self, query: RouteQuery, on_event: OnRouteEvent | None = None) -> RouteResult:
        """Route ``query`` before its deadline, telling ``on_event`` the plan and each chunk's outcome.

        Raises RouteQueueFullError when too many routes already wait for the LM backend, and
        BudgetExhaustedError when the key's day cannot pay for one judge call.
        """
        started = time.perf_counter()
        plan, use = await self._held_plan(query)
        if on_event is not None:
            on_event(plan)
        outcomes: list[ChunkOutcome] = []
        degraded: str | None = None
        unjudged: list[str] = []
        shortlisted, first_pass = len(plan.shortlist.names) if plan.judged else 0, 0
        extra = ExtraRounds()
        log_odds: dict[str, float] | None = None
        if self.judge is not None and plan.judged:
            if plan.first_pass:
                first_pass = len(plan.first_pass)
                outcomes, degraded = await self._judged(self.judge, query, plan.first_pass, on_event)
                if degraded is None:
                    plan = await held_second_pass(plan, outcomes, self.first_pass, self.prices)
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
                scorer = RelevanceScorer(self.relevance, short.prior, short.names)
                extra = await self._extra_rounds(self.judge, plan, votes, scorer, on_event, spent_on=outcomes)
                outcomes.extend(extra.outcomes)
                votes += [v for o in extra.outcomes for v in o.votes]
                # Left-out tables can only show in a full ranking (they have no votes, so score 0).
                cut = short.cut and query.min_score <= 0
                rest = unjudged_by_shortlist(short, query.top_k) if cut else []
                ranked = rank_votes(votes, scorer, rest)
                unjudged = unjudged_tables(short.names, votes, short.prior)
                log_odds = {c.name: scorer.start(c.name) for c in query.scope.cards}
                log_odds.update(scorer.log_odds(votes))
            else:
                ranked = lexical_ranking(plan.shortlist.prior, self._every(query))
        else:
            ranked = lexical_ranking(plan.shortlist.prior, self._every(query))
        ranked = prefer_live(ranked, query.prepared.evidence, plan.shortlist.prior, query.scope.names)
        mined = self.memory.joins(query.source) if self.memory is not None else None
        tables = finish_ranking(
            ranked, query.prepared, query.scope, query.top_k, query.min_score, mined=mined
        )
        if use.tables:
            tables = [_told(t, use) for t in tables]
        lm_judged = self.judge is not None and degraded is None
        returned = {t.name for t in tables}
        between = [] if mined is None else mined.between(returned)
        return RouteResult(
            route_id=query.route_id,
            source=query.source,
            catalog_version=query.prepared.version,
            judge=self.judge_name if lm_judged else LEXICAL_JUDGE,
            tables=tables,
            stats=_stats(
                query,
                plan,
                outcomes,
                started,
                self.prices,
                shortlisted=shortlisted,
                first_pass=first_pass,
                extra=extra,
                memory=use,
            ),
            partial=bool(unjudged) or extra.cut_by_deadline,
            unjudged=unjudged,
            unsettled=extra.unsettled,
            coverage=None if log_odds is None else answer_coverage(log_odds, [t.name for t in tables]),
            degraded=degraded is not None,
            degraded_reason=degraded,
            program_version=self.program_version if lm_judged else None,
            budget_cut=plan.budget_cut,
            budget_unjudged=_left_out(plan) if plan.budget_cut else [],
            budget_cut_reason=plan.budget_cut_reason,
            mined_joins=[
                (j.left_table, j.left_column, j.right_table, j.right_column, j.count) for j in between
            ],
        )


def _told(table: RankedTable, use: MemoryUse) -> RankedTable:
    """``table`` with its reason saying when the memory lent it a prior."""
    reason = with_memory_reasons(table.reason, table.name, use)
    return table if reason == table.reason else dataclasses.replace(table, reason=reason)


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
    extra: ExtraRounds,
    memory: MemoryUse,
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
        extra_rounds=extra.rounds,
        extra_chunks=len(extra.outcomes),
        extra_lm_calls=sum(o.lm_calls for o in extra.outcomes),
        extra_votes=extra.votes_asked,
        extra_tokens=sum(o.prompt_tokens + o.completion_tokens for o in extra.outcomes),
        memory_matches=memory.matches,
        memory_similarity=round(memory.best, 4),
        memory_tables=len(memory.tables),
        memory_shortlist=memory.shortlist,
    )
