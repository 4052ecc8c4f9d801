"""Plain values the store reads and writes: a route as logged, its outcome, feedback on it, a key's spend."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, TypedDict

__all__ = ["OUTCOME_KEYS", "FeedbackRecord", "KeySpend", "RouteOutcome", "RouteRecord"]


class RouteOutcome(TypedDict):
    """How complete a logged route's answer was, besides its coverage and partial (``outcome``).

    The names and meanings of the route's response; one JSON document, since these are read
    with the route, not filtered on. A key added later is absent from older routes' documents.
    """

    unjudged: list[str]
    unsettled: list[str]
    degraded: bool
    degraded_reason: str | None
    budget_cut: bool
    budget_unjudged: list[str]
    budget_cut_reason: str | None
    catalog_stale: bool  # the snapshot was not confirmed by the source's latest refresh attempt
    catalog_age_s: float | None  # seconds since the warehouse was last seen to match the snapshot


OUTCOME_KEYS: tuple[str, ...] = tuple(RouteOutcome.__annotations__)


@dataclass(frozen=True, slots=True)
class RouteRecord:
    """One answered route, as the route log keeps it."""

    route_id: str
    created_at: datetime
    source: str
    catalog_version: str
    judge: str
    program_version: str | None
    question: str
    top_k: int
    min_score: float
    schemas: list[str] | None
    tables: list[dict[str, Any]]
    stats: dict[str, Any]
    key_id: str | None = None  # the API key that asked
    # How sure and how complete the answer was. None: not known (a route logged, or spilled,
    # before the log kept them); coverage is None for the lexical judge too.
    coverage: float | None = None
    partial: bool | None = None
    outcome: RouteOutcome | None = None

    def row(self) -> dict[str, Any]:
        """The values of its ``route_log`` row."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """The tables a route's final SQL used, as reported (resolved to the snapshot's names)."""

    route_id: str
    created_at: datetime
    used_tables: list[str]
    sql: str | None


@dataclass(frozen=True, slots=True)
class KeySpend:
    """What one key's logged routes spent: LM tokens, and dollars where their prices were known."""

    tokens: int
    cost_usd: float
