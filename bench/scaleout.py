"""Scale-out benchmark: router replicas (real processes) sharing their LM limits through Redis.

Prints, from one run:
- global limit 32 over 3 replicas under 300 concurrent routes: the simulator's max calls in
  flight (goal <= 32), beside the same load without Redis (each replica its own 32);
- with an RPM limit: upstream requests in the busiest 60 s window vs the limit (goal <= +5 %);
- throughput (routes/s) of 3 replicas / 1 replica with the LM limit not binding (goal >= 1.8
  on 2 cores), with the CPU ms per route of the routers, the simulator and the load generator,
  the CPU other processes took meanwhile, and the ratio those costs allow at most on this
  machine's cores (``bench.cpu_bound``), which says what bounds it.

Run: uv run python -m bench.scaleout [--tables 120] [--rpm 1800] [--rpm-seconds 75]
     [--routes 600] [--phases limits,throughput]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import uvloop
from redis import Redis

from app.harness.replicas import Replica, ReplicaForker, running_replicas
from app.simulator.launcher import simulator_process
from bench.common import PG_URL, build_warehouse, drop_schema
from bench.cpu_bound import CpuRun

SCHEMA = "bench_scaleout"
REDIS_URL = os.environ.get("TABLEROUTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _env(sim: str, tables: int, **extra: str) -> dict[str, str]:
    return {
        "TABLEROUTER_SOURCES": json.dumps({"wh": {"url": PG_URL, "schemas": [SCHEMA]}}),
        "TABLEROUTER_LLM_MODEL": "openai/tablerouter-sim",
        "TABLEROUTER_LLM_API_BASE": f"{sim}/v1",
        "TABLEROUTER_LLM_TIMEOUT": "120",
        "TABLEROUTER_CHUNK_TOKENS": "1000",
        "TABLEROUTER_VOTES": "1",
        # The figures are about LM calls under shared limits: no route may come from a cache.
        "TABLEROUTER_ROUTE_CACHE_SIZE": "0",
        "TABLEROUTER_VERDICT_CACHE_SIZE": "0",
        **extra,
    }


FAILED: list[str] = []  # routes that did not answer 200, reported at the end


async def _load(
    replicas: list[Replica], questions: list[str], users: int, until: float | None, n: int
) -> int:
    """``users`` concurrent clients, round-robin over the replicas; ``n`` routes or until ``until``.

    Returns the routes answered 200; the others are recorded in ``FAILED``.
    """
    done = 0
    # aiohttp on uvloop: the load generator shares the cores with the replicas; httpx on
    # asyncio's loop spent 2.8 ms of CPU per route, this 0.6 ms (measured).
    connector = aiohttp.TCPConnector(limit=users + 10)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:

        async def user(k: int) -> None:
            nonlocal done
            i = k
            while (until is None and i < n) or (until is not None and time.monotonic() < until):
                body = {"question": questions[i % len(questions)], "top_k": 5}
                async with client.post(f"{replicas[i % len(replicas)].url}/route", json=body) as response:
                    text = await response.text()
                if response.status == 200:
                    done += 1
                else:
                    FAILED.append(f"{response.status}: {text[:160]}")
                i += users

        await asyncio.gather(*(user(k) for k in range(users)))
    return done


async def _sim(sim: str, path: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=sim) as client:
        result: dict[str, Any] = (await client.request("POST" if "reset" in path else "GET", path)).json()
        return result


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU ticks of the whole machine since boot, from /proc/stat."""
    ticks = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = ticks[3] + ticks[4]
    return sum(ticks) - idle, sum(ticks)


def _pid_of_port(port: int) -> int | None:
    """The pid of the process whose command line ends in ``--port PORT`` (the simulator's)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"lmsim" in args and str(port).encode() in args:
                return int(entry.name)
    return None


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _max_in_flight(
    spawn: ReplicaForker, workdir: Path, env: dict[str, str], sim: str, questions: list[str]
) -> tuple[int, int]:
    with running_replicas(3, env, workdir, spawn) as replicas:
        await _load(replicas, questions, 30, None, 30)  # warm up
        await _sim(sim, "/stats/reset")
        await _load(replicas, questions, 300, None, 300)
        stats = await _sim(sim, "/stats")
    return int(stats["max_in_flight"]), int(stats["calls"])


async def _busiest_minute(
    spawn: ReplicaForker, workdir: Path, env: dict[str, str], sim: str, questions: list[str], seconds: float
) -> tuple[int, float]:
    """Upstream calls in the busiest 60 s window (or scaled to 60 s if the run is shorter)."""
    samples: list[tuple[float, int]] = []
    with running_replicas(3, env, workdir, spawn) as replicas:
        await _sim(sim, "/stats/reset")
        deadline = time.monotonic() + seconds
        load = asyncio.create_task(_load(replicas, questions, 300, deadline, 0))
        while not load.done():
            samples.append((time.monotonic(), int((await _sim(sim, "/stats"))["calls"])))
            await asyncio.sleep(0.25)
        await load
    window = min(60.0, samples[-1][0] - samples[0][0])
    best = 0
    for t0, c0 in samples:
        later = [c for t, c in samples if t <= t0 + window]
        best = max(best, later[-1] - c0)
    return best, window


async def _throughput(
    spawn: ReplicaForker, workdir: Path, env: dict[str, str], n: int, questions: list[str], routes: int
) -> CpuRun:
    sim = env["TABLEROUTER_LLM_API_BASE"].removesuffix("/v1")
    sim_pid = _pid_of_port(int(sim.rsplit(":", 1)[1]))
    with running_replicas(n, env, workdir, spawn) as replicas:
        await _load(replicas, questions, 30, None, 30)  # warm up
        pids = [r.pid for r in replicas]
        router0 = sum(_cpu_seconds(pid) for pid in pids)
        sim0 = _cpu_seconds(sim_pid) if sim_pid is not None else 0.0
        client0 = time.process_time()
        calls0 = int((await _sim(sim, "/stats"))["calls"])
        busy0, total0 = _machine_busy()
        started = time.perf_counter()
        answered = await _load(replicas, questions, 60, None, routes)
        wall = time.perf_counter() - started
        busy1, total1 = _machine_busy()
        calls = int((await _sim(sim, "/stats"))["calls"]) - calls0
        client = time.process_time() - client0
        router = sum(_cpu_seconds(pid) for pid in pids) - router0
        simulator = (_cpu_seconds(sim_pid) if sim_pid is not None else 0.0) - sim0
    cores = os.cpu_count() or 1
    busy = wall * cores * (busy1 - busy0) / max(1.0, total1 - total0)
    return CpuRun(n, answered, calls, wall, router, simulator, client, busy, cores)


async def _limits(
    args: argparse.Namespace,
    spawn: ReplicaForker,
    workdir: Path,
    prefix: str,
    questions: list[str],
    questions_gold: list[dict[str, Any]],
) -> None:
    """Max in flight under a global limit, and the busiest minute under an RPM limit."""
    with simulator_process("--latency-ms", "uniform:100:300", oracle=questions_gold) as sim:
        base = _env(sim, args.tables, TABLEROUTER_LLM_MAX_CONCURRENCY="32", TABLEROUTER_REPLICAS="3")
        shared = {**base, "TABLEROUTER_REDIS_URL": REDIS_URL, "TABLEROUTER_REDIS_KEY_PREFIX": prefix}
        peak, calls = await _max_in_flight(spawn, workdir, shared, sim, questions)
        alone, _ = await _max_in_flight(spawn, workdir, base, sim, questions)
        print(f"300 concurrent routes, 3 replicas, global limit 32: {calls} LM calls")
        print(f"  max in flight at the LM, shared limit in Redis: {peak} (goal <= 32)")
        print(f"  max in flight at the LM, each replica alone:    {alone} (3 x 32 allowed)")
        rated = {**shared, "TABLEROUTER_LLM_RPM_LIMIT": str(args.rpm)}
        rated["TABLEROUTER_REDIS_KEY_PREFIX"] = f"{prefix}-rpm"
        busiest, window = await _busiest_minute(spawn, workdir, rated, sim, questions, args.rpm_seconds)
        per_minute = busiest * 60 / window
        print(f"RPM limit {args.rpm}: busiest {window:.0f} s: {busiest} calls, {per_minute:.0f}/min")
        print(f"  ratio to the limit: {per_minute / args.rpm:.3f} (goal <= 1.05)")


async def _scaling(
    args: argparse.Namespace,
    spawn: ReplicaForker,
    workdir: Path,
    questions: list[str],
    questions_gold: list[dict[str, Any]],
) -> None:
    """Throughput of 3 replicas / 1 replica with the LM limit not binding, and what bounds it."""
    with simulator_process("--latency-ms", "5", oracle=questions_gold) as sim:
        # 128 per replica is above what 5 ms calls keep in flight, and keeps the
        # simulator's listen backlog from overflowing (resets) with three replicas.
        free = _env(sim, args.tables, TABLEROUTER_LLM_MAX_CONCURRENCY="128")
        one = await _throughput(spawn, workdir, free, 1, questions, args.routes)
        three = await _throughput(spawn, workdir, free, 3, questions, args.routes)
    print(f"throughput, LM limit not binding ({args.routes} routes, 60 concurrent, {one.cores} cores):")
    print(f"  {one.report()}")
    print(f"  {three.report()}")
    print(f"  3 replicas / 1 replica: {three.per_second / one.per_second:.2f} measured (goal >= 1.8)")
    print(
        f"  the most these CPU costs per route allow on {one.cores} idle cores: "
        f"{three.ceiling / one.ceiling:.2f}; with the simulator on another machine: "
        f"{three.ceiling_without_simulator / one.ceiling_without_simulator:.2f}"
    )
    print(f"  load average at the end: {os.getloadavg()[0]:.1f}")


async def main(args: argparse.Namespace) -> None:
    questions_gold = await build_warehouse(args.tables, SCHEMA, seed=1)
    questions = [q["question"] for q in questions_gold]
    workdir = Path(tempfile.mkdtemp(prefix="tablerouter-bench-"))
    spawn = ReplicaForker()
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        if "limits" in args.phases:
            await _limits(args, spawn, workdir, prefix, questions, questions_gold)
        if "throughput" in args.phases:
            await _scaling(args, spawn, workdir, questions, questions_gold)
        print(f"routes not answered 200 over the whole run: {len(FAILED)}")
        for failure in FAILED[:3]:
            print(f"  {failure}")
    finally:
        spawn.close()
        with Redis.from_url(REDIS_URL) as redis:
            keys = list(redis.scan_iter(match=f"{prefix}*"))
            if keys:
                redis.delete(*keys)
        await drop_schema(SCHEMA)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tables", type=int, default=120)
    parser.add_argument("--rpm", type=int, default=1800)
    parser.add_argument("--rpm-seconds", type=float, default=75)
    parser.add_argument("--routes", type=int, default=600)
    parser.add_argument("--phases", default="limits,throughput", help="limits, throughput or both")
    # uvloop, as the replicas run: the load generator's CPU is not what is being measured.
    uvloop.run(main(parser.parse_args()))
