"""A route's plan: which tables the judge sees, on which cards, in which chunks, within which budget.

- The shortlist (``app.routing.retrieval``) decides which tables are judged at all.
- A per-route token budget shortens it until the estimated spend fits, best prior first.
- Above ``FirstPass.above`` tables a cheap first pass comes first: compact cards (name and
  column names, ~a third of a full card) in large chunks, one vote each, the same short reply;
  only the tables it names - plus those whose chunk did not answer and the best few by prior,
  the safety net for a table the LM overlooks - get full cards and the usual votes. On a
  2,500-table warehouse that is ~5x fewer tokens than full cards for every table; what compact
  cards lose (types, keys, comments) is measured by ``bench/cost.py`` with a lexical judge,
  since an oracle knows the right tables whatever the card says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.routing.judging.outcome import ChunkOutcome
from app.routing.preparation.cards import estimate_tokens
from app.routing.preparation.chunks import Chunk
from app.routing.query import RouteQuery
from app.routing.ranking.relevance import RelevanceModel
from app.routing.retrieval.shortlist import Shortlist, shortlist

__all__ = [
    "CALL_OVERHEAD_TOKENS",
    "FirstPass",
    "RoutePlanned",
    "estimated_tokens",
    "plan_route",
    "second_pass",
]

# What one judge call costs beyond its cards, for planning against a token budget: the system
# message (instructions and the reply's schema, ~350 tokens for the short reply format), the
# section markers and the reply (a short answer names a few tables). An estimate: the route's
# stats report what the LM counted.
CALL_OVERHEAD_TOKENS = 400
REPLY_TOKENS_PER_CALL = 40
# Share of a first pass's tables expected to get full cards, for the estimate before it runs.
SECOND_PASS_SHARE = 0.08


@dataclass(frozen=True, slots=True)
class FirstPass:
    """When and how a large shortlist is narrowed on compact cards first."""

    above: int = 1500  # shortlists larger than this get a first pass; 0: never
    chunk_tokens: int = 8000
    keep_by_prior: int = 20  # best tables by prior that get full cards whatever the first pass says

    def applies(self, tables: int) -> bool:
        return 0 < self.above < tables


@dataclass(frozen=True, slots=True)
class RoutePlanned:
    """A route's plan, told before its LM calls: the shortlist, and whether the LM judges it.

    A route with a first pass is planned twice: first with ``first_pass`` (the compact chunks),
    then, once they answered, with the full-card chunks of the tables they kept.
    """

    query: RouteQuery
    shortlist: Shortlist
    judged: bool  # False: the lexical judge answers, no chunk is asked about
    relevance: RelevanceModel  # how the route's votes become probabilities
    estimated_tokens: int = 0
    budget_cut: bool = False  # the token budget shortened the shortlist
    first_pass: tuple[Chunk, ...] = ()
    budget_cut_reason: str | None = None  # which budget shortened it

    @property
    def chunks(self) -> int:
        """How many chunks the LM is asked about in this step of the plan."""
        if not self.judged:
            return 0
        return len(self.first_pass) if self.first_pass else len(self.shortlist.chunks)


def estimated_tokens(chunks: Sequence[Chunk], question_tokens: int) -> int:
    """The tokens judging ``chunks`` is expected to spend: cards, question, instructions, reply."""
    per_call = CALL_OVERHEAD_TOKENS + question_tokens + REPLY_TOKENS_PER_CALL
    return sum(c.tokens + per_call for c in chunks)


def _steps(
    query: RouteQuery, short: Shortlist, first: FirstPass, question_tokens: int
) -> tuple[tuple[Chunk, ...], int]:
    """The first pass's chunks (none when it does not apply) and the plan's estimated tokens."""
    if not first.applies(len(short.names)):
        return (), estimated_tokens(short.chunks, question_tokens)
    compact = query.prepared.first_pass(short.names, first.chunk_tokens)
    full = estimated_tokens(short.chunks, question_tokens)
    share = min(1.0, SECOND_PASS_SHARE + first.keep_by_prior / len(short.names))
    return compact, estimated_tokens(compact, question_tokens) + int(full * share)


def plan_route(
    query: RouteQuery,
    size: int,
    dense: np.ndarray | None,
    first: FirstPass,
    relevance: RelevanceModel,
    *,
    memory: np.ndarray | None = None,
) -> RoutePlanned:
    """The judged plan of ``query``: the best ``size`` tables, cut further to fit its token budget."""
    short = shortlist(
        query.prepared, query.scope, query.lexical_question, size, dense, carried=query.carried, memory=memory
    )
    question_tokens = estimate_tokens(query.judged_question)
    compact, estimate = _steps(query, short, first, question_tokens)
    budget = query.token_budget
    cut = budget is not None and estimate > budget
    # Fewer tables until the plan fits: the shortlist keeps the best by prior.
    size = len(short.names)
    while budget is not None and estimate > budget and size > 0:
        size = min(size - 1, int(size * budget / estimate * 0.97))
        if size <= 0:
            short, compact, estimate = Shortlist((), (), short.prior, cut=True), (), 0
            break
        short = shortlist(
            query.prepared,
            query.scope,
            query.lexical_question,
            size,
            dense,
            carried=query.carried,
            memory=memory,
        )
        compact, estimate = _steps(query, short, first, question_tokens)
    reason = f"the route's token budget of {budget} LM tokens" if cut else None
    return RoutePlanned(query, short, bool(short.chunks), relevance, estimate, cut, compact, reason)


def second_pass(
    plan: RoutePlanned, outcomes: Sequence[ChunkOutcome], first: FirstPass, limit: int | None = None
) -> RoutePlanned:
    """The full-card plan after a first pass: the tables it named, could not judge, or ranks best by prior.

    ``limit``: at most that many tables, best prior first (the key's budget holds no more).
    """
    short, query = plan.shortlist, plan.query
    keep = {v.table for o in outcomes for v in o.votes if v.relevant}
    keep.update(n for o, c in zip(outcomes, plan.first_pass, strict=True) if not o.answered for n in c.names)
    keep.update(short.names[: first.keep_by_prior])  # the shortlist is ordered by prior
    kept = [n for n in short.names if n in keep][:limit]
    cards = [query.scope.card(query.prepared.card(n)) for n in kept]
    chunks = query.prepared.plan(cards)
    second = Shortlist(tuple(kept), chunks, short.prior, cut=True)
    question_tokens = estimate_tokens(query.judged_question)
    return RoutePlanned(
        query,
        second,
        bool(chunks),
        plan.relevance,
        estimated_tokens(chunks, question_tokens),
        plan.budget_cut,
        budget_cut_reason=plan.budget_cut_reason,
    )
