"""A route's progress while its chunks are judged: counts, and the ranking so far.

The route service tells each chunk's outcome as it lands (``on_chunk``); this collects them
and ranks the votes so far the way the final answer is ranked (shortlist prior, cut at
``min_score``, FK join paths), so a frontend can show a ranking that converges on the answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.routing.judging.judge import ChunkOutcome
from app.routing.preparation.prepared import PreparedCatalog
from app.routing.ranking.merge import RankedTable, Vote
from app.routing.retrieval.shortlist import shortlist
from app.routing.service import finish_ranking, lexical_ranking, rank_votes


class RouteProgress:
    """Chunks judged so far of one route, over the same scope the route uses."""

    def __init__(
        self,
        prepared: PreparedCatalog,
        question: str,
        top_k: int,
        min_score: float,
        schemas: Sequence[str] | None,
        *,
        judged: bool,
        prior_weight: float,
        shortlist_size: int,
        patterns: Sequence[str] | None = None,
    ) -> None:
        """Raises UnknownSchemaError for a schema the catalog lacks (as the route would)."""
        self.prepared = prepared
        self.scope = prepared.scope(schemas, patterns)
        self.top_k = top_k
        self.min_score = min_score
        self.prior_weight = prior_weight
        # The route's own shortlist, less any dense signal (the route may fetch one; the
        # ranking shown before the answer can do without it).
        short = shortlist(prepared, self.scope, question, shortlist_size, None)
        self.prior = short.prior
        self.lexical = lexical_ranking(short.prior)
        # Without an LM judge the route asks about no chunk at all.
        self.total = len(short.chunks) if judged else 0
        self.done = 0
        self.failed = 0
        self.votes: list[Vote] = []

    def add(self, outcome: ChunkOutcome) -> None:
        """Count one judged chunk."""
        self.done += 1
        self.failed += outcome.failed
        self.votes.extend(outcome.votes)

    def ranking(self) -> list[RankedTable]:
        """The ranking the votes so far give (the lexical one before any vote)."""
        ranked = rank_votes(self.votes, self.prior, self.prior_weight) if self.votes else self.lexical
        return finish_ranking(ranked, self.prepared, self.scope, self.top_k, self.min_score)
