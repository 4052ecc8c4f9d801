"""Introspection of the same 2,000-table schema through each source path, side by side.

One synthetic schema (8 columns a table, comments, keys) is built in the local PostgreSQL, in a
DuckDB file and in a SQLite file. Each round reads it through:

- the bulk PostgreSQL path (``pg_catalog``, the reference);
- the generic Inspector (``get_multi_*``) on that PostgreSQL;
- DuckDB's bulk path (``duckdb_*`` functions, read-only, in a worker thread);
- the generic Inspector over a sync driver in a worker thread (SQLite's ``pysqlite``: the path
  any installed dialect without a bulk reader takes);
- the generic Inspector on the DuckDB file, through the ``duckdb-sqlalchemy`` dialect (a
  source's ``introspection: generic``).

It prints each path's median and its ratio to the bulk PostgreSQL path (goal: within 2x), and
where DuckDB's read spends its time: the same read on a file already open, and opening and
closing the file alone (DuckDB loads and frees the file's whole catalog; paid on every read
because the file is not held open between them), and a refresh that finds the file unchanged
(its size, times and WAL as at the last read: no open at all).

Run: uv run python -m bench.source_introspection [--tables 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path

import duckdb
from sqlalchemy.ext.asyncio import create_async_engine

from app.catalog.duckdb_catalog import file_state, open_file, read_connection, read_duckdb
from app.catalog.introspect import introspect
from app.catalog.source_reader import catalog_reader
from app.demo.synthetic import SyntheticTable, synthetic_tables
from bench.common import PG_URL, build_warehouse, drop_schema, median

SCHEMA = "bench_sources2k"


def _ddl(table: SyntheticTable, schema: str | None) -> str:
    prefix = f"{schema}." if schema else ""
    columns = [f'"{c.name}" {c.type}{"" if c.nullable else " NOT NULL"}' for c in table.columns]
    columns[0] += " PRIMARY KEY"
    keys = [f'FOREIGN KEY ("{fk.column}") REFERENCES {prefix}"{fk.ref_table}" (id)' for fk in table.fks]
    return f'CREATE TABLE {prefix}"{table.name}" ({", ".join(columns + keys)})'


def _copy_to_duckdb(tables: list[SyntheticTable], path: Path) -> None:
    conn = duckdb.connect(str(path))
    conn.execute(f"CREATE SCHEMA {SCHEMA}")
    for table in tables:  # a synthetic table references only earlier ones
        conn.execute(_ddl(table, SCHEMA))
        comment = table.comment.replace("'", "''")
        conn.execute(f"COMMENT ON TABLE {SCHEMA}.\"{table.name}\" IS '{comment}'")
    conn.close()


def _copy_to_sqlite(tables: list[SyntheticTable], path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(";\n".join(_ddl(t, None) for t in tables))
    conn.close()


def _wait_until_settled(path: Path) -> None:
    while file_state(str(path)) is None:  # a file written in the last two seconds is always read
        time.sleep(0.2)


def _open_and_close(path: Path) -> None:
    open_file(str(path)).close()


async def _timed(label: str, times: dict[str, list[float]], read: Awaitable[object]) -> None:
    started = time.perf_counter()
    await read
    times.setdefault(label, []).append(time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    await build_warehouse(args.tables, SCHEMA)
    tables = synthetic_tables(args.tables, schema=SCHEMA)
    engine = create_async_engine(PG_URL)
    with tempfile.TemporaryDirectory(prefix="bench-sources-") as tmp:
        duck_path, sqlite_path = Path(tmp) / "wh.duckdb", Path(tmp) / "wh.db"
        await asyncio.to_thread(_copy_to_duckdb, tables, duck_path)
        await asyncio.to_thread(_copy_to_sqlite, tables, sqlite_path)
        duck = catalog_reader("duck", f"duckdb:///{duck_path}")
        await asyncio.to_thread(_wait_until_settled, duck_path)
        await duck.read("duck", [SCHEMA], (), None)  # the read a refresh of an unchanged file reuses
        generic = catalog_reader("sqlite", f"sqlite:///{sqlite_path}")
        duck_generic = catalog_reader("duck", f"duckdb:///{duck_path}", generic=True)
        times: dict[str, list[float]] = {}
        counts: dict[str, int] = {}
        try:
            for _ in range(args.rounds):
                await _timed("postgresql bulk (pg_catalog)", times, introspect(engine, "wh", [SCHEMA]))
                await _timed(
                    "postgresql generic Inspector", times, introspect(engine, "wh", [SCHEMA], bulk=False)
                )
                cold = read_duckdb(str(duck_path), "duck", [SCHEMA])
                await _timed("duckdb bulk (duckdb_* functions)", times, cold)
                await _timed("generic Inspector, sync driver", times, generic.read("sqlite", None, (), None))
                duck_inspected = duck_generic.read("duck", [SCHEMA], (), None)
                await _timed("duckdb generic Inspector (dialect)", times, duck_inspected)
                # The same DuckDB read without opening the file: what opening it costs.
                conn = duckdb.connect(str(duck_path), read_only=True)
                read = asyncio.to_thread(read_connection, conn, "duck", [SCHEMA], ())
                await _timed("duckdb bulk, file already open", times, read)
                conn.close()
                opened = asyncio.to_thread(_open_and_close, duck_path)
                await _timed("duckdb open + close alone", times, opened)
                unchanged = duck.read("duck", [SCHEMA], (), None)
                await _timed("duckdb refresh, file unchanged", times, unchanged)
            counts["postgresql"] = len((await introspect(engine, "wh", [SCHEMA])).tables)
            counts["duckdb"] = len((await duck.read("duck", [SCHEMA], (), None)).tables)
            counts["sqlite"] = len((await generic.read("sqlite", None, (), None)).tables)
            counts["duckdb generic"] = len((await duck_generic.read("duck", [SCHEMA], (), None)).tables)
        finally:
            await generic.aclose()
            await duck_generic.aclose()
            await engine.dispose()
            await drop_schema(SCHEMA)
    reference = median(times["postgresql bulk (pg_catalog)"])
    print(f"{args.tables} tables x 8 columns, median of {args.rounds} rounds; tables read: {counts}")
    for label, values in times.items():
        print(
            f"  {label:<36} {median(values) * 1000:8.1f} ms"
            f"   ÷ postgresql bulk {median(values) / reference:5.2f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
