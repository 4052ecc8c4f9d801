"""Store benchmark: a restart with the warehouse unreachable, and the route log under 500 concurrent routes.

Prints, from one run against the local PostgreSQL (the service over real HTTP, the LM simulator
on a real socket):
- a router restarted while its warehouse is unreachable (source URL at a closed port) answers
  from its stored snapshot: readiness, the route's catalog_version (same as before the
  restart), catalog_stale and catalog_age_s;
- N concurrent routes (default 500) leave exactly N route-log rows, counted after a clean
  shutdown; on a PostgreSQL store and, side by side, on a SQLite store; with the writer's
  batches and the routes' median service time.

Run: uv run python -m bench.store [--routes 500] [--tables 40]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from app.eval.runner import serving
from app.harness.stores import fresh_pg_database, unreachable_pg_url
from app.settings import Settings
from app.simulator.service import SimulatorConfig, running_simulator
from app.store.database import Store
from app.store.models import RouteLog
from bench.common import PG_URL, build_warehouse, drop_schema, median


def _settings(source_url: str, schema: str, sim: str) -> Settings:
    return Settings.model_validate(
        {
            "sources": {"wh": {"url": source_url, "schemas": [schema]}},
            "llm_model": "openai/tablerouter-sim",
            "llm_api_base": f"{sim}/v1",
            "llm_timeout": 60,
            "refresh_interval_s": 0,
        }
    )


async def _restart_unreachable(store_url: str, schema: str, sim: str, question: str) -> None:
    print("restart with the warehouse unreachable (PostgreSQL store):")
    up = _settings(PG_URL, schema, sim)
    async with serving(up, store_url) as url, httpx.AsyncClient(base_url=url, timeout=60) as c:
        before = (await c.post("/route", json={"question": question})).json()
    print(
        f"  first start, warehouse up:    route catalog_version={before['catalog_version']}"
        f" catalog_stale={before['catalog_stale']} catalog_age_s={before['catalog_age_s']}"
    )
    await asyncio.sleep(1.0)  # let the stored snapshot age visibly
    down = _settings(unreachable_pg_url(PG_URL), schema, sim)
    async with serving(down, store_url) as url, httpx.AsyncClient(base_url=url, timeout=60) as c:
        ready = await c.get("/readyz")
        routed = await c.post("/route", json={"question": question})
        body = routed.json()
        for _ in range(100):  # the background refresh fails quickly on a closed port
            source = (await c.get("/sources/wh")).json()
            if source["last_error"]:
                break
            await asyncio.sleep(0.05)
    same = "same" if body["catalog_version"] == before["catalog_version"] else "DIFFERENT"
    print(f"  second start, warehouse down: /readyz {ready.status_code} {ready.json()['status']}")
    print(
        f"  route {routed.status_code}: catalog_version={body['catalog_version']} ({same} as before)"
        f" catalog_stale={body['catalog_stale']} catalog_age_s={body['catalog_age_s']}"
        f" tables={len(body['tables'])}"
    )
    print(f"  GET /sources/wh: last_error={source['last_error']!r}")


async def _count(store_url: str, route_ids: list[str]) -> int:
    store = Store(store_url)
    try:
        async with store.begin() as session:
            query = sa.select(sa.func.count()).where(RouteLog.route_id.in_(route_ids))
            return int(await session.scalar(query) or 0)
    finally:
        await store.aclose()


async def _concurrent_routes(label: str, store_url: str, schema: str, sim: str, questions: list[str]) -> None:
    limits = httpx.Limits(max_connections=len(questions) + 10)
    settings = _settings(PG_URL, schema, sim)
    async with (
        serving(settings, store_url) as url,
        httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as c,
    ):
        await c.post("/route", json={"question": "warm up"})
        started = time.perf_counter()
        responses = await asyncio.gather(*(c.post("/route", json={"question": q}) for q in questions))
        wall = time.perf_counter() - started
        writer: dict[str, Any] = (await c.get("/stats")).json()["route_log"]
    ok = [r.json() for r in responses if r.status_code == 200]
    route_ids = [r["route_id"] for r in ok]
    rows = await _count(store_url, route_ids)
    service_ms = median([r["stats"]["elapsed_ms"] for r in ok])
    print(
        f"  {label:<10} responses 200: {len(ok)}/{len(questions)}; wall {wall:.1f} s;"
        f" median route {service_ms:.0f} ms; route_log rows for them after shutdown: {rows}"
    )
    print(
        f"  {'':<10} writer before shutdown: written={writer['written']} batches={writer['batches']}"
        f" queued={writer['queued']} failed={writer['failed']} dropped={writer['dropped']}"
    )


async def run(n_routes: int, n_tables: int) -> None:
    schema = f"bench_store_{uuid.uuid4().hex[:8]}"
    questions = await build_warehouse(n_tables, schema, seed=1)
    texts = [f"{questions[i % len(questions)]['question']} (#{i})" for i in range(n_routes)]
    config = SimulatorConfig(port=0, latency_ms="uniform:20:60")
    try:
        async with running_simulator(config) as sim:
            async with fresh_pg_database(PG_URL) as store_url:
                await _restart_unreachable(store_url, schema, sim, questions[0]["question"])
            print(f"{n_routes} concurrent routes over {n_tables} tables, each logged:")
            async with fresh_pg_database(PG_URL) as store_url:
                await _concurrent_routes("PostgreSQL", store_url, schema, sim, texts)
            with tempfile.TemporaryDirectory() as tmp:
                sqlite_url = f"sqlite+aiosqlite:///{Path(tmp) / 'store.db'}"
                await _concurrent_routes("SQLite", sqlite_url, schema, sim, texts)
    finally:
        await drop_schema(schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--routes", type=int, default=500)
    parser.add_argument("--tables", type=int, default=40)
    args = parser.parse_args()
    asyncio.run(run(args.routes, args.tables))


if __name__ == "__main__":
    main()
