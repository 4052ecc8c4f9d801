"""The final ranking of a route: votes or the shortlist's scores, cut, completed with join paths."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from app.routing.preparation.prepared import PreparedCatalog, RouteScope
from app.routing.ranking.merge import RankedTable, Vote, complete_join_paths, rank
from app.routing.ranking.relevance import RelevanceScorer
from app.routing.retrieval.mined_joins import MinedJoins, with_mined
from app.routing.retrieval.shortlist import Shortlist

__all__ = [
    "LEXICAL_REASON",
    "finish_ranking",
    "lexical_ranking",
    "rank_votes",
    "unjudged_by_shortlist",
    "unjudged_tables",
]


def finish_ranking(
    ranked: list[RankedTable],
    prepared: PreparedCatalog,
    scope: RouteScope,
    top_k: int,
    min_score: float,
    *,
    mined: MinedJoins | None = None,
) -> list[RankedTable]:
    """Cut at ``min_score``, add FK (and mined) join-path tables, and keep the best ``top_k``."""
    selected = [t for t in ranked if t.score >= min_score][:top_k]
    by_name = {t.name: t for t in ranked}
    joined = []
    # A grant's own graph: a join path never runs through a table the key may not see.
    graph = prepared.graph if scope.grant is None else scope.grant.graph
    if mined is not None and mined.graph:
        graph = with_mined(graph, mined, scope.names)
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


LEXICAL_REASON = "lexical match on names, columns and comments"


def lexical_ranking(prior: dict[str, float], every: Sequence[str] = ()) -> list[RankedTable]:
    """The shortlist's scores as a ranking: the lexical judge's answer.

    Tables without a score are left out, unless named in ``every`` (a full ranking, min_score 0):
    then they follow the others at score 0.
    """
    ranked = [RankedTable(name, round(score, 4), 0, 0, LEXICAL_REASON) for name, score in prior.items()]
    ranked += [RankedTable(name, 0.0, 0, 0, "no lexical match") for name in every if name not in prior]
    return rank(ranked, prior)


def unjudged_by_shortlist(short: Shortlist, count: int) -> list[RankedTable]:
    """The first ``count`` tables the shortlist left out, score 0, in shortlist order."""
    judged = set(short.names)
    best = sorted((n for n in short.prior if n not in judged), key=lambda n: -short.prior[n])[:count]
    return [RankedTable(n, 0.0, 0, 0, f"not shortlisted (score {short.prior[n]:.3f})") for n in best]


def rank_votes(
    votes: list[Vote], scorer: RelevanceScorer, left_out: Sequence[RankedTable] = ()
) -> list[RankedTable]:
    """The ranking votes give: each table's probability of relevance, ordered.

    ``left_out`` are tables the shortlist did not send to the LM; with no votes they score 0.
    """
    return rank([*scorer.ranked(votes), *left_out], scorer.prior)


def unjudged_tables(
    shortlisted: Sequence[str], votes: Sequence[Vote], prior: Mapping[str, float]
) -> list[str]:
    """Shortlisted tables no answered chunk judged, best prior first (the left-out ones were never asked)."""
    judged = {v.table for v in votes}
    missing = [name for name in shortlisted if name not in judged]
    return sorted(missing, key=lambda name: (-prior.get(name, 0.0), name))
