"""The eval warehouse at enterprise scale: more tables than a server's lock table holds at once.

A private PostgreSQL with a small lock table stands in for a default one under a 2,588-table
warehouse: one transaction over every table runs out of shared memory there, the harness's
bounded transactions do not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from app.eval.spider import load_databases
from app.eval.warehouse import build_warehouse, drop_warehouse, plan_warehouse
from tests.fixtures.private_pg import PrivatePostgres

pytestmark = pytest.mark.asyncio(loop_scope="module")
N_TABLES = 150
# ~15 backends x 10 locks: a lock table of ~150 slots, well under the tables (and their indexes
# and TOAST tables) made here; a default server has 64 x ~120.
SMALL_LOCK_TABLE = (
    "-c max_connections=10 -c max_locks_per_transaction=10 -c max_wal_senders=0 "
    "-c max_worker_processes=1 -c autovacuum_max_workers=1"
)


def _schema_file(path: Path) -> Path:
    """One Spider-format database of N_TABLES tables, each pointing at the one before it."""
    columns: list[list[object]] = [[-1, "*"]]
    types, keys, fks = ["text"], [], []
    for t in range(N_TABLES):
        keys.append(len(columns))
        columns.append([t, "id"])
        types.append("number")
        columns.append([t, "note"])
        types.append("text")
        if t:
            columns.append([t, "prev_id"])
            types.append("number")
            fks.append([len(columns) - 1, keys[t - 1]])
    record = {
        "db_id": "erp",
        "table_names_original": [f"t{t:04d}" for t in range(N_TABLES)],
        "table_names": [f"t{t:04d}" for t in range(N_TABLES)],
        "column_names_original": columns,
        "column_names": columns,
        "column_types": types,
        "primary_keys": keys,
        "foreign_keys": fks,
    }
    path.write_text(json.dumps([record]))
    return path


async def _tables(url: str, schema: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            query = sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = :s")
            return int((await conn.execute(query, {"s": schema})).scalar_one())
    finally:
        await engine.dispose()


async def _drop_in_one_transaction(url: str, schema: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        await engine.dispose()


async def test_a_warehouse_beyond_the_lock_table_builds_and_drops(
    private_pg: PrivatePostgres, tmp_path: Path
) -> None:
    await private_pg.start(SMALL_LOCK_TABLE)
    try:
        url = private_pg.url()
        (db,) = load_databases(_schema_file(tmp_path / "tables.json")).values()
        wh = plan_warehouse([db], url, union=True)
        await build_warehouse(wh)
        schema = wh.placed["erp"].schema
        assert schema is not None
        assert await _tables(url, schema) == N_TABLES
        # What the harness did before: the whole schema in one transaction.
        with pytest.raises(DBAPIError, match="shared memory"):
            await _drop_in_one_transaction(url, schema)
        assert await _tables(url, schema) == N_TABLES
        await drop_warehouse(wh)
        assert await _tables(url, schema) == 0
    finally:
        await private_pg.stop()
