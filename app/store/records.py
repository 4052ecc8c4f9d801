"""Plain values the store reads and writes: a route as logged, feedback on it, a key's spend."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

__all__ = ["FeedbackRecord", "KeySpend", "RouteRecord"]


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
