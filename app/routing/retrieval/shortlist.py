"""The shortlist: which tables of a large catalog go to the LM, and the prior for the merge.

Every table gets a score in [0, 1] from three signals:

- BM25 over its card (names split on case and underscores, stemmed, the table's own name
  words boosted);
- BM25 over its whole schema (the schema's cards as one document), because questions are
  about one subject area and a warehouse's schemas usually are subject areas: on Spider's
  166 databases in one catalog this lifts "every gold table in the top 100" from 94 % to 99 %;
- its FK neighbours: a table scores at least ``FK_SHARE`` of its best neighbour, since the
  junction and lookup tables a join needs rarely share words with the question.

With an embeddings endpoint configured, the lexical ranking and the dense (cosine) ranking
are fused by reciprocal-rank fusion. Only the best ``size`` tables are judged; a catalog (or
scope) of at most ``size`` tables is judged whole. Tables left out keep their score as the
order in which they follow the judged ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from app.routing.preparation.chunks import Chunk
from app.routing.preparation.prepared import PreparedCatalog, RouteScope

__all__ = ["Shortlist", "fused_scores", "lexical_scores", "shortlist"]

SCHEMA_WEIGHT = 0.5
FK_SHARE = 0.8
RRF_K = 60


@dataclass(frozen=True, slots=True)
class Shortlist:
    """The tables one route sends to the LM and every scope table's prior."""

    names: tuple[str, ...]  # judged tables, best first
    chunks: tuple[Chunk, ...]  # the judged tables' chunks
    prior: dict[str, float]  # score in (0, 1] of every scope table that has one
    cut: bool  # True when some scope tables were left out


def _scaled(scores: np.ndarray) -> np.ndarray:
    top = float(scores.max()) if scores.size else 0.0
    return scores / top if top > 0 else scores


def lexical_scores(prepared: PreparedCatalog, question: str) -> np.ndarray:
    """Table BM25 plus schema BM25, lifted by FK neighbours; in [0, 1] per catalog table."""
    scores = _scaled(prepared.lexical.scores(question).astype(np.float32))
    schema = _scaled(prepared.schema_lexical.scores(question).astype(np.float32))
    if schema.size > 1:  # one schema: the same for every table, no signal
        scores = scores + SCHEMA_WEIGHT * schema[prepared.table_schema]
    tables, neighbours = prepared.fk_edges
    if tables.size:
        lifted = scores.copy()
        np.maximum.at(lifted, tables, FK_SHARE * scores[neighbours])
        scores = lifted
    return _scaled(scores)


def _ranks(scores: np.ndarray) -> np.ndarray:
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.float32)
    ranks[order] = np.arange(len(scores), dtype=np.float32)
    return ranks


def fused_scores(lexical: np.ndarray, dense: np.ndarray | None) -> np.ndarray:
    """Reciprocal-rank fusion of the lexical and dense rankings, scaled into [0, 1]."""
    if dense is None:
        return lexical
    fused = 1.0 / (RRF_K + _ranks(lexical)) + 1.0 / (RRF_K + _ranks(dense))
    # A table neither signal matched stays at zero: it has no prior.
    fused[(lexical <= 0) & (dense <= 0)] = 0.0
    return _scaled(fused)


def shortlist(
    prepared: PreparedCatalog,
    scope: RouteScope,
    question: str,
    size: int,
    dense: np.ndarray | None = None,
    *,
    carried: Mapping[str, float] | None = None,
    memory: np.ndarray | None = None,
) -> Shortlist:
    """The best ``size`` tables of ``scope`` for ``question`` (all of them when the scope is smaller).

    ``carried`` (a follow-up's previous tables and their scores there) sets a floor under those
    tables' scores, within the scope only; ``memory`` (per catalog table,
    ``app.routing.retrieval.memory_prior``) is added before the scope.
    """
    scores = fused_scores(lexical_scores(prepared, question), dense)
    if memory is not None:
        scores = _scaled(scores + memory)
    names = prepared.lexical.names
    if carried:
        position = {name: i for i, name in enumerate(names)}
        lifted = [(position[n], score) for n, score in carried.items() if n in position]
        scores = scores.copy()
        for i, score in lifted:
            scores[i] = max(float(scores[i]), score)
    if scope.mask is not None:
        scores = np.where(scope.mask, scores, np.float32(-1.0))
    prior = {names[i]: float(scores[i]) for i in np.flatnonzero(scores > 0)}
    if len(scope.cards) <= size:
        ordered = tuple(sorted((c.name for c in scope.cards), key=lambda n: -prior.get(n, 0.0)))
        return Shortlist(ordered, scope.chunks, prior, cut=False)
    # A stable sort: ties keep catalog order, so the same question shortlists the same tables.
    top = np.argsort(-scores, kind="stable")[:size]
    cards = [scope.card(prepared.cards[i]) for i in top]
    return Shortlist(tuple(c.name for c in cards), prepared.plan(cards), prior, cut=True)
