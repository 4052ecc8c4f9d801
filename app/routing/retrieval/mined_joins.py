"""Join edges mined from SQL (feedback and imported query logs), beside the declared foreign keys.

A warehouse without enforced foreign keys (most lakes, Snowflake, BigQuery) declares no join;
its SQL shows them. Each edge keeps its columns and how often it was seen; the join-path
completion walks declared and mined edges alike, and the answer labels mined ones.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from app.store.route_memory import JoinRow

__all__ = ["MinedJoins", "with_mined"]


class MinedJoins:
    """One source's mined join edges, most seen first."""

    def __init__(self, rows: Sequence[JoinRow], min_count: int = 1) -> None:
        self.rows = tuple(r for r in rows if r.count >= min_count)
        self.total = sum(r.count for r in rows)
        graph: dict[str, set[str]] = defaultdict(set)
        for row in self.rows:
            graph[row.left_table].add(row.right_table)
            graph[row.right_table].add(row.left_table)
        self.graph: dict[str, set[str]] = dict(graph)

    def between(self, tables: set[str]) -> list[JoinRow]:
        """The mined edges with both ends in ``tables``, most seen first."""
        return [r for r in self.rows if r.left_table in tables and r.right_table in tables]


def with_mined(
    graph: Mapping[str, set[str]], mined: MinedJoins, visible: frozenset[str] | None
) -> dict[str, set[str]]:
    """``graph`` (declared FKs) plus the mined edges whose both ends ``visible`` holds (None: all)."""
    if not mined.graph:
        return dict(graph)
    merged = {name: set(linked) for name, linked in graph.items()}
    for table, linked in mined.graph.items():
        if visible is not None and table not in visible:
            continue
        keep = linked if visible is None else linked & visible
        if keep:
            merged.setdefault(table, set()).update(keep)
    return merged
