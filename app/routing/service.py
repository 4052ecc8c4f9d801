"""The route: snapshot → chunks → concurrent judge calls → merged, FK-completed ranking.

The fan-out runs against the route's deadline: at the deadline the route answers with the
chunks that finished (``partial``, the tables no finished chunk judged listed as ``unjudged``)
and cancels the rest. When the LM cannot help at all - its circuit breaker is open, or no
chunk answered - the route answers with the lexical judge instead (``degraded``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from app.routing.chunks import Chunk
from app.routing.deadline import Deadline
from app.routing.judge import ChunkOutcome, LMJudge
from app.routing.merge import RankedTable, Vote, complete_join_paths, merge_votes, rank
from app.routing.prepared import PreparedCatalog, RouteScope

LEXICAL_JUDGE = "lexical"
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RouteStats:
    """Counters of one route."""

    tables_considered: int
    chunks: int
    lm_calls: int
    failed_chunks: int
    dropped_names: int
    prompt_tokens: int
    completion_tokens: int
    elapsed_ms: float
    unfinished_chunks: int = 0
    retries: int = 0
    hedges: int = 0
    deadline_ms: float | None = None


@dataclass(frozen=True, slots=True)
class RouteResult:
    """One route's answer."""

    route_id: str
    source: str
    catalog_version: str
    judge: str
    tables: list[RankedTable]
    stats: RouteStats
    partial: bool = False
    unjudged: list[str] = field(default_factory=list)
    degraded: bool = False
    degraded_reason: str | None = None


def _finish(
    ranked: list[RankedTable], prepared: PreparedCatalog, scope: RouteScope, top_k: int, min_score: float
) -> list[RankedTable]:
    """Cut at ``min_score``, add FK join-path tables, and keep the best ``top_k``."""
    selected = [t for t in ranked if t.score >= min_score][:top_k]
    by_name = {t.name: t for t in ranked}
    joined = []
    for path_table in complete_join_paths(selected, prepared.graph):
        if scope.names is not None and path_table.name not in scope.names:
            continue
        known = by_name.get(path_table.name)
        # A table the judge already scored keeps its votes; the join path lifts its score.
        if known is not None:
            path_table = dataclasses.replace(  # noqa: PLW2901
                known, score=max(known.score, path_table.score), reason=path_table.reason, via_fk=True
            )
        joined.append(path_table)
    return rank([*selected, *joined])[:top_k]


def lexical_ranking(
    prepared: PreparedCatalog, scope: RouteScope, question: str
) -> tuple[list[RankedTable], dict[str, float]]:
    """BM25 scores in [0, 1] as a ranking (tables no word matches are left out) and as a prior."""
    scores = prepared.lexical.scores(question)
    names = prepared.lexical.names
    prior = {
        names[i]: float(s)
        for i, s in enumerate(scores)
        if s > 0 and (scope.names is None or names[i] in scope.names)
    }
    top = max(prior.values(), default=0.0)
    prior = {name: s / top for name, s in prior.items()}
    ranked = [
        RankedTable(name, round(score, 4), 0, 0, "lexical match on names, columns and comments")
        for name, score in prior.items()
    ]
    return rank(ranked, prior), prior


def unjudged_tables(scope: RouteScope, votes: Sequence[Vote], prior: Mapping[str, float]) -> list[str]:
    """Tables of the scope no answered chunk judged, best lexical prior first."""
    judged = {v.table for v in votes}
    missing = [c.name for c in scope.cards if c.name not in judged]
    return sorted(missing, key=lambda name: (-prior.get(name, 0.0), name))


async def fan_out(
    judge: LMJudge, question: str, chunks: Sequence[Chunk], deadline: Deadline
) -> list[ChunkOutcome]:
    """Judge every chunk at once until ``deadline``; cancel what is unfinished, and wait for it.

    Waiting for the cancelled calls to unwind is what frees their limiter slots before the
    route answers; it takes no longer than their cancellation.
    """
    outcomes = [ChunkOutcome(c.index) for c in chunks]
    tasks = [
        asyncio.create_task(judge.judge(question, c, deadline, o), name=f"tablerouter-chunk-{c.index}")
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
    """Routes questions over prepared catalogs with the LM judge, or lexically without one."""

    def __init__(self, judge: LMJudge | None, deadline_s: float = 30.0) -> None:
        self.judge = judge
        self.deadline_s = deadline_s

    @property
    def judge_name(self) -> str:
        return self.judge.backend.model if self.judge else LEXICAL_JUDGE

    async def _judged(
        self, judge: LMJudge, question: str, scope: RouteScope, deadline: Deadline
    ) -> tuple[list[ChunkOutcome], str | None]:
        """The chunks' outcomes, or a reason to answer lexically instead."""
        backend = judge.backend
        if not backend.reliability.breaker.accepts_routes():
            return [], "the LM backend's circuit breaker is open"
        with backend.reliability.route_slot(backend.limiter):
            outcomes = await fan_out(judge, question, scope.chunks, deadline.for_lm_calls())
        failed = [o.error for o in outcomes if o.failed and o.error]
        unfinished = sum(not o.answered and not o.failed for o in outcomes)
        if failed or unfinished:
            # One line per route, not per chunk: an outage would otherwise log every chunk.
            first = f" (first: {failed[0]})" if failed else ""
            log.warning("%d chunks failed%s, %d unfinished at the deadline", len(failed), first, unfinished)
        if any(o.answered for o in outcomes):
            return outcomes, None
        reason = f"every LM call failed: {failed[0]}" if failed else "no chunk answered before the deadline"
        return outcomes, reason

    async def route(
        self,
        prepared: PreparedCatalog,
        question: str,
        top_k: int,
        min_score: float,
        schemas: Sequence[str] | None = None,
        *,
        deadline: Deadline | None = None,
    ) -> RouteResult:
        """Route ``question`` over the tables of ``schemas`` (default: all) before ``deadline``.

        Raises UnknownSchemaError for a schema the catalog lacks, and RouteQueueFullError when
        too many routes already wait for the LM backend.
        """
        started = time.perf_counter()
        deadline = deadline or Deadline.after(self.deadline_s)
        scope = prepared.scope(schemas)
        ranked, prior = lexical_ranking(prepared, scope, question)
        outcomes: list[ChunkOutcome] = []
        degraded: str | None = None
        unjudged: list[str] = []
        if self.judge is not None and scope.chunks:
            outcomes, degraded = await self._judged(self.judge, question, scope, deadline)
            if degraded is None:
                votes: list[Vote] = [v for o in outcomes for v in o.votes]
                ranked = rank(merge_votes(votes).values(), prior)
                unjudged = unjudged_tables(scope, votes, prior)
        tables = _finish(ranked, prepared, scope, top_k, min_score)
        stats = RouteStats(
            tables_considered=len(scope.cards),
            chunks=len(outcomes),
            lm_calls=sum(o.lm_calls for o in outcomes),
            failed_chunks=sum(o.failed for o in outcomes),
            dropped_names=sum(o.dropped_names for o in outcomes),
            prompt_tokens=sum(o.prompt_tokens for o in outcomes),
            completion_tokens=sum(o.completion_tokens for o in outcomes),
            elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
            unfinished_chunks=sum(not o.answered and not o.failed for o in outcomes),
            retries=sum(o.retries for o in outcomes),
            hedges=sum(o.hedges for o in outcomes),
            deadline_ms=round(deadline.budget_s * 1000, 1),
        )
        lm_judged = self.judge is not None and degraded is None
        return RouteResult(
            route_id=uuid.uuid4().hex,
            source=prepared.catalog.source,
            catalog_version=prepared.version,
            judge=self.judge_name if lm_judged else LEXICAL_JUDGE,
            tables=tables,
            stats=stats,
            partial=bool(unjudged),
            unjudged=unjudged,
            degraded=degraded is not None,
            degraded_reason=degraded,
        )
