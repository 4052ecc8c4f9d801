"""A ``Catalog`` as JSON text and back: compact (columns and keys as arrays), and fast.

A 10,000-table catalog is several megabytes of JSON; ``dataclasses.asdict`` over it is an order
of magnitude slower than these hand-written loops, and the store runs them in a worker thread.
The version is stored beside the content and trusted on the way back in: recomputing the hash
would cost as much as the introspection's own hashing.

Document: ``{"format": 1, "tables": [{"schema", "name", "kind", "comment",
"columns": [[name, type, nullable, comment], ...], "primary_key": [...],
"foreign_keys": [[[columns...], ref_table, [ref_columns...]], ...], "row_count"?}, ...]}``
(``row_count`` only when known).
"""

from __future__ import annotations

import json
from typing import Any

from app.catalog.model import Catalog, Column, ForeignKey, Table

__all__ = ["CorruptSnapshotError", "catalog_from_json", "catalog_to_json"]

FORMAT = 1


class CorruptSnapshotError(ValueError):
    """Stored text that is not a catalog document of a known format."""


def _table_document(table: Table) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schema": table.schema,
        "name": table.name,
        "kind": table.kind,
        "comment": table.comment,
        "columns": [[c.name, c.type, c.nullable, c.comment] for c in table.columns],
        "primary_key": list(table.primary_key),
        "foreign_keys": [[list(fk.columns), fk.ref_table, list(fk.ref_columns)] for fk in table.foreign_keys],
    }
    if table.row_count is not None:
        document["row_count"] = table.row_count
    return document


def catalog_to_json(catalog: Catalog) -> str:
    """The JSON text of ``catalog``'s tables (CPU-bound for big catalogs: call it in a thread)."""
    return json.dumps({"format": FORMAT, "tables": [_table_document(t) for t in catalog.tables]})


def _table(raw: dict[str, Any]) -> Table:
    return Table(
        schema=raw["schema"],
        name=raw["name"],
        kind=raw["kind"],
        comment=raw["comment"],
        columns=tuple(
            Column(name, type_, bool(nullable), comment) for name, type_, nullable, comment in raw["columns"]
        ),
        primary_key=tuple(raw["primary_key"]),
        foreign_keys=tuple(
            ForeignKey(tuple(cols), ref, tuple(ref_cols)) for cols, ref, ref_cols in raw["foreign_keys"]
        ),
        row_count=raw.get("row_count"),
    )


def catalog_from_json(source: str, version: str, text: str) -> Catalog:
    """The catalog stored as ``text`` under ``version`` (call it in a thread for big catalogs)."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise CorruptSnapshotError(f"snapshot {version} of {source!r} is not JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CorruptSnapshotError(f"snapshot {version} of {source!r}: unknown document format")
    try:
        tables = tuple(_table(raw) for raw in document["tables"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptSnapshotError(f"snapshot {version} of {source!r}: {exc!r}") from exc
    return Catalog(source=source, tables=tables, version=version)
