"""The route: snapshot → shortlist → chunks → concurrent judge calls → merged, FK-completed ranking.

The fan-out runs against the route's deadline: at the deadline the route answers with the
chunks that finished (``partial``, the shortlisted tables no finished chunk judged listed as
``unjudged``) and cancels the rest. When the LM cannot help at all - its circuit breaker is
open, or no chunk answered - the route answers with the lexical judge instead (``degraded``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from app.observability.logs import ROUTE_ID
from app.routing.deadline import Deadline
from app.routing.judging.coverage import Coverage
from app.routing.judging.judge import ChunkOutcome, LMJudge
from app.routing.preparation.chunks import Chunk
from app.routing.preparation.prepared import PreparedCatalog, RouteScope
from app.routing.ranking.merge import RankedTable, Vote, blended_votes, complete_join_paths, rank
from app.routing.retrieval.dense import TableEmbeddings
from app.routing.retrieval.shortlist import Shortlist, shortlist

LEXICAL_JUDGE = "lexical"
DEFAULT_SHORTLIST_SIZE = 3000
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
    shortlisted: int = 0
    cache: str = "off"  # the route cache: "hit", "miss" or "off"
    cached_chunks: int = 0  # chunks answered from the verdict cache
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


def finish_ranking(
    ranked: list[RankedTable], prepared: PreparedCatalog, scope: RouteScope, top_k: int, min_score: float
) -> list[RankedTable]:
    """Cut at ``min_score``, add FK join-path tables, and keep the best ``top_k``."""
    selected = [t for t in ranked if t.score >= min_score][:top_k]
    by_name = {t.name: t for t in ranked}
    joined = []
    # A grant's own graph: a join path never runs through a table the key may not see.
    graph = prepared.graph if scope.grant is None else scope.grant.graph
    for path_table in complete_join_paths(selected, graph):
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


def lexical_ranking(prior: dict[str, float]) -> list[RankedTable]:
    """The shortlist's scores as a ranking: the lexical judge's answer (tables without a score left out)."""
    ranked = [
        RankedTable(name, round(score, 4), 0, 0, "lexical match on names, columns and comments")
        for name, score in prior.items()
    ]
    return rank(ranked, prior)


def unjudged_by_shortlist(short: Shortlist, count: int) -> list[RankedTable]:
    """The first ``count`` tables the shortlist left out, score 0, in shortlist order."""
    judged = set(short.names)
    best = sorted((n for n in short.prior if n not in judged), key=lambda n: -short.prior[n])[:count]
    return [RankedTable(n, 0.0, 0, 0, f"not shortlisted (score {short.prior[n]:.3f})") for n in best]


def rank_votes(
    votes: list[Vote], prior: dict[str, float], prior_weight: float, left_out: Sequence[RankedTable] = ()
) -> list[RankedTable]:
    """The ranking votes give: merged, moved toward the shortlist prior, ordered.

    ``left_out`` are tables the shortlist did not send to the LM; with no votes they score 0.
    """
    return rank([*blended_votes(votes, prior, prior_weight), *left_out], prior)


def unjudged_tables(
    shortlisted: Sequence[str], votes: Sequence[Vote], prior: Mapping[str, float]
) -> list[str]:
    """Shortlisted tables no answered chunk judged, best prior first (the left-out ones were never asked)."""
    judged = {v.table for v in votes}
    missing = [name for name in shortlisted if name not in judged]
    return sorted(missing, key=lambda name: (-prior.get(name, 0.0), name))


async def fan_out(
    judge: LMJudge,
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
    """Routes questions over prepared catalogs with the LM judge, or lexically without one."""

    def __init__(
        self,
        judge: LMJudge | None,
        shortlist_size: int = DEFAULT_SHORTLIST_SIZE,
        embeddings: TableEmbeddings | None = None,
        prior_weight: float = 0.0,
        *,
        deadline_s: float = 30.0,
    ) -> None:
        self.judge = judge
        self.shortlist_size = shortlist_size
        self.embeddings = embeddings
        self.prior_weight = prior_weight
        self.deadline_s = deadline_s

    @property
    def judge_name(self) -> str:
        return self.judge.backend.model if self.judge else LEXICAL_JUDGE

    async def _judged(
        self,
        judge: LMJudge,
        question: str,
        chunks: Sequence[Chunk],
        deadline: Deadline,
        on_chunk: Callable[[ChunkOutcome], None] | None,
    ) -> tuple[list[ChunkOutcome], str | None]:
        """The chunks' outcomes, or a reason to answer lexically instead."""
        backend = judge.backend
        if not backend.reliability.breaker.accepts_routes():
            return [], "the LM backend's circuit breaker is open"
        with backend.reliability.route_slot(backend.limiter):
            outcomes = await fan_out(judge, question, chunks, deadline.for_lm_calls(), on_chunk)
        failed = [o.error for o in outcomes if o.failed and o.error]
        unfinished = sum(not o.answered and not o.failed for o in outcomes)
        # A failed chunk whose tables other chunks judged cost the answer nothing: no warning.
        if any(o.failed and not o.covered for o in outcomes) or unfinished:
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
        on_chunk: Callable[[ChunkOutcome], None] | None = None,
        deadline: Deadline | None = None,
        patterns: Sequence[str] | None = None,
    ) -> RouteResult:
        """Route ``question`` over the tables of ``schemas`` (default: all) before ``deadline``.

        ``patterns`` are the asking key's grant on the source (None: every table): the tables
        they do not match are out of the route from the start.

        ``on_chunk`` is told each chunk's outcome as soon as it is judged (progress streaming).
        Raises UnknownSchemaError for a schema the catalog lacks, and RouteQueueFullError when
        too many routes already wait for the LM backend.
        """
        started = time.perf_counter()
        deadline = deadline or Deadline.after(self.deadline_s)
        scope = prepared.scope(schemas, patterns)
        dense = None
        # Dense similarity matters where it decides: the cut, or the lexical judge's ranking.
        if self.embeddings is not None and (self.judge is None or len(scope.cards) > self.shortlist_size):
            dense = await self.embeddings.scores(prepared, question)
        short = shortlist(prepared, scope, question, self.shortlist_size, dense)
        outcomes: list[ChunkOutcome] = []
        degraded: str | None = None
        unjudged: list[str] = []
        if self.judge is None or not short.chunks:
            ranked = lexical_ranking(short.prior)
        else:
            outcomes, degraded = await self._judged(self.judge, question, short.chunks, deadline, on_chunk)
            if degraded is None:
                votes: list[Vote] = [v for o in outcomes for v in o.votes]
                # Left-out tables can only show in a full ranking (they have no votes, so score 0).
                rest = unjudged_by_shortlist(short, top_k) if short.cut and min_score <= 0 else []
                ranked = rank_votes(votes, short.prior, self.prior_weight, rest)
                unjudged = unjudged_tables(short.names, votes, short.prior)
            else:
                ranked = lexical_ranking(short.prior)
        tables = finish_ranking(ranked, prepared, scope, top_k, min_score)
        stats = RouteStats(
            tables_considered=len(scope.cards),
            chunks=len(outcomes),
            lm_calls=sum(o.lm_calls for o in outcomes),
            failed_chunks=sum(o.failed for o in outcomes),
            dropped_names=sum(o.dropped_names for o in outcomes),
            prompt_tokens=sum(o.prompt_tokens for o in outcomes),
            completion_tokens=sum(o.completion_tokens for o in outcomes),
            elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
            shortlisted=len(short.names) if self.judge is not None else 0,
            cached_chunks=sum(o.cached for o in outcomes),
            unfinished_chunks=sum(not o.answered and not o.failed for o in outcomes),
            retries=sum(o.retries for o in outcomes),
            hedges=sum(o.hedges for o in outcomes),
            deadline_ms=round(deadline.budget_s * 1000, 1),
        )
        lm_judged = self.judge is not None and degraded is None
        return RouteResult(
            # The id the logs of this route carry, when the caller set one.
            route_id=ROUTE_ID.get() or uuid.uuid4().hex,
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
