"""What the route memory lends one route: a prior for the tables similar past questions used.

A remembered table scores the similarity of the closest past question that used it, times the
memory's weight; the tables those are used together with (query logs included) get a share of
it. The scores are added to the shortlist's own before it ranks, so a remembered table gets a
place in the shortlist and lifts the lexical judge's ranking. A table outside the route's scope
(another schema, or one the key's grant hides) gets nothing: the scope mask comes after.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from app.routing.preparation.prepared import PreparedCatalog, RouteScope
from app.routing.retrieval.memory_index import MemoryIndex, MemoryMatch
from app.routing.retrieval.mined_joins import MinedJoins

__all__ = ["MemorySource", "MemoryTuning", "MemoryUse", "memory_scores", "memory_use", "with_memory_reasons"]

# Tables used together with a remembered one get this share of its score (times how often).
CO_USE_SHARE = 0.5
# A table whose memory score is at least this says so in its reason.
REASON_FROM = 0.3


class MemorySource(Protocol):
    """The route memory as the route reads it."""

    async def search(self, source: str, question: str, embedded: str | None = None) -> MemoryMatch: ...

    def index(self, source: str) -> MemoryIndex | None: ...

    def joins(self, source: str) -> MinedJoins: ...

    def version(self, source: str) -> str: ...


@dataclass(frozen=True, slots=True)
class MemoryTuning:
    """How a route uses the memory (the ``MEMORY_*`` settings)."""

    neighbours: int = 5
    weight: float = 1.0
    confident_similarity: float = 0.3
    shortlist_size: int = 20


@dataclass(frozen=True, slots=True)
class MemoryUse:
    """The memory's part in one route: the past questions it found and the scope tables it lifted."""

    matches: int = 0
    best: float = 0.0
    tables: dict[str, float] = field(default_factory=dict)  # scope table → memory score
    shortlist: int = 0  # tables the LM judged because the memory was confident; 0: not narrowed


def memory_use(match: MemoryMatch, index: MemoryIndex | None, scope: RouteScope, weight: float) -> MemoryUse:
    """The scope tables ``match`` lends a score (co-used ones a share), weighted."""
    direct = match.table_scores()
    scores = {t: s * weight for t, s in direct.items()}
    if index is not None and direct:
        for table, share in index.co_used(direct).items():
            lifted = CO_USE_SHARE * share * max(scores.values())
            if lifted > scores.get(table, 0.0):
                scores[table] = lifted
    if scope.names is not None:
        scores = {t: s for t, s in scores.items() if t in scope.names}
    return MemoryUse(len(match.hits), match.best, scores)


def memory_scores(prepared: PreparedCatalog, use: MemoryUse) -> np.ndarray | None:
    """``use``'s scores per catalog table (tables the catalog no longer has are ignored)."""
    if not use.tables:
        return None
    scores = np.zeros(len(prepared.cards), dtype=np.float32)
    for table, score in use.tables.items():
        position = prepared.position(table)
        if position is not None:
            scores[position] = score
    return scores


def with_memory_reasons(reason: str, table: str, use: MemoryUse) -> str:
    """``reason``, saying so when the memory lent ``table`` a prior."""
    score = use.tables.get(table, 0.0)
    if score < REASON_FROM:
        return reason
    return f"{reason}; similar past questions used it (memory {min(score, 1.0):.2f})"
