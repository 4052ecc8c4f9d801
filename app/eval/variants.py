"""Harder warehouses made from a Spider-format benchmark, as real warehouses look.

``copies``: every table gets a backup copy (``<table>_backup_2019``, same columns, same rows)
and an empty staging copy (``<table>_staging``, same columns, no row); the questions' gold
tables stay the originals. The staging copy's name carries no copy marker: only the engine's
row count (PostgreSQL: the table's file is empty) tells it apart. Loaded into PostgreSQL, each
original and backup gets one row (foreign keys not checked while loading) and is analysed.

``codes``: every table renamed to a code (``T0001``, ``T0002`` ... across the file), as in
warehouses named by an old ERP; ``codes-dbt``: the same, with a dbt manifest describing each
table by its original name in words (Spider and BIRD have no other description) that the
service reads as the source's ``dbt_manifest``.

``copy_outranks_share``: the share of questions where, for some gold table, one of its copies
comes back above it (or comes back while it does not).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from http import HTTPStatus
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import create_async_engine

from app.eval.spider import Database, Question

__all__ = [
    "BACKUP_SUFFIX",
    "STAGING_SUFFIX",
    "copy_outranks_share",
    "fill_tables",
    "renamed_gold",
    "with_codes",
    "with_copies",
    "write_manifest",
]

BACKUP_SUFFIX = "_backup_2019"
STAGING_SUFFIX = "_staging"


def with_copies(db: Database) -> Database:
    """``db`` with a backup and an empty staging copy of every table (no keys on the copies)."""
    count = len(db.tables)
    copies = [f"{t}{suffix}" for suffix in (BACKUP_SUFFIX, STAGING_SUFFIX) for t in db.tables]
    copied = [
        (table + k * count, name, type_) for k in (1, 2) for table, name, type_ in db.columns if table >= 0
    ]
    return Database(db.db_id, (*db.tables, *copies), (*db.columns, *copied), db.primary_keys, db.foreign_keys)


# One row in each table but the staging copies, typed from the catalog; foreign keys are not
# checked while loading (session_replication_role), so no order or matching values are needed.
_FILL = """
DO $fill$
DECLARE r record; cols text; vals text;
BEGIN
  SET LOCAL session_replication_role = replica;
  FOR r IN SELECT c.oid, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = ANY(:schemas) AND c.relkind = 'r' AND c.relname NOT LIKE :staging LOOP
    SELECT string_agg(quote_ident(a.attname), ', '),
           string_agg(CASE t.typcategory WHEN 'N' THEN '1' WHEN 'D' THEN 'now()' WHEN 'B' THEN 'true'
                      ELSE '''1''' END || '::' || format_type(a.atttypid, a.atttypmod), ', ')
      INTO cols, vals
      FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
     WHERE a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped;
    BEGIN
      EXECUTE format('INSERT INTO %I.%I (%s) VALUES (%s)', r.nspname, r.relname, cols, vals);
    EXCEPTION WHEN others THEN NULL;  -- a type with no literal here: the table stays empty
    END;
    EXECUTE format('ANALYZE %I.%I', r.nspname, r.relname);
  END LOOP;
END
$fill$
"""


async def fill_tables(url: str, schemas: Sequence[str]) -> None:
    """One row in every table of ``schemas`` but the staging copies, then ANALYZE (PostgreSQL)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            # A DO block takes no parameters: the values are written in as literals.
            names = ", ".join("'" + s.replace("'", "''") + "'" for s in schemas)
            script = _FILL.replace(":schemas", f"ARRAY[{names}]::text[]").replace(
                ":staging", f"'%\\{STAGING_SUFFIX}'"
            )
            await driver.execute(script)
    finally:
        await engine.dispose()


def _copies_of(name: str) -> tuple[str, str]:
    return f"{name}{BACKUP_SUFFIX}", f"{name}{STAGING_SUFFIX}"


def copy_outranks_share(rows: Sequence[dict[str, Any]]) -> dict[str, float | int]:
    """How often a copy of a gold table is returned above it (rows as the report writes them)."""
    outranked = 0
    scored = [r for r in rows if r["status"] == HTTPStatus.OK]
    for row in scored:
        position = {name: i for i, name in enumerate(row["ranked"])}
        for gold in row["gold"]:
            mine = position.get(gold, len(position))
            if any(position.get(copy, len(position) + 1) < mine for copy in _copies_of(gold)):
                outranked += 1
                break
    return {
        "questions": len(scored),
        "copy_outranks": outranked,
        "share": round(outranked / max(1, len(scored)), 4),
    }


Codes = dict[str, dict[str, str]]  # db_id -> original table name (folded) -> code


def with_codes(databases: dict[str, Database]) -> tuple[dict[str, Database], Codes]:
    """Every table renamed ``T0001``, ``T0002`` ... in file order; the renames per database."""
    renamed: dict[str, Database] = {}
    codes: Codes = {}
    number = 0
    for db_id, db in databases.items():
        names = [f"T{number + i + 1:04d}" for i in range(len(db.tables))]
        number += len(names)
        codes[db_id] = {t.casefold(): code for t, code in zip(db.tables, names, strict=True)}
        renamed[db_id] = replace(db, tables=tuple(names))
    return renamed, codes


def renamed_gold(question: Question, codes: Codes) -> Question:
    """``question`` with its gold tables under their codes."""
    mine = codes.get(question.db_id, {})
    return replace(question, gold=tuple(mine.get(g.casefold(), g) for g in question.gold))


def write_manifest(
    path: Path, databases: dict[str, Database], codes: Codes, schemas: dict[str, str | None]
) -> None:
    """A dbt manifest that describes each coded table by its original name in words."""
    nodes: dict[str, Any] = {}
    for db_id, db in databases.items():
        if db_id not in schemas:
            continue
        for table in db.tables:
            code = codes[db_id][table.casefold()]
            nodes[f"model.eval.{code}"] = {
                "resource_type": "model",
                "schema": schemas[db_id],
                "name": code,
                "alias": code,
                "description": table.replace("_", " "),
                "columns": {},
                "tags": [],
            }
    document = {"metadata": {"dbt_schema_version": "manifest/v12.json"}, "nodes": nodes}
    path.write_text(json.dumps(document))
