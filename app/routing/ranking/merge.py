"""Votes and ranked tables, the ranking order, and completing foreign-key join paths.

How votes become a score (a probability of relevance) is ``relevance.py``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

MAX_JOIN_HOPS = 3
# A table added only to join two selected ones ranks just below the weaker of the two.
VIA_FK_DISCOUNT = 0.9


@dataclass(frozen=True, slots=True)
class Vote:
    """One chunk's verdict on one table."""

    table: str
    relevant: bool
    confidence: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RankedTable:
    """A table in the final ranking."""

    name: str
    score: float
    votes_for: int
    votes_total: int
    reason: str
    via_fk: bool = False


def rank(tables: Iterable[RankedTable], prior: Mapping[str, float] | None = None) -> list[RankedTable]:
    """Deterministic order: score, then votes for, then prior, then name."""
    p = prior or {}
    return sorted(tables, key=lambda t: (-t.score, -t.votes_for, -p.get(t.name, 0.0), t.name))


def _shortest_paths_from(graph: Mapping[str, set[str]], start: str) -> dict[str, str]:
    """BFS parents from ``start`` up to MAX_JOIN_HOPS hops."""
    parent: dict[str, str] = {start: start}
    frontier = deque([(start, 0)])
    while frontier:
        node, depth = frontier.popleft()
        if depth == MAX_JOIN_HOPS:
            continue
        for nxt in sorted(graph.get(node, ())):
            if nxt not in parent:
                parent[nxt] = node
                frontier.append((nxt, depth + 1))
    return parent


def complete_join_paths(selected: Sequence[RankedTable], graph: Mapping[str, set[str]]) -> list[RankedTable]:
    """Tables on the shortest FK path between two selected tables that are not selected themselves."""
    chosen = {t.name: t for t in selected}
    added: dict[str, RankedTable] = {}
    names = sorted(chosen)
    for i, a in enumerate(names):
        if a not in graph:
            continue
        parent = _shortest_paths_from(graph, a)
        for b in names[i + 1 :]:
            if b not in parent or parent[b] == a:
                continue
            node = parent[b]
            score = round(min(chosen[a].score, chosen[b].score) * VIA_FK_DISCOUNT, 4)
            while node != a:
                if node not in chosen and (node not in added or added[node].score < score):
                    added[node] = RankedTable(
                        name=node,
                        score=score,
                        votes_for=0,
                        votes_total=0,
                        reason=f"joins {a} and {b}",
                        via_fk=True,
                    )
                node = parent[node]
    return list(added.values())
