"""What makes two routes the same route: the one place the route cache's key is composed.

A route is identical when its normalised question, source, catalog version, judge program
version and request options (``top_k``, ``min_score``, ``schemas``) are. A new catalog or
program version is a new key, so a refresh never serves stale tables. Anything that must
split the cache later (a caller's grants, say) is one more field here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import astuple, dataclass

from app.routing.lru import normalize_question

__all__ = ["RouteKey", "route_key"]


@dataclass(frozen=True, slots=True)
class RouteKey:
    """The identity of a route's answer; hashable for the local cache, digestible for Redis."""

    question: str
    source: str
    catalog_version: str
    program_version: str
    top_k: int
    min_score: float
    schemas: tuple[str, ...] | None

    def digest(self) -> str:
        """A stable hex digest of every field (the shared cache's key; never the question itself)."""
        encoded = json.dumps(astuple(self), separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(encoded.encode()).hexdigest()


def route_key(
    question: str,
    *,
    source: str,
    catalog_version: str,
    program_version: str,
    top_k: int,
    min_score: float,
    schemas: Sequence[str] | None,
) -> RouteKey:
    """The cache key of a route request."""
    return RouteKey(
        normalize_question(question),
        source,
        catalog_version,
        program_version,
        top_k,
        min_score,
        tuple(sorted(set(schemas))) if schemas else None,
    )
