"""The route: snapshot → chunks → concurrent judge calls → merged, FK-completed ranking."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from app.observability.logs import ROUTE_ID
from app.routing.judge import ChunkOutcome, LMJudge
from app.routing.merge import RankedTable, Vote, complete_join_paths, merge_votes, rank
from app.routing.prepared import PreparedCatalog, RouteScope

LEXICAL_JUDGE = "lexical"


class AllChunksFailedError(Exception):
    """Every LM call of a route failed: the LM backend is unreachable or broken."""


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


@dataclass(frozen=True, slots=True)
class RouteResult:
    """One route's answer."""

    route_id: str
    source: str
    catalog_version: str
    judge: str
    tables: list[RankedTable]
    stats: RouteStats


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


class RouteService:
    """Routes questions over prepared catalogs with the LM judge, or lexically without one."""

    def __init__(self, judge: LMJudge | None) -> None:
        self.judge = judge

    @property
    def judge_name(self) -> str:
        return self.judge.backend.model if self.judge else LEXICAL_JUDGE

    async def route(
        self,
        prepared: PreparedCatalog,
        question: str,
        top_k: int,
        min_score: float,
        schemas: Sequence[str] | None = None,
    ) -> RouteResult:
        """Route ``question`` over the tables of ``schemas`` (default: all).

        Raises UnknownSchemaError for a schema the catalog lacks, and AllChunksFailedError
        when no LM call succeeded.
        """
        started = time.perf_counter()
        scope = prepared.scope(schemas)
        ranked, prior = lexical_ranking(prepared, scope, question)
        outcomes: list[ChunkOutcome] = []
        if self.judge is not None and scope.chunks:
            judge = self.judge
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(judge.judge(question, c)) for c in scope.chunks]
            outcomes = [t.result() for t in tasks]
            if all(o.failed for o in outcomes):
                raise AllChunksFailedError(outcomes[0].error or "every LM call failed")
            votes: list[Vote] = [v for o in outcomes for v in o.votes]
            ranked = rank(merge_votes(votes).values(), prior)
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
        )
        return RouteResult(
            # The id the logs of this route carry, when the caller set one.
            route_id=ROUTE_ID.get() or uuid.uuid4().hex,
            source=prepared.catalog.source,
            catalog_version=prepared.version,
            judge=self.judge_name,
            tables=tables,
            stats=stats,
        )
