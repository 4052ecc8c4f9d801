"""The foreign-key graph of a catalog: which tables a join can connect."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from app.catalog.model import Table


def fk_graph(tables: Sequence[Table]) -> dict[str, set[str]]:
    """Undirected adjacency of tables linked by a foreign key."""
    graph: dict[str, set[str]] = defaultdict(set)
    names = {t.qualified_name for t in tables}
    for table in tables:
        for fk in table.foreign_keys:
            if fk.ref_table in names and fk.ref_table != table.qualified_name:
                graph[table.qualified_name].add(fk.ref_table)
                graph[fk.ref_table].add(table.qualified_name)
    return graph
