"""dbt artifacts as metadata: what a team already wrote about its tables, on the cards.

From ``manifest.json``: each model's, seed's, snapshot's and source's description, its columns'
descriptions and its tags; ``relationships`` tests (``column`` of one model references
``field`` of another) become foreign keys; exposures (dashboards, notebooks, apps) say which
tables they read. From ``catalog.json``: the tables a dbt-only source has (no live connection),
with their column types and, where the adapter records one, a row count.

Everything read here is untrusted text: descriptions go where warehouse comments go, and the
card builder guards them the same way (quoted, instruction-like text quarantined).

A table matches a dbt node by schema and name (the node's alias or identifier), case-insensitive.

Exceptions:

    DbtArtifactError   an artifact cannot be fetched or read, is not the kind of document its
                       setting names, or matches no table of the source; the message names the
                       artifact and what is wrong, never its URL (it may carry a token)
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.catalog.model import Catalog, Column, ForeignKey, Table

__all__ = ["DbtArtifactError", "DbtMetadata", "catalog_tables", "enrich", "load_artifact", "read_metadata"]

_MODEL_KINDS = ("model", "seed", "snapshot")
MAX_ARTIFACT_BYTES = 256 * 1024 * 1024


class DbtArtifactError(ValueError):
    """A dbt artifact that cannot be used (see the module docstring)."""


async def load_artifact(ref: str, kind: str, timeout_s: float | None) -> dict[str, Any]:
    """The JSON document at ``ref`` (a path or an http(s) URL), checked to be a dbt ``kind`` artifact."""
    try:
        if ref.startswith(("http://", "https://")):
            async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
                response = await client.get(ref)
                response.raise_for_status()
                raw = response.content
        else:
            raw = await asyncio.to_thread(Path(ref).read_bytes)
    except (OSError, httpx.HTTPError) as exc:
        raise DbtArtifactError(f"dbt {kind}.json cannot be read ({type(exc).__name__})") from exc
    if len(raw) > MAX_ARTIFACT_BYTES:
        raise DbtArtifactError(f"dbt {kind}.json is larger than {MAX_ARTIFACT_BYTES} bytes")
    try:
        document = await asyncio.to_thread(json.loads, raw)
    except ValueError as exc:
        raise DbtArtifactError(f"dbt {kind}.json is not JSON") from exc
    metadata = document.get("metadata") if isinstance(document, dict) else None
    version = str(metadata.get("dbt_schema_version", "")) if isinstance(metadata, dict) else ""
    # e.g. ".../dbt/manifest/v12.json": the document's kind and its schema's version.
    if not re.search(rf"(^|/){kind}/v\d+", version) or not isinstance(document.get("nodes"), dict):
        raise DbtArtifactError(f"dbt {kind}.json is not a dbt {kind} (metadata.dbt_schema_version)")
    checked: dict[str, Any] = document
    return checked


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _key(schema: Any, name: Any) -> tuple[str, str]:
    return (str(schema or "").casefold(), str(name or "").casefold())


@dataclass
class _Described:
    description: str | None = None
    tags: tuple[str, ...] = ()
    columns: dict[str, str] = field(default_factory=dict)  # folded column name -> description
    exposures: list[str] = field(default_factory=list)
    references: list[tuple[str, tuple[str, str], str]] = field(default_factory=list)  # column, table, field


@dataclass(frozen=True)
class DbtMetadata:
    """What a manifest says, keyed by (schema, name) folded."""

    tables: dict[tuple[str, str], _Described]


def _relation(node: dict[str, Any]) -> tuple[str, str]:
    return _key(node.get("schema"), node.get("alias") or node.get("identifier") or node.get("name"))


def _describe(node: dict[str, Any]) -> _Described:
    columns = node.get("columns") or {}
    return _Described(
        description=_text(node.get("description")),
        tags=tuple(str(t) for t in node.get("tags") or () if isinstance(t, str)),
        columns={
            str(name).casefold(): text
            for name, column in columns.items()
            if isinstance(column, dict) and (text := _text(column.get("description")))
        },
    )


def _add_relationship(
    test: dict[str, Any], by_id: dict[str, tuple[str, str]], tables: dict[Any, _Described]
) -> None:
    meta = test.get("test_metadata") or {}
    kwargs = meta.get("kwargs") or {}
    column, to_field = kwargs.get("column_name"), kwargs.get("field")
    child_id = test.get("attached_node")
    parents = [n for n in (test.get("depends_on") or {}).get("nodes") or () if n != child_id and n in by_id]
    if not (isinstance(column, str) and isinstance(to_field, str) and child_id in by_id and parents):
        return
    child = tables.setdefault(by_id[child_id], _Described())
    child.references.append((column, by_id[parents[0]], to_field))


def read_metadata(manifest: dict[str, Any]) -> DbtMetadata:
    """The descriptions, tags, relationships and exposures of a manifest (CPU-bound: in a thread)."""
    by_id: dict[str, tuple[str, str]] = {}
    tables: dict[tuple[str, str], _Described] = {}
    nodes = {**(manifest.get("sources") or {}), **manifest["nodes"]}
    for unique_id, node in nodes.items():
        if isinstance(node, dict) and node.get("resource_type") in (*_MODEL_KINDS, "source"):
            by_id[unique_id] = _relation(node)
            tables[by_id[unique_id]] = _describe(node)
    for node in manifest["nodes"].values():
        if isinstance(node, dict) and (node.get("test_metadata") or {}).get("name") == "relationships":
            _add_relationship(node, by_id, tables)
    for exposure in (manifest.get("exposures") or {}).values():
        if not isinstance(exposure, dict):
            continue
        label = f"{exposure.get('name')} ({exposure.get('type', 'exposure')})"
        for unique_id in (exposure.get("depends_on") or {}).get("nodes") or ():
            if unique_id in by_id:
                tables[by_id[unique_id]].exposures.append(label)
    return DbtMetadata(tables)


def _comment(table: Table, described: _Described) -> str | None:
    parts = [table.comment or described.description]
    if described.tags:
        parts.append("tags: " + ", ".join(described.tags))
    if described.exposures:
        parts.append("used by " + ", ".join(sorted(set(described.exposures))))
    return "; ".join(p for p in parts if p) or None


def _enriched(table: Table, described: _Described, names: dict[tuple[str, str], str]) -> Table:
    columns = tuple(
        c if c.comment else dataclasses.replace(c, comment=described.columns.get(c.name.casefold()))
        for c in table.columns
    )
    have = {fk.columns for fk in table.foreign_keys}
    added = [
        ForeignKey((column,), names[target], (to_field,))
        for column, target, to_field in described.references
        if target in names and (column,) not in have
    ]
    return dataclasses.replace(
        table,
        comment=_comment(table, described),
        columns=columns,
        foreign_keys=(*table.foreign_keys, *added),
    )


def enrich(catalog: Catalog, metadata: DbtMetadata) -> Catalog:
    """``catalog`` with the manifest's descriptions, tags, exposures and relationships on its tables.

    Raises DbtArtifactError when the manifest describes tables and none of them is in the catalog:
    artifacts of another warehouse would otherwise enrich nothing, silently.
    """
    names = {_key(t.schema, t.name): t.qualified_name for t in catalog.tables}
    matched = [key for key in metadata.tables if key in names]
    if metadata.tables and not matched:
        raise DbtArtifactError(f"the dbt manifest describes no table of source {catalog.source!r}")
    tables = tuple(
        _enriched(t, metadata.tables[k], names) if (k := _key(t.schema, t.name)) in metadata.tables else t
        for t in catalog.tables
    )
    return Catalog(source=catalog.source, tables=tables)


def _row_count(stats: Any) -> int | None:
    for name in ("row_count", "num_rows", "rows"):
        value = ((stats or {}).get(name) or {}).get("value") if isinstance(stats, dict) else None
        if isinstance(value, int | float):
            return int(value)
    return None


def catalog_tables(document: dict[str, Any]) -> list[Table]:
    """The tables and views a dbt ``catalog.json`` lists (nodes and sources), with types and row counts."""
    found: dict[tuple[str, str], Table] = {}
    for node in (*document["nodes"].values(), *(document.get("sources") or {}).values()):
        meta = node.get("metadata") if isinstance(node, dict) else None
        if not isinstance(meta, dict) or not meta.get("name"):
            continue
        ordered = sorted(
            (c for c in (node.get("columns") or {}).values() if isinstance(c, dict) and c.get("name")),
            key=lambda c: c.get("index") or 0,
        )
        table = Table(
            schema=_text(meta.get("schema")),
            name=str(meta["name"]),
            kind="view" if str(meta.get("type", "")).lower() == "view" else "table",
            comment=_text(meta.get("comment")),
            columns=tuple(
                Column(str(c["name"]), str(c.get("type") or "").lower(), True, _text(c.get("comment")))
                for c in ordered
            ),
            row_count=_row_count(node.get("stats")),
        )
        found[_key(table.schema, table.name)] = table
    return list(found.values())
