"""Which tables read as copies, backups or empty staging tables: evidence against them.

A warehouse keeps ``orders_backup_2019``, ``tmp_orders`` and ``orders_v2`` beside ``orders``;
to a judge that sees names and columns they all look right. A name reads as a copy when it
carries a copy marker (``_bak``, ``_backup``, ``_old``, ``_copy``, ``_tmp``, ``_archive``, a
version ``_v2`` or a date ``_2019``, ``_20190131``; or a prefix ``tmp_``, ``temp_``, ``bak_``,
``backup_``, ``old_``, ``copy_``); it is a copy *of* a table when taking the markers off gives
the name of another table in the same schema. A table the engine counts as empty is evidence
too (``Table.row_count == 0``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from app.catalog.model import Table, qualify

__all__ = ["TableEvidence", "copy_stem", "table_evidence"]

_WORD = r"(?:bak|backup|old|copy|tmp|temp|archive|archived|snapshot)"
_DATE = r"(?:19|20)\d{2}(?:_?\d{2}){0,2}"
_SUFFIX = re.compile(rf"^(?P<stem>.+?)_(?:{_WORD}|v\d{{1,3}}|{_DATE})$", re.IGNORECASE)
_PREFIX = re.compile(rf"^(?:{_WORD})_(?P<stem>.+)$", re.IGNORECASE)
_MAX_MARKERS = 3  # orders_backup_2019_v2 at most: a name is not peeled down to nothing


def copy_stem(name: str) -> str | None:
    """``name`` without its copy markers (``orders_backup_2019`` -> ``orders``), or None if it has none."""
    stem = name
    for _ in range(_MAX_MARKERS):
        match = _SUFFIX.match(stem) or _PREFIX.match(stem)
        if match is None:
            break
        stem = match.group("stem")
    return stem if stem != name else None


@dataclass(frozen=True, slots=True)
class TableEvidence:
    """Why a table is probably not the one a query reads."""

    copy_of: str | None = None  # the live table this one copies (same schema), when there is one
    copy_like: bool = False  # the name carries a copy marker
    empty: bool = False  # the engine counts no row

    def visible_to(self, names: Collection[str] | None) -> TableEvidence:
        """This evidence as a key that sees only ``names`` (None: all) may read it: no hidden table named."""
        if names is None or self.copy_of is None or self.copy_of in names:
            return self
        return TableEvidence(None, self.copy_like, self.empty)

    def hint(self) -> str:
        """The card's words for it: ``[copy of sales.orders] [empty]``."""
        parts = []
        if self.copy_of is not None:
            parts.append(f"[copy of {self.copy_of}]")
        elif self.copy_like:
            parts.append("[name reads as a copy]")
        if self.empty:
            parts.append("[empty]")
        return " ".join(parts)

    def reason(self) -> str:
        """The answer's words for it."""
        parts = []
        if self.copy_of is not None:
            parts.append(f"looks like a copy of {self.copy_of}")
        elif self.copy_like:
            parts.append("name reads as a copy")
        if self.empty:
            parts.append("empty table")
        return ", ".join(parts)


def table_evidence(tables: Iterable[Table]) -> dict[str, TableEvidence]:
    """Evidence per qualified name, for the tables that have any."""
    tables = list(tables)
    names = {t.qualified_name for t in tables}
    evidence: dict[str, TableEvidence] = {}
    for table in tables:
        stem = copy_stem(table.name)
        original = qualify(table.schema, stem) if stem is not None else None
        found = TableEvidence(
            copy_of=original if original in names else None,
            copy_like=stem is not None,
            empty=table.row_count == 0 and table.kind == "table",
        )
        if found.copy_like or found.empty:
            evidence[table.qualified_name] = found
    return evidence
