"""Prefer the live table to its copies: lower scores for copies and empty tables, originals first.

A backup or an empty staging copy of the right table draws the same votes as the table itself;
a text-to-SQL frontend that picks the copy writes SQL that runs and answers wrongly. So a table
with evidence against it (``app.catalog.copies``) keeps ``EVIDENCE_SHARE`` of its score (less
when its name alone reads as a copy and no original is known), and when a copy still scores at
least as high as its original, the two trade places: the original takes the copy's score, the
copy falls just below it. Both say why in their reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence

from app.catalog.copies import TableEvidence
from app.routing.ranking.merge import RankedTable, rank

__all__ = ["prefer_live"]

EVIDENCE_SHARE = 0.8  # a known copy of another table, or an empty table
NAME_ONLY_SHARE = 0.9  # a name with a copy marker whose original is not in the catalog
BELOW_ORIGINAL = 0.95  # a copy that outscored its original ends at this share of it


def _demoted(table: RankedTable, evidence: TableEvidence) -> RankedTable:
    share = EVIDENCE_SHARE if evidence.copy_of is not None or evidence.empty else NAME_ONLY_SHARE
    return dataclasses.replace(
        table, score=round(table.score * share, 4), reason=f"{table.reason}; {evidence.reason()}".lstrip("; ")
    )


def _scores(table: RankedTable) -> bool:
    """Whether the judge found the table relevant too: a vote for it, or a lexical score (no votes)."""
    return table.votes_for > 0 or (table.votes_total == 0 and table.score > 0)


def prefer_live(
    ranked: Sequence[RankedTable],
    evidence: Mapping[str, TableEvidence],
    prior: Mapping[str, float] | None = None,
    visible: Collection[str] | None = None,
) -> list[RankedTable]:
    """``ranked`` with copies and empty tables demoted and every original above its copies.

    ``visible``: the tables the route's key may see (None: all); a reason never names another.
    """
    if not evidence:
        return list(ranked)
    tables = {
        t.name: (_demoted(t, evidence[t.name].visible_to(visible)) if t.name in evidence else t)
        for t in ranked
    }
    for name, found in evidence.items():
        copy, original = tables.get(name), tables.get(found.copy_of or "")
        if copy is None or original is None or original.score > copy.score or not _scores(original):
            continue
        tables[original.name] = dataclasses.replace(
            original, score=copy.score, reason=f"{original.reason}; preferred to its copy {name}".lstrip("; ")
        )
        tables[name] = dataclasses.replace(copy, score=round(copy.score * BELOW_ORIGINAL, 4))
    return rank(tables.values(), prior)
