"""Scale-out benchmark: router replicas (real processes) sharing their LM limits through Redis.

Prints, from one run:
- global limit 32 over 3 replicas under 300 concurrent routes: the simulator's max calls in
  flight (goal <= 32), beside the same load without Redis (each replica its own 32);
- with an RPM limit: upstream requests in the busiest 60 s window vs the limit (goal <= +5 %);
- throughput (routes/s) of 3 replicas / 1 replica with the LM limit not binding (goal >= 1.8
  on 2 cores), with the CPU seconds each process used, which says what bounds it.

Run: uv run python -m bench.scaleout [--tables 120] [--rpm 1800] [--rpm-seconds 75]
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

import httpx
from redis import Redis

from bench.common import PG_URL, build_warehouse, drop_schema, simulator_process
from tests.replica_harness import Replica, ReplicaForker, running_replicas

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
    limits = httpx.Limits(max_connections=users + 10, max_keepalive_connections=users + 10)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:

        async def user(k: int) -> None:
            nonlocal done
            i = k
            while (until is None and i < n) or (until is not None and time.monotonic() < until):
                body = {"question": questions[i % len(questions)], "top_k": 5}
                response = await client.post(f"{replicas[i % len(replicas)].url}/route", json=body)
                if response.status_code == 200:
                    done += 1
                else:
                    FAILED.append(f"{response.status_code}: {response.text[:160]}")
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
) -> tuple[float, dict[str, float]]:
    sim_pid = _pid_of_port(int(env["TABLEROUTER_LLM_API_BASE"].rsplit(":", 1)[1].split("/")[0]))
    with running_replicas(n, env, workdir, spawn) as replicas:
        await _load(replicas, questions, 30, None, 30)  # warm up
        pids = {f"replica {i}": r.pid for i, r in enumerate(replicas)}
        if sim_pid is not None:
            pids["simulator"] = sim_pid
        cpu0 = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        client0 = time.process_time()
        busy0, total0 = _machine_busy()
        started = time.perf_counter()
        answered = await _load(replicas, questions, 60, None, routes)
        wall = time.perf_counter() - started
        busy1, total1 = _machine_busy()
        cpu = {name: _cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
        cpu["bench client"] = time.process_time() - client0
    cpu["wall"] = wall
    cpu["machine busy %"] = 100 * (busy1 - busy0) / max(1.0, total1 - total0)
    return answered / wall, cpu


async def main(args: argparse.Namespace) -> None:
    questions_gold = await build_warehouse(args.tables, SCHEMA, seed=1)
    questions = [q["question"] for q in questions_gold]
    workdir = Path(tempfile.mkdtemp(prefix="tablerouter-bench-"))
    spawn = ReplicaForker()
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    try:
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
        with simulator_process("--latency-ms", "5", oracle=questions_gold) as sim:
            # 128 per replica is above what 5 ms calls keep in flight, and keeps the
            # simulator's listen backlog from overflowing (resets) with three replicas.
            free = _env(sim, args.tables, TABLEROUTER_LLM_MAX_CONCURRENCY="128")
            one, cpu1 = await _throughput(spawn, workdir, free, 1, questions, args.routes)
            three, cpu3 = await _throughput(spawn, workdir, free, 3, questions, args.routes)
            print(f"throughput, LM limit not binding ({args.routes} routes, 60 concurrent):")
            print(f"  1 replica {one:.1f} routes/s, 3 replicas {three:.1f} routes/s: ratio {three / one:.2f}")
            print(f"  CPU s, 1 replica:  {_fmt(cpu1)}")
            print(f"  CPU s, 3 replicas: {_fmt(cpu3)}")
            print(f"  cores on this machine: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
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


def _fmt(cpu: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tables", type=int, default=120)
    parser.add_argument("--rpm", type=int, default=1800)
    parser.add_argument("--rpm-seconds", type=float, default=75)
    parser.add_argument("--routes", type=int, default=600)
    asyncio.run(main(parser.parse_args()))
