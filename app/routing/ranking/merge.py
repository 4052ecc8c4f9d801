"""Merging chunk verdicts (votes) into one ranking, then completing foreign-key join paths."""

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


def _tallies(votes: Iterable[Vote]) -> dict[str, tuple[float, int, int, str]]:
    """Per table: the mean probability of relevance (rounded), votes for, votes, best reason."""
    # A 1,000-table route merges thousands of votes after its last LM call, on the critical
    # path of the route's latency: one pass per table, no helper call per vote.
    by_table: dict[str, list[Vote]] = {}
    for vote in votes:
        group = by_table.get(vote.table)
        if group is None:
            by_table[vote.table] = [vote]
        else:
            group.append(vote)
    tallies: dict[str, tuple[float, int, int, str]] = {}
    for name, table_votes in by_table.items():
        probabilities = []
        for_: list[Vote] = []
        for v in table_votes:
            confidence = min(1.0, max(0.0, v.confidence))
            if v.relevant:
                probabilities.append(confidence)
                for_.append(v)
            else:
                probabilities.append(1.0 - confidence)
        score = sum(probabilities) / len(table_votes)
        best = max(for_ or table_votes, key=_confidence)
        tallies[name] = (round(score, 4), len(for_), len(table_votes), best.reason)
    return tallies


def _confidence(vote: Vote) -> float:
    return vote.confidence


def merge_votes(votes: Iterable[Vote]) -> dict[str, RankedTable]:
    """Score per table: the mean probability of relevance over its votes, in [0, 1]."""
    return {name: RankedTable(name, *tally) for name, tally in _tallies(votes).items()}


def blend_prior(
    merged: Mapping[str, RankedTable], prior: Mapping[str, float], weight: float
) -> list[RankedTable]:
    """Scores moved ``weight`` of the way toward the prior (a lexical score in [0, 1]).

    One noisy verdict against a table leaves it at about 0.5, among every table that drew one
    false positive; the prior lifts the ones whose words the question uses.
    """
    keep = 1 - weight
    # Built directly rather than by dataclasses.replace, which costs several times more.
    return [
        RankedTable(
            t.name,
            round(keep * t.score + weight * prior.get(t.name, 0.0), 4),
            t.votes_for,
            t.votes_total,
            t.reason,
            t.via_fk,
        )
        for t in merged.values()
    ]


def blended_votes(votes: Iterable[Vote], prior: Mapping[str, float], weight: float) -> list[RankedTable]:
    """``blend_prior(merge_votes(votes), prior, weight)`` without the intermediate tables."""
    keep = 1 - weight
    return [
        RankedTable(name, round(keep * score + weight * prior.get(name, 0.0), 4), for_, total, reason)
        for name, (score, for_, total, reason) in _tallies(votes).items()
    ]


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
