"""Introspection at scale: 10,000 tables x 8 columns in the local PostgreSQL.

Prints, from one run, side by side on the same schema:
- ours (``app.catalog.introspect``: three pg_catalog queries, objects built off the loop)
  ÷ SQLAlchemy ``MetaData.reflect`` (what LangChain's and LlamaIndex's SQLDatabase use),
  goal >= 5x faster; and ÷ SQLAlchemy ``Inspector.get_multi_*`` (our previous reader);
- the RSS of a fresh service process (everything ``app.main`` imports) with that catalog
  loaded and prepared for routing (cards, chunks, BM25 indexes), goal <= 400 MB.

Run: uv run python -m bench.introspection [--tables 10000] [--keep]
(--keep leaves the schema in place and reuses it next time; dropping 10,000 tables takes a while.)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time

from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import create_async_engine

import app.main  # noqa: F401  (the RSS child counts the service's imports: DSPy, FastAPI ...)
from app.catalog.introspect import _read_catalog, introspect
from app.routing.preparation.prepared import prepare
from bench.common import PG_URL, build_warehouse, drop_schema, median

SCHEMA = "bench_intro10k"


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def _rss_child(schema: str) -> None:
    """In a fresh process: RSS before and after loading and preparing the catalog (JSON on stdout)."""
    before = _rss_mb()
    engine = create_async_engine(PG_URL)
    catalog = await introspect(engine, "wh", [schema])
    await engine.dispose()
    prepared = prepare(catalog, 2000, 2, 0)
    gc.collect()
    print(json.dumps({"before": before, "after": _rss_mb(), "tables": len(prepared.cards)}))


async def _count_tables(schema: str) -> int:
    engine = create_async_engine(PG_URL)
    async with engine.connect() as conn:
        found = await conn.scalar(text("SELECT count(*) FROM pg_tables WHERE schemaname = :s"), {"s": schema})
    await engine.dispose()
    return int(found or 0)


async def _timed_readers(schema: str, rounds: int) -> dict[str, float]:
    engine = create_async_engine(PG_URL)
    times: dict[str, list[float]] = {"ours": [], "get_multi": [], "reflect": []}
    for _ in range(rounds):
        started = time.perf_counter()
        await introspect(engine, "wh", [schema])
        times["ours"].append(time.perf_counter() - started)
        async with engine.connect() as conn:
            started = time.perf_counter()
            await conn.run_sync(_read_catalog, "wh", [schema])
            times["get_multi"].append(time.perf_counter() - started)
            started = time.perf_counter()
            await conn.run_sync(lambda sync: MetaData().reflect(sync, schema=schema, views=True))
            times["reflect"].append(time.perf_counter() - started)
    await engine.dispose()
    return {name: median(values) for name, values in times.items()}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        await _rss_child(SCHEMA)
        return
    if await _count_tables(SCHEMA) != args.tables:
        started = time.perf_counter()
        await build_warehouse(args.tables, SCHEMA)
        print(f"built {args.tables} tables x 8 columns in {time.perf_counter() - started:.0f} s")
    try:
        times = await _timed_readers(SCHEMA, args.rounds)
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.introspection", "--rss-child", stdout=asyncio.subprocess.PIPE
        )
        out, _ = await child.communicate()
        _report(args.tables, args.rounds, times, json.loads(out.decode().strip().splitlines()[-1]))
    finally:
        if not args.keep:
            await drop_schema(SCHEMA)


def _report(tables: int, rounds: int, times: dict[str, float], rss: dict[str, float]) -> None:
    print(f"{tables} tables x 8 columns, median of {rounds} round(s):")
    print(f"  ours (pg_catalog, 3 queries):     {times['ours']:7.2f} s")
    print(f"  SQLAlchemy Inspector.get_multi_*: {times['get_multi']:7.2f} s")
    print(f"  SQLAlchemy MetaData.reflect:      {times['reflect']:7.2f} s")
    print(f"RATIO reflect / ours   = {times['reflect'] / times['ours']:.1f}x   (goal >= 5x)")
    print(f"RATIO get_multi / ours = {times['get_multi'] / times['ours']:.1f}x")
    grown = rss["after"] - rss["before"]
    print(
        f"RSS of a service process: {rss['before']:.0f} MB after imports, {rss['after']:.0f} MB with the "
        f"{rss['tables']}-table catalog loaded and prepared (+{grown:.0f} MB; goal <= 400 MB)"
    )


if __name__ == "__main__":
    asyncio.run(main())
