"""Shared pieces of the benchmarks: a synthetic warehouse, the simulator in its own process."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.catalog.model import Catalog, Column, ForeignKey, Table
from app.demo.synthetic import create_synthetic_warehouse, synthetic_questions, synthetic_tables

# Settings of the environment that would make a benchmark's `tablerouter serve` use an LM,
# embeddings, other sources or Redis: a bench that spawns the demo service clears them.
SERVE_CLEARED = (
    "TABLEROUTER_LLM_MODEL",
    "TABLEROUTER_EMBEDDING_MODEL",
    "TABLEROUTER_SOURCES",
    "TABLEROUTER_REDIS_URL",
)

PG_URL = os.environ.get("TABLEROUTER_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


async def build_warehouse(n_tables: int, schema: str, seed: int = 0) -> list[dict[str, Any]]:
    """(Re)create an ``n_tables`` synthetic schema in PostgreSQL; returns questions with gold tables."""
    await drop_schema(schema)
    engine = create_async_engine(PG_URL)
    tables = synthetic_tables(n_tables, schema=schema, seed=seed)
    await create_synthetic_warehouse(engine, tables, schema=schema)
    await engine.dispose()
    return synthetic_questions(tables, 50, seed=seed)


async def drop_schema(schema: str, batch: int = 200) -> None:
    """Drop a benchmark schema, its tables a batch per transaction.

    One DROP SCHEMA CASCADE over thousands of tables takes a lock per table in one transaction
    and runs out of PostgreSQL's lock table ("out of shared memory"). Newest tables go first:
    a synthetic table references only older ones, so a batch's CASCADE locks no other batch's
    tables (in any order, a popular parent drags its hundreds of children's locks in).
    """
    engine = create_async_engine(PG_URL)
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = :s AND c.relkind IN ('r', 'p') ORDER BY c.oid DESC"
            ),
            {"s": schema},
        )
        names = [r[0] for r in rows]
    for start in range(0, len(names), batch):
        async with engine.begin() as conn:
            listed = ", ".join(f'"{schema}"."{n}"' for n in names[start : start + batch])
            await conn.execute(text(f"DROP TABLE IF EXISTS {listed} CASCADE"))
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    await engine.dispose()


def median(values: list[float]) -> float:
    """The median of ``values``."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def synthetic_catalog(n_tables: int, schema: str = "wh", seed: int = 0) -> Catalog:
    """The catalog introspection would read from ``n_tables`` synthetic tables, built in memory."""
    tables = []
    for t in synthetic_tables(n_tables, schema=schema, seed=seed):
        tables.append(
            Table(
                schema=schema,
                name=t.name,
                comment=t.comment,
                columns=tuple(Column(c.name, c.type.lower(), c.nullable, c.comment) for c in t.columns),
                primary_key=("id",),
                foreign_keys=tuple(
                    ForeignKey((fk.column,), f"{schema}.{fk.ref_table}", ("id",)) for fk in t.fks
                ),
            )
        )
    return Catalog("wh", tuple(tables))


def _stat_fields(pid: int) -> list[str]:
    return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and its live descendants."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = _stat_fields(int(entry.name))
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
            cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent and child not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(cpu.get(p, 0.0) for p in tree)


def listener_cpu_seconds(port: int) -> float:
    """CPU seconds (user + system) used so far by the process started with ``--port PORT``."""
    wanted = ["--port", str(port)]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            if any(args[i : i + 2] == wanted for i in range(len(args) - 1)):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            continue
    return float("nan")


def is_ready(url: str) -> bool:
    """Whether ``url`` (a ``/readyz``) answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
