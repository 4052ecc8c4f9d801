"""What one route answers: the ranked tables, how it went, and its counters."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.routing.ranking.merge import RankedTable

__all__ = ["LEXICAL_JUDGE", "RouteResult", "RouteStats"]

LEXICAL_JUDGE = "lexical"


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
    cached_prompt_tokens: int = 0  # prompt tokens the provider served from its prefix cache
    cost_usd: float | None = None  # None: the LM's prices are unknown
    first_pass_chunks: int = 0  # compact-card chunks of a large catalog's first pass
    first_pass_kept: int = 0  # tables the first pass sent on to full cards
    token_budget: int | None = None
    estimated_tokens: int = 0
    extra_rounds: int = 0  # rounds of extra votes for unsettled tables
    extra_chunks: int = 0
    extra_lm_calls: int = 0  # LM calls of those rounds (also counted in lm_calls)
    extra_votes: int = 0  # table verdicts those rounds asked for
    extra_tokens: int = 0  # prompt and completion tokens of those rounds (also in the totals)
    memory_matches: int = 0  # similar past questions the route memory found
    memory_similarity: float = 0.0  # the closest one's similarity
    memory_tables: int = 0  # scope tables the memory lent a prior
    memory_shortlist: int = 0  # tables the LM judged because the memory was confident; 0: not narrowed


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
    program_version: str | None = None  # the judge program's version; None for the lexical judge
    budget_cut: bool = False  # the token budget kept some scope tables from the judge
    budget_unjudged: list[str] = field(default_factory=list)
    budget_cut_reason: str | None = None  # which budget cut the plan: the route's or the key's day
    unsettled: list[str] = field(default_factory=list)  # votes still split when the extra rounds stopped
    coverage: float | None = None  # P(every needed table is in the answer); None for the lexical judge
    # Joins mined from SQL between returned tables: (left table, column, right table, column, times seen).
    mined_joins: list[tuple[str, str, str, str, int]] = field(default_factory=list)
