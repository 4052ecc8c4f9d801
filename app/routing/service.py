"""The route: snapshot → shortlist → chunks → concurrent judge calls → merged, FK-completed ranking."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.routing.chunks import Chunk
from app.routing.dense import TableEmbeddings
from app.routing.judge import ChunkOutcome, LMJudge
from app.routing.merge import RankedTable, Vote, blend_prior, complete_join_paths, merge_votes, rank
from app.routing.prepared import PreparedCatalog, RouteScope
from app.routing.shortlist import Shortlist, shortlist

LEXICAL_JUDGE = "lexical"
DEFAULT_SHORTLIST_SIZE = 3000


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
    shortlisted: int = 0
    cache: str = "off"  # the route cache: "hit", "miss" or "off"
    cached_chunks: int = 0  # chunks answered from the verdict cache


@dataclass(frozen=True, slots=True)
class RouteResult:
    """One route's answer."""

    route_id: str
    source: str
    catalog_version: str
    judge: str
    tables: list[RankedTable]
    stats: RouteStats


def finish_ranking(
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


def lexical_ranking(prior: dict[str, float]) -> list[RankedTable]:
    """The shortlist's scores as a ranking: the lexical judge's answer (tables without a score left out)."""
    ranked = [
        RankedTable(name, round(score, 4), 0, 0, "lexical match on names, columns and comments")
        for name, score in prior.items()
    ]
    return rank(ranked, prior)


def unjudged(short: Shortlist, count: int) -> list[RankedTable]:
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
    return rank([*blend_prior(merge_votes(votes), prior, prior_weight), *left_out], prior)


class RouteService:
    """Routes questions over prepared catalogs with the LM judge, or lexically without one."""

    def __init__(
        self,
        judge: LMJudge | None,
        shortlist_size: int = DEFAULT_SHORTLIST_SIZE,
        embeddings: TableEmbeddings | None = None,
        prior_weight: float = 0.0,
    ) -> None:
        self.judge = judge
        self.shortlist_size = shortlist_size
        self.embeddings = embeddings
        self.prior_weight = prior_weight

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
        *,
        on_chunk: Callable[[ChunkOutcome], None] | None = None,
    ) -> RouteResult:
        """Route ``question`` over the tables of ``schemas`` (default: all).

        ``on_chunk`` is told each chunk's outcome as soon as it is judged (progress streaming).
        Raises UnknownSchemaError for a schema the catalog lacks, and AllChunksFailedError
        when no LM call succeeded.
        """
        started = time.perf_counter()
        scope = prepared.scope(schemas)
        dense = None
        # Dense similarity matters where it decides: the cut, or the lexical judge's ranking.
        if self.embeddings is not None and (self.judge is None or len(scope.cards) > self.shortlist_size):
            dense = await self.embeddings.scores(prepared, question)
        short = shortlist(prepared, scope, question, self.shortlist_size, dense)
        outcomes: list[ChunkOutcome] = []
        if self.judge is None or not short.chunks:
            ranked = lexical_ranking(short.prior)
        else:
            judge = self.judge

            async def judged(chunk: Chunk) -> ChunkOutcome:
                outcome = await judge.judge(question, chunk)
                if on_chunk is not None:
                    on_chunk(outcome)
                return outcome

            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(judged(c)) for c in short.chunks]
            outcomes = [t.result() for t in tasks]
            if all(o.failed for o in outcomes):
                raise AllChunksFailedError(outcomes[0].error or "every LM call failed")
            votes: list[Vote] = [v for o in outcomes for v in o.votes]
            # Left-out tables can only show in a full ranking (they have no votes, so score 0).
            rest = unjudged(short, top_k) if short.cut and min_score <= 0 else []
            ranked = rank_votes(votes, short.prior, self.prior_weight, rest)
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
        )
        return RouteResult(
            route_id=uuid.uuid4().hex,
            source=prepared.catalog.source,
            catalog_version=prepared.version,
            judge=self.judge_name,
            tables=tables,
            stats=stats,
        )
