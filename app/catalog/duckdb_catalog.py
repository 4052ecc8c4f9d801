"""DuckDB introspection in four queries over its own catalog functions, read-only, in a thread.

``duckdb_tables()``, ``duckdb_views()``, ``duckdb_columns()`` and ``duckdb_constraints()`` give
every table, view, column and key of a database file at once; ``estimated_size`` is the row
count DuckDB keeps anyway (no scan). SQLAlchemy's Inspector reads the same catalog through the
``duckdb-sqlalchemy`` dialect (``introspection: generic``), but five to six times slower at 2,000
tables (docs/sources.md says where the time goes).

The file is opened read-only for one read and closed again: DuckDB lets one process write a
file, and a router holding it open between refreshes would lock out the warehouse's own loads.
Opening and closing a file cost DuckDB more than the read itself (it loads and frees the whole
catalog: bench/source_introspection.py), and DuckDB's Python API blocks, so all three run in
worker threads; at the timeout the query is interrupted, so the thread does not outlive the read.

Because opening is the expensive part, a refresh first compares the file's state (``file_state``:
size, modification and change times, inode, and the same of its ``.wal``) with the last read's;
every committed DuckDB write changes the WAL or the file, so an equal state means the catalog read
last time is still the file's catalog.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.catalog.model import Catalog, Column, ForeignKey, Table, qualify
from app.catalog.row_counts import informative

__all__ = [
    "DUCKDB_SYSTEM_SCHEMAS",
    "NO_EXTENSIONS",
    "FileState",
    "duckdb_path",
    "file_state",
    "open_file",
    "read_connection",
    "read_duckdb",
]

DUCKDB_SYSTEM_SCHEMAS = ("information_schema", "pg_catalog")
_WHERE = "WHERE database_name = current_database() AND NOT internal AND NOT temporary"
_TABLES = f"SELECT schema_name, table_name, comment, estimated_size FROM duckdb_tables() {_WHERE}"  # noqa: S608
_VIEWS = f"SELECT schema_name, view_name, comment FROM duckdb_views() {_WHERE}"  # noqa: S608
_COLUMNS = (
    "SELECT schema_name, table_name, column_name, data_type, is_nullable, comment FROM duckdb_columns()"
    " WHERE database_name = current_database() AND NOT internal"
    " ORDER BY schema_name, table_name, column_index"
)
_KEYS = (
    "SELECT schema_name, table_name, constraint_type, constraint_column_names, referenced_table,"
    " referenced_column_names FROM duckdb_constraints() WHERE database_name = current_database()"
    " AND constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY')"
    " ORDER BY schema_name, table_name, constraint_index"
)


class DuckDBReadError(Exception):
    """The file could not be opened or read; the message names no path."""


def duckdb_path(database: str | None) -> str:
    """The file a ``duckdb:///path`` URL names; an in-memory database has nothing to read."""
    if not database or database == ":memory:":
        raise ValueError("a DuckDB source names a database file: duckdb:///path/to/file.duckdb")
    return database


FileState = tuple[tuple[int, ...], tuple[int, ...] | None]

# A change stamped this close to the moment of looking may be followed, within the same tick of
# the file system's clock, by another that leaves size and times as they were (git's "racily
# clean" files): such a state is not trusted, and the file is read.
_SETTLED_NS = 2_000_000_000


def _stat(path: str) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def file_state(path: str) -> FileState | None:
    """What the file and its WAL look like now, or None when that cannot vouch for the catalog.

    None when the file is missing or was changed within the last two seconds (blocking: a stat).
    """
    now = time.time_ns()
    main, wal = _stat(path), _stat(f"{path}.wal")
    if main is None or any(now - s[3] < _SETTLED_NS or now - s[4] < _SETTLED_NS for s in (main, wal) if s):
        return None
    return main, wal


# A source file names a DuckDB database: never fetch an extension to read another format.
NO_EXTENSIONS: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


def open_file(path: str) -> Any:
    """A read-only DuckDB connection to the file at ``path`` (blocking)."""
    import duckdb  # noqa: PLC0415  (a service without a DuckDB source never loads the engine)

    return duckdb.connect(path, read_only=True, config=NO_EXTENSIONS)


def _rows(conn: Any, query: str) -> list[tuple[Any, ...]]:
    return list(conn.execute(query).fetchall())


def _assemble(
    tables: list[tuple[Any, ...]],
    views: list[tuple[Any, ...]],
    columns: list[tuple[Any, ...]],
    keys: list[tuple[Any, ...]],
    wanted: set[str],
) -> list[Table]:
    by_table: dict[tuple[str, str], list[Column]] = defaultdict(list)
    for schema, table, name, type_, nullable, comment in columns:
        if schema in wanted:
            by_table[schema, table].append(
                Column(sys.intern(name), sys.intern(str(type_).lower()), bool(nullable), comment)
            )
    primary: dict[tuple[str, str], tuple[str, ...]] = {}
    foreign: dict[tuple[str, str], list[ForeignKey]] = defaultdict(list)
    for schema, table, kind, names, ref_table, ref_names in keys:
        if schema not in wanted:
            continue
        if kind == "PRIMARY KEY":
            primary[schema, table] = tuple(names)
        else:  # DuckDB's foreign keys stay within one schema
            foreign[schema, table].append(
                ForeignKey(tuple(names), qualify(schema, ref_table), tuple(ref_names))
            )
    found = [(s, n, "table", c, size) for s, n, c, size in tables] + [
        (s, n, "view", c, None) for s, n, c in views
    ]
    return [
        Table(
            schema=schema,
            name=name,
            kind=kind,
            comment=comment or None,
            columns=tuple(by_table[schema, name]),
            primary_key=primary.get((schema, name), ()),
            foreign_keys=tuple(foreign.get((schema, name), ())),
            row_count=None if size is None else int(size),
        )
        for schema, name, kind, comment, size in found
        if schema in wanted
    ]


def _schemas(conn: Any, schemas: Sequence[str] | None, exclude: Sequence[str]) -> list[str]:
    present = {
        row[0]
        for row in _rows(
            conn, "SELECT schema_name FROM duckdb_schemas() WHERE database_name = current_database()"
        )
    }
    wanted = sorted(present - set(DUCKDB_SYSTEM_SCHEMAS)) if schemas is None else list(dict.fromkeys(schemas))
    missing = [s for s in wanted if s not in present]
    if missing:
        raise LookupError(missing[0])
    return [s for s in wanted if s not in set(exclude)]


def read_connection(conn: Any, source: str, schemas: Sequence[str] | None, exclude: Sequence[str]) -> Catalog:
    """The catalog through an open DuckDB connection (blocking: the worker thread's part)."""
    wanted = set(_schemas(conn, schemas, exclude))
    tables = _assemble(
        _rows(conn, _TABLES), _rows(conn, _VIEWS), _rows(conn, _COLUMNS), _rows(conn, _KEYS), wanted
    )
    return Catalog(source=source, tables=tuple(sorted(informative(tables), key=lambda t: t.qualified_name)))


async def read_duckdb(
    path: str,
    source: str,
    schemas: Sequence[str] | None,
    exclude: Sequence[str] = (),
    timeout_s: float | None = None,
) -> Catalog:
    """The tables and views of ``schemas`` (default: all but DuckDB's own) of the file at ``path``.

    Raises FileNotFoundError, LookupError (a schema that is not there, as its name),
    TimeoutError, or DuckDBReadError (DuckDB's message is dropped: it quotes the path).
    """
    import duckdb  # noqa: PLC0415  (a service without a DuckDB source never loads the engine)

    if not await asyncio.to_thread(Path(path).is_file):
        raise FileNotFoundError(path)
    try:
        conn = await asyncio.to_thread(open_file, path)
    except duckdb.Error as exc:
        raise DuckDBReadError(f"cannot open the DuckDB file ({type(exc).__name__})") from exc
    try:
        async with asyncio.timeout(timeout_s):
            return await asyncio.to_thread(read_connection, conn, source, schemas, exclude)
    except TimeoutError:
        conn.interrupt()  # the worker thread's query stops; the thread ends with it
        raise
    except duckdb.Error as exc:
        raise DuckDBReadError(f"a catalog query failed ({type(exc).__name__})") from exc
    finally:
        # Freeing a large catalog takes DuckDB a while (hundreds of ms at 2,000 tables): off the loop.
        await asyncio.to_thread(conn.close)
