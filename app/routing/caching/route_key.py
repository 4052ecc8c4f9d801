"""What makes two routes the same route: the one place the route cache's key is composed.

A route is identical when its normalised question, source, catalog version, judge program
version, request options (``top_k``, ``min_score``, ``schemas``), the tables the asking
key may see (its grant's fingerprint), a follow-up's conversation (earlier questions and
carried tables) and the source's route memory are: a key never gets an answer computed over
tables it may not see. A new catalog or program version is a new key, so a refresh never serves
stale tables; what the memory learns makes a new key too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import astuple, dataclass

from app.routing.caching.lru import normalize_question

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
    visible: str | None  # fingerprint of the tables the key's grant shows; None: every table
    token_budget: int | None = None
    context: str | None = None  # a follow-up's conversation fingerprint; None: it stands alone
    memory: str | None = None  # what the source's route memory held: a route it changed is new

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
    visible: str | None = None,
    token_budget: int | None = None,
    context: str | None = None,
    memory: str | None = None,
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
        visible,
        token_budget,
        context,
        memory,
    )
