"""Store outage benchmark: the store stopped for 60 s under 20 routes/s, and a start with it down.

The store is a private PostgreSQL cluster (initdb/pg_ctl in a temporary folder) that this run
stops and starts; the shared servers are never touched. The service runs as ``tablerouter serve``
(a process of its own, with API keys on and the LM simulator over a real socket as its LM), on
the demo warehouse. Prints, from one run:

1. the outage: stored keys (verified before it) send an open-loop load of ``--rate`` routes/s,
   ``--before-s`` with the store up, ``--outage-s`` with it stopped, ``--after-s`` with it back;
   per phase the routes sent, answered 200 and otherwise, and p50/p99 latency side by side
   (ratio to the phase before the outage); then the route-log rows found for the answered
   routes once the store is back (lost = answered - found) and the writer's counters;
2. start-up to ready (``/readyz`` 200, from spawning the process), with the store up and with it
   stopped, side by side; with it stopped, a route answered with the static admin key, and that
   route in the route log once the store is back (migrated then).

The simulator answers in a fixed time, so latency figures show the service's own overhead
through an outage, not a real LM's; they do not show a store that hangs instead of refusing
connections (a stopped server refuses at once).

Run: uv run python -m bench.store_outage [--rate 20] [--outage-s 60] [--keys 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from app.harness.private_pg import PrivatePostgres, can_run_private_postgres, private_postgres
from app.harness.stores import closed_port
from app.simulator.service import SimulatorConfig, running_simulator

ADMIN_KEY = "bench-admin-" + uuid.uuid4().hex
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
READY_TIMEOUT_S = 120.0
QUESTIONS = (
    "total order amount per customer",
    "which products sold best last month",
    "employees and their departments",
    "payments per invoice and their status",
)


@dataclass
class Phase:
    """The routes of one phase of the load."""

    name: str
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)  # route ids of the 200s

    def quantile(self, q: float) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else 0.0
        return statistics.quantiles(self.latencies, n=100)[int(q * 100) - 1]


def _env(store_url: str, sim_url: str, tmp: Path) -> dict[str, str]:
    cleared = (
        "TABLEROUTER_SOURCES",
        "TABLEROUTER_REDIS_URL",
        "TABLEROUTER_EMBEDDING_MODEL",
        "PYTHONDONTWRITEBYTECODE",
    )
    env = {k: v for k, v in os.environ.items() if k not in cleared}
    return env | {
        # Bytecode cached as in the Docker image: the first start compiles it, the later ones read it.
        "PYTHONPYCACHEPREFIX": str(tmp / "pycache"),
        "TABLEROUTER_AUTH": "on",
        "TABLEROUTER_ADMIN_KEY": ADMIN_KEY,
        "TABLEROUTER_DATABASE_URL": store_url,
        "TABLEROUTER_DEMO_WAREHOUSE_PATH": str(tmp / "demo.db"),
        "TABLEROUTER_ROUTE_LOG_SPILL_DIR": str(tmp / "spill"),
        "TABLEROUTER_LLM_MODEL": "openai/tablerouter-sim",
        "TABLEROUTER_LLM_API_BASE": f"{sim_url}/v1",
        "TABLEROUTER_REFRESH_INTERVAL_S": "0",
        # The load is the point, not the per-key limits: those are tested elsewhere.
        "TABLEROUTER_KEY_RATE_LIMIT": "0",
        "TABLEROUTER_KEY_DAILY_TOKENS": "0",
    }


@asynccontextmanager
async def _serving(env: dict[str, str]) -> AsyncIterator[tuple[str, float]]:
    """``tablerouter serve`` in a process of its own; its URL and the seconds until /readyz said 200."""
    port = closed_port()
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--log-level", "warning"]
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    process = await asyncio.to_thread(
        subprocess.Popen, command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        async with httpx.AsyncClient(base_url=url, timeout=2) as client:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"serve exited with {process.returncode}")
                if time.perf_counter() - started > READY_TIMEOUT_S:
                    raise TimeoutError(f"serve not ready in {READY_TIMEOUT_S:.0f} s")
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.02)
        yield url, time.perf_counter() - started
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 60)


async def _route(client: httpx.AsyncClient, phase: Phase, key: str, question: str) -> None:
    started = time.perf_counter()
    try:
        response = await client.post("/route", json={"question": question}, headers=key_header(key))
    except httpx.HTTPError:
        phase.statuses[0] += 1  # no answer at all
        return
    phase.latencies.append(time.perf_counter() - started)
    phase.statuses[response.status_code] += 1
    if response.status_code == 200:
        phase.answered.append(response.json()["route_id"])


def key_header(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def _load(
    client: httpx.AsyncClient, phase: Phase, keys: list[str], rate: float, seconds: float
) -> None:
    """Open loop: one route every 1/rate s for ``seconds``, whatever the answers take."""
    tasks = []
    start = time.perf_counter()
    for n in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
        # A new question each time: the route cache must not answer for the service.
        question = f"{QUESTIONS[n % len(QUESTIONS)]} ({phase.name} {n})"
        tasks.append(asyncio.create_task(_route(client, phase, keys[n % len(keys)], question)))
    await asyncio.gather(*tasks)


async def _logged(store_url: str, route_ids: list[str]) -> int:
    engine = create_async_engine(store_url)
    try:
        async with engine.connect() as conn:
            query = sa.text("SELECT count(*) FROM route_log WHERE route_id = ANY(:ids)")
            return int((await conn.execute(query, {"ids": route_ids})).scalar_one())
    finally:
        await engine.dispose()


async def _until_store_ok(client: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    for _ in range(int(READY_TIMEOUT_S * 10)):
        if (await client.get("/readyz")).json().get("store") == "ok":
            return time.perf_counter() - started
        await asyncio.sleep(0.1)
    raise TimeoutError("the store was not seen ok again")


async def _until_drained(client: httpx.AsyncClient) -> dict[str, Any]:
    """The writer's counters once nothing is queued and the spill is replayed."""
    while True:
        stats: dict[str, Any] = (await client.get("/stats", headers=ADMIN)).json()["route_log"]
        if stats["queued"] == 0 and stats["replayed"] == stats["spilled"]:
            return stats
        await asyncio.sleep(0.2)


async def _outage(pg: PrivatePostgres, env: dict[str, str], args: argparse.Namespace) -> float:
    """Part 1; returns the start-up time with the store up (first start: migrations included)."""
    async with _serving(env) as (url, ready_s), httpx.AsyncClient(base_url=url, timeout=60) as client:
        keys = []
        for k in range(args.keys):
            made = await client.post(
                "/keys", json={"name": f"bench-{k}", "grants": {"demo": ["*"]}}, headers=ADMIN
            )
            keys.append(made.json()["secret"])
        for secret in keys:  # each key verified once before the outage
            await client.post("/route", json={"question": "warm-up"}, headers=key_header(secret))
        phases = [Phase("before"), Phase("outage"), Phase("after")]
        await _load(client, phases[0], keys, args.rate, args.before_s)
        await pg.stop()
        await _load(client, phases[1], keys, args.rate, args.outage_s)
        await pg.start()
        back_s = await _until_store_ok(client)
        await _load(client, phases[2], keys, args.rate, args.after_s)
        stats = await _until_drained(client)
    answered = [r for p in phases for r in p.answered]
    found = await _logged(pg.url(), answered)
    print(f"outage of the store: {args.outage_s:.0f} s at {args.rate:g} routes/s, {args.keys} stored keys")
    base = phases[0]
    for phase in phases:
        sent, ok = sum(phase.statuses.values()), phase.statuses[200]
        other = {s: c for s, c in phase.statuses.items() if s != 200}
        print(
            f"  {phase.name:7s} sent {sent:5d}  200: {ok:5d} ({100 * ok / sent:.1f} %)"
            f"  other: {other or 'none'}  p50 {phase.quantile(0.5) * 1000:6.1f} ms"
            f" ({phase.quantile(0.5) / base.quantile(0.5):.2f}x)  p99 {phase.quantile(0.99) * 1000:6.1f} ms"
            f" ({phase.quantile(0.99) / base.quantile(0.99):.2f}x)"
        )
    print(f"  store seen ok again {back_s:.1f} s after it restarted")
    print(
        f"  route log: {len(answered)} routes answered 200, {found} rows found, {len(answered) - found} lost"
    )
    print(f"  writer counters (GET /stats): {stats}")
    return ready_s


async def _start_down(pg: PrivatePostgres, env: dict[str, str], ready_up_s: float) -> None:
    """Part 2: start-up to ready with the store up and with it stopped."""
    async with _serving(env) as (_, up_s):
        pass
    await pg.stop()
    async with _serving(env) as (url, down_s), httpx.AsyncClient(base_url=url, timeout=60) as client:
        readiness = (await client.get("/readyz")).json()
        routed = await client.post("/route", json={"question": QUESTIONS[0]}, headers=ADMIN)
        await pg.start()
        back_s = await _until_store_ok(client)
        logged = await client.get(f"/routes/{routed.json()['route_id']}", headers=ADMIN)
    print("start-up to /readyz 200 (spawn to first 200):")
    print(f"  store up, first start (empty store, compiling bytecode): {ready_up_s:.2f} s")
    print(f"  store up, migrated:                                     {up_s:.2f} s")
    print(f"  store stopped:                                          {down_s:.2f} s ({down_s / up_s:.2f}x)")
    print(f"  readiness with the store stopped: {readiness}")
    print(f"  a route with the admin key while stopped: {routed.status_code}")
    print(
        f"  store restarted: ok (migrated) after {back_s:.1f} s; that route read back: {logged.status_code}"
    )


async def main(args: argparse.Namespace) -> None:
    if not can_run_private_postgres():
        raise SystemExit("initdb/pg_ctl are not installed: this benchmark needs a private PostgreSQL")
    sim = SimulatorConfig(port=0, latency_ms=args.lm_latency_ms)
    with tempfile.TemporaryDirectory(prefix="tablerouter-outage-") as tmp:
        async with private_postgres() as pg, running_simulator(sim) as sim_url:
            await pg.start()
            env = _env(pg.url(), sim_url, Path(tmp))
            ready_up_s = await _outage(pg, env, args)
            await _start_down(pg, env, ready_up_s)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="routes per second")
    parser.add_argument("--outage-s", type=float, default=60.0)
    parser.add_argument("--before-s", type=float, default=10.0)
    parser.add_argument("--after-s", type=float, default=15.0)
    parser.add_argument("--keys", type=int, default=4, help="stored keys sending the routes")
    parser.add_argument("--lm-latency-ms", type=float, default=50.0, help="the simulator's fixed latency")
    asyncio.run(main(parser.parse_args()))
