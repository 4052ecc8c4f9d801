"""What one API key may see of one catalog version: its ``TableGrant``.

A key is granted, per source, patterns with a glob per part (``public.*``, ``analytics.fact_*``,
``"a.b".x``; syntax and case rules in ``app.catalog.identifiers``), each matched against the
table's schema and name separately, so ``public.*`` never reaches schema ``public.hidden``.
The tables no pattern matches are removed before the shortlist, so they never reach the LM,
the answer or an error message: the cards of visible tables are re-rendered
without their foreign keys to hidden tables, and the FK graph used for join-path completion
keeps only visible tables. A re-rendered card keeps its evidence (``[empty]``, ``[copy of
s.orders]``), and a copy of a hidden table is re-rendered too: its card says only that its name
reads as a copy (``TableEvidence.visible_to``), as if the original did not exist. Grants are
computed once per catalog version and pattern set.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from app.catalog.copies import TableEvidence
from app.catalog.fk_graph import fk_graph
from app.catalog.identifiers import ALL_TABLES, NameSyntaxError, TablePattern, parse_pattern
from app.catalog.model import Table
from app.routing.preparation.cards import TableCard, make_card
from app.routing.preparation.metadata_guard import catalog_names

__all__ = ["ALL_TABLES", "TableGrant", "sees_table", "visible_tables"]


def _parsed(patterns: Sequence[str]) -> list[TablePattern]:
    # Keys are checked when made (keys_api); a stored pattern that no longer parses sees nothing.
    parsed = []
    for pattern in patterns:
        try:
            parsed.append(parse_pattern(pattern))
        except NameSyntaxError:
            continue
    return parsed


def sees_table(patterns: Sequence[str], table: Table) -> bool:
    """Whether any of ``patterns`` matches the table, part by part (case-sensitive)."""
    return any(p.sees(table.schema, table.name) for p in _parsed(patterns))


@dataclass(frozen=True, slots=True)
class TableGrant:
    """The visible tables of one catalog version, with what routing needs over them."""

    names: frozenset[str]
    fingerprint: str  # digest of the visible names: part of the route cache's key
    cards: dict[str, TableCard]  # visible tables' cards, FKs to hidden tables left out
    graph: dict[str, set[str]]  # the FK graph among visible tables only

    def card(self, card: TableCard) -> TableCard:
        """``card`` as this grant shows it."""
        return self.cards.get(card.name, card)

    def table(self, table: Table) -> Table:
        """``table`` as this grant shows it: its foreign keys to hidden tables left out."""
        return _without_hidden_links(table, self.names)


def _without_hidden_links(table: Table, names: frozenset[str]) -> Table:
    kept = tuple(fk for fk in table.foreign_keys if fk.ref_table in names)
    return table if len(kept) == len(table.foreign_keys) else dataclasses.replace(table, foreign_keys=kept)


def visible_tables(
    tables: Sequence[Table],
    patterns: Sequence[str],
    chunk_tokens: int,
    evidence: Mapping[str, TableEvidence],
) -> TableGrant | None:
    """The grant of ``patterns`` over ``tables``; None when every table is visible.

    ``evidence`` is the catalog's (``PreparedCatalog.evidence``), which its cards show. Cards of
    visible tables that link nowhere hidden and copy no hidden table stay the catalog's own;
    only the others are made again.
    """
    if ALL_TABLES in patterns:
        return None
    parsed = _parsed(patterns)
    visible = [t for t in tables if any(p.sees(t.schema, t.name) for p in parsed)]
    if len(visible) == len(tables):
        return None
    names = frozenset(t.qualified_name for t in visible)
    shown = [_without_hidden_links(t, names) for t in visible]
    known = catalog_names(tables)
    rerendered = {}
    for table, original in zip(shown, visible, strict=True):
        found = evidence.get(table.qualified_name)
        seen = None if found is None else found.visible_to(names)
        if table is not original or seen is not found:
            hint = "" if seen is None else seen.hint()
            rerendered[table.qualified_name] = make_card(table, chunk_tokens, known, hint)
    digest = hashlib.blake2b("\n".join(sorted(names)).encode(), digest_size=16).hexdigest()
    return TableGrant(names, digest, rerendered, fk_graph(shown))
