"""A route's progress while its chunks are judged: counts, and the ranking so far.

Built from the route's own plan (``RoutePlanned``), it collects each chunk's outcome as it
lands and ranks the votes so far the way the final answer is ranked (shortlist prior, cut at
``min_score``, FK join paths), so a frontend can show a ranking that converges on the answer.
"""

from __future__ import annotations

from app.routing.judging.outcome import ChunkOutcome
from app.routing.plan import RoutePlanned
from app.routing.ranking.final import finish_ranking, lexical_ranking, rank_votes
from app.routing.ranking.merge import RankedTable, Vote
from app.routing.ranking.relevance import RelevanceScorer

__all__ = ["RouteProgress"]


class RouteProgress:
    """Chunks judged so far of one planned route."""

    def __init__(self, plan: RoutePlanned) -> None:
        self.query = plan.query
        self.prior = plan.shortlist.prior
        self.relevance = plan.relevance
        self.judged = plan.shortlist.names
        self.lexical = lexical_ranking(plan.shortlist.prior)
        self.total = plan.chunks
        self.done = 0
        self.failed = 0
        self.votes: list[Vote] = []

    def replan(self, plan: RoutePlanned) -> None:
        """The route's next step (full cards after a first pass): more chunks, its votes start over."""
        self.total += plan.chunks
        self.prior = plan.shortlist.prior
        self.judged = plan.shortlist.names
        self.votes = []

    def add(self, outcome: ChunkOutcome) -> None:
        """Count one judged chunk."""
        self.done += 1
        # Extra votes for unsettled tables come after the plan's chunks: the total grows with them.
        self.total = max(self.total, self.done)
        self.failed += outcome.failed
        self.votes.extend(outcome.votes)

    def ranking(self) -> list[RankedTable]:
        """The ranking the votes so far give (the lexical one before any vote)."""
        if self.votes:
            ranked = rank_votes(self.votes, RelevanceScorer(self.relevance, self.prior, self.judged))
        else:
            ranked = self.lexical
        q = self.query
        return finish_ranking(ranked, q.prepared, q.scope, q.top_k, q.min_score)
