"""The evaluation warehouse: where each database of a schema file lives, and creating it.

PostgreSQL: one source over one SQL schema per ``db_id``, named ``<prefix><db_id>`` (default
prefix ``ev_``, so a benchmark database called ``public`` never touches the real one); a
route over one database passes ``schemas: [<its schema>]``. SQLite has no schemas: per
database, each ``db_id`` gets its own file beside the URL's file (``wh.<db_id>.db``) and its
own source; in union mode every table goes into the URL's file as ``<db_id>__<table>``.
Either way the service reports names as ``schema.table`` (PostgreSQL) or ``table`` (SQLite).

The harness drops what it creates (the tables, then the emptied schemas, or the tables and any
file it made) before creating it, and again at the end unless asked to keep it.

Every transaction is bounded: PostgreSQL holds a lock per table (and per index) a transaction
creates or drops until it ends, in a shared table sized by ``max_locks_per_transaction``
(64 per connection by default), so one ``DROP SCHEMA … CASCADE`` over a 2,588-table schema
runs out of shared memory. Tables are created, tied by foreign keys and dropped
``_TABLES_PER_TRANSACTION`` at a time, and a schema is dropped only once it is empty.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.catalog.model import qualify
from app.eval.ddl import SQLITE_RESERVED, DatabaseDDL, database_ddl, quote
from app.eval.naming import PG_MAX_IDENTIFIER_BYTES, Namespace, Renamed
from app.eval.spider import Database
from app.settings import SourceConfig

__all__ = ["Placed", "Warehouse", "build_warehouse", "drop_warehouse", "plan_warehouse"]

PG_SOURCE = "eval"
# One script is one transaction; it locks every table (and index) it creates or drops, so a
# script stays well inside a default server's lock table (64 locks per connection).
_STATEMENTS_PER_SCRIPT = 50
_TABLES_PER_DROP = 25
_SAFE_FILE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True, slots=True)
class Placed:
    """Where one database lives: its source, its schema (None on SQLite), its tables' reported names."""

    db_id: str
    source: str
    schema: str | None
    tables: dict[str, str]  # original table name → name as the service reports it


@dataclass
class Warehouse:
    """The whole layout: sources, placed databases, the DDL, and what had to be renamed or dropped."""

    dialect: str
    urls: dict[str, str]  # source → URL
    schemas: dict[str, list[str] | None]  # source → schemas to introspect
    placed: dict[str, Placed]
    ddl: dict[str, DatabaseDDL]
    renamed: list[Renamed] = field(default_factory=list)
    new_files: list[Path] = field(default_factory=list)

    def source_configs(self) -> dict[str, SourceConfig]:
        """Settings ``sources`` for the service."""
        return {
            name: SourceConfig.model_validate({"url": url, "schemas": self.schemas[name]})
            for name, url in self.urls.items()
        }

    def route_scope(self, db_id: str, union: bool) -> tuple[str, list[str] | None]:
        """The ``source`` and ``schemas`` of a route over ``db_id`` (all of the source in union mode)."""
        placed = self.placed[db_id]
        return placed.source, None if union or placed.schema is None else [placed.schema]


def plan_warehouse(databases: Iterable[Database], url: str, union: bool, prefix: str = "ev_") -> Warehouse:
    """Names and DDL for ``databases`` in the warehouse at ``url`` (nothing is touched yet)."""
    dialect = make_url(url).get_backend_name()
    if dialect == "postgresql":
        return _plan_postgresql(databases, url, prefix)
    if dialect == "sqlite":
        return _plan_sqlite(databases, url, union)
    raise ValueError(f"the eval warehouse must be PostgreSQL or SQLite, not {dialect}")


def _plan_postgresql(databases: Iterable[Database], url: str, prefix: str) -> Warehouse:
    wh = Warehouse("postgresql", {PG_SOURCE: url}, {PG_SOURCE: []}, {}, {})
    schema_names = Namespace(PG_MAX_IDENTIFIER_BYTES)
    for db in databases:
        schema, reason = schema_names.take(prefix + db.db_id)
        if reason:
            wh.renamed.append(Renamed("schema", db.db_id, prefix + db.db_id, schema, reason))
        ddl = database_ddl(db, PG_MAX_IDENTIFIER_BYTES)
        wh.ddl[db.db_id] = ddl
        wh.renamed += ddl.renamed
        names = {t: qualify(schema, p) for t, p in ddl.table_names.items()}
        wh.placed[db.db_id] = Placed(db.db_id, PG_SOURCE, schema, names)
        wh.schemas[PG_SOURCE] = [*(wh.schemas[PG_SOURCE] or []), schema]
    return wh


def _plan_sqlite(databases: Iterable[Database], url: str, union: bool) -> Warehouse:
    base = make_url(url)
    path = Path(base.database or "")
    if not base.database or base.database == ":memory:":
        raise ValueError("a SQLite eval warehouse needs a file path in its URL")
    wh = Warehouse("sqlite", {}, {}, {}, {})
    for db in databases:
        prefix = f"{db.db_id}__" if union else ""
        ddl = database_ddl(db, None, table_prefix=prefix, coerce=False, reserved=SQLITE_RESERVED)
        wh.ddl[db.db_id] = ddl
        wh.renamed += ddl.renamed
        if union:
            source, db_url = "union", url
        else:
            source = db.db_id
            db_file = path.with_name(f"{path.stem}.{_SAFE_FILE.sub('_', db.db_id)}{path.suffix or '.db'}")
            db_url = base.set(database=str(db_file)).render_as_string(hide_password=False)
        wh.urls[source], wh.schemas[source] = db_url, None
        wh.placed[db.db_id] = Placed(db.db_id, source, None, dict(ddl.table_names))
    return wh


def _scripts(statements: list[str]) -> list[list[str]]:
    step = _STATEMENTS_PER_SCRIPT
    return [statements[i : i + step] for i in range(0, len(statements), step)]


async def _execute(url: str, scripts: list[list[str]]) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            if engine.dialect.driver == "asyncpg":
                # The driver's simple-query execute() takes a whole script in one round trip.
                raw = await conn.get_raw_connection()
                driver: Any = raw.driver_connection
                for script in scripts:
                    await driver.execute(";\n".join(script))
            else:
                for script in scripts:
                    for statement in script:
                        await conn.exec_driver_sql(statement)
                await conn.commit()
    finally:
        await engine.dispose()


def _drop_scripts(wh: Warehouse, url: str) -> list[list[str]]:
    """Scripts dropping what ``wh`` makes at ``url``: tables a few at a time, then the empty schemas."""
    if wh.dialect == "postgresql":
        schemas = [p.schema for p in wh.placed.values() if p.schema is not None]
        tables = [
            f"{quote(p.schema)}.{quote(name)}"
            for p in wh.placed.values()
            if p.schema is not None
            for name in wh.ddl[p.db_id].table_names.values()
        ]
        step = _TABLES_PER_DROP
        # CASCADE: a foreign key from a table of a later batch goes with its referenced table.
        drops = [
            [f"DROP TABLE IF EXISTS {', '.join(tables[i : i + step])} CASCADE"]
            for i in range(0, len(tables), step)
        ]
        # Emptied, a schema drops with few locks; CASCADE takes whatever else a run left in it.
        return drops + [[f"DROP SCHEMA IF EXISTS {quote(s)} CASCADE"] for s in schemas]
    source = next(s for s, u in wh.urls.items() if u == url)
    tables = [t for p in wh.placed.values() if p.source == source for t in p.tables.values()]
    return _scripts([f"DROP TABLE IF EXISTS {quote(t)}" for t in tables])


def _new_file(path: Path) -> bool:
    """Whether ``path`` does not exist yet (its directory is made, so SQLite can create it)."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    return True


async def build_warehouse(wh: Warehouse) -> None:
    """Drop then create every schema and table of ``wh``; foreign keys last, so order never matters."""
    for source, url in wh.urls.items():
        if wh.dialect == "sqlite" and await asyncio.to_thread(_new_file, Path(make_url(url).database or "")):
            wh.new_files.append(Path(make_url(url).database or ""))
        creates: list[str] = []
        alters: list[str] = []
        for placed in wh.placed.values():
            if placed.source != source:
                continue
            if placed.schema is not None:
                creates.append(f"CREATE SCHEMA {quote(placed.schema)}")
            qualifier = f"{quote(placed.schema)}." if placed.schema else ""
            table_sql, fk_sql = wh.ddl[placed.db_id].statements(qualifier, inline_fks=wh.dialect == "sqlite")
            creates += table_sql
            alters += fk_sql
        await _execute(url, _drop_scripts(wh, url) + _scripts(creates) + _scripts(alters))


async def drop_warehouse(wh: Warehouse) -> None:
    """Drop every schema or table ``wh`` created, and the SQLite files it made."""
    for url in wh.urls.values():
        await _execute(url, _drop_scripts(wh, url))
    for db_file in wh.new_files:
        await asyncio.to_thread(db_file.unlink, missing_ok=True)
