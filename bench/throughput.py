"""Sustained routes per second on this machine: the real service, the simulator beside it.

A 1,000-table PostgreSQL warehouse; the simulator in its own process at 200 ms per call; the
service as ``tablerouter serve`` (uvloop, httptools) in its own process(es) with the shortlist
on (``TABLEROUTER_SHORTLIST_SIZE``, default here 100). Routes arrive open-loop at each rate for
``--seconds``, every question distinct (no route-cache hits). Prints per service layout and
rate: routes/s achieved, p50 and p99 latency, and p99 ÷ the simulator's latency (goal: 25
routes/s at p99 <= 3 x 200 ms); and the CPU each process spent per route (the service's
workers, the simulator, this load generator), the simulator's most calls in flight, and the
load average, since the machine's 2 cores are shared by all three and by whatever else runs.

Run: uv run python -m bench.throughput [--rates 15,25,35] [--workers 1,2] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from app.simulator.launcher import free_port, simulator_process
from bench.common import PG_URL, build_warehouse, drop_schema, listener_cpu_seconds, tree_cpu_seconds

SCHEMA = "bench_throughput"


@contextmanager
def service_process(sim: str, workers: int, shortlist: int, concurrency: int) -> Iterator[tuple[str, int]]:
    """``tablerouter serve`` over the bench warehouse; yields its base URL and pid once it is ready."""
    port = free_port()
    env = {
        **os.environ,
        "TABLEROUTER_SOURCES": f'{{"wh": {{"url": "{PG_URL}", "schemas": ["{SCHEMA}"]}}}}',
        "TABLEROUTER_LLM_MODEL": "openai/tablerouter-sim",
        "TABLEROUTER_LLM_API_BASE": f"{sim}/v1",
        "TABLEROUTER_LLM_MAX_CONCURRENCY": str(concurrency),
        "TABLEROUTER_SHORTLIST_SIZE": str(shortlist),
    }
    cmd = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", str(workers)]
    cmd += ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        # Importing DSPy takes seconds of CPU per worker; on a busy machine, much longer.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("the service did not become ready")
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _run_rate(
    url: str, questions: list[str], rate: float, seconds: float
) -> tuple[float, list[float], int]:
    """Open-loop arrivals at ``rate``/s: achieved routes/s, latencies (s), failures."""
    latencies: list[float] = []
    failures = 0
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def one(question: str) -> None:
            nonlocal failures
            started = time.perf_counter()
            try:
                response = await client.post("/route", json={"question": question})
            except httpx.HTTPError:  # a timeout past 30 s counts as a failure, not a crash
                failures += 1
                return
            if response.status_code == 200:
                latencies.append(time.perf_counter() - started)
            else:
                failures += 1

        count = int(rate * seconds)
        begun = time.perf_counter()
        tasks = []
        for i in range(count):
            delay = begun + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(questions[i % len(questions)])))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - begun
    return len(latencies) / wall, latencies, failures


@dataclass(frozen=True, slots=True)
class CPU:
    """CPU seconds used so far by the service (all workers), the simulator and this process."""

    service: float
    simulator: float
    load_generator: float

    @classmethod
    def now(cls, service_pid: int, sim: str) -> CPU:
        return cls(
            tree_cpu_seconds(service_pid),
            listener_cpu_seconds(urlsplit(sim).port or 0),
            time.process_time(),
        )

    def per_route_ms(self, before: CPU, routes: int) -> str:
        n = max(1, routes)
        spent = [
            ("service", self.service - before.service),
            ("simulator", self.simulator - before.simulator),
            ("load generator", self.load_generator - before.load_generator),
        ]
        return ", ".join(f"{name} {seconds / n * 1000:.1f}" for name, seconds in spent)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=200)
    parser.add_argument("--rates", default="15,25,35")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--shortlist", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    layouts = [int(w) for w in args.workers.split(",")]
    gold = await build_warehouse(args.tables, SCHEMA)
    # Distinct questions: the route cache must not answer any of them.
    questions = [f"{q['question']} (case {i})" for i, q in enumerate(gold * 200)]
    offset = 0
    rows = []
    try:
        with simulator_process("--latency-ms", str(args.latency_ms)) as sim:
            for workers in layouts:
                with service_process(sim, workers, args.shortlist, args.concurrency) as (url, pid):
                    await _run_rate(url, questions[-50:], 5, 4)  # warm up every worker
                    for rate in rates:
                        batch = questions[offset:]
                        async with httpx.AsyncClient(base_url=sim) as simc:
                            await simc.post("/stats/reset")
                        before = CPU.now(pid, sim)
                        achieved, latencies, failures = await _run_rate(url, batch, rate, args.seconds)
                        cpu = CPU.now(pid, sim).per_route_ms(before, len(latencies) + failures)
                        async with httpx.AsyncClient(base_url=sim) as simc:
                            in_flight = (await simc.get("/stats")).json()["max_in_flight"]
                        offset += int(rate * args.seconds)
                        load = os.getloadavg()[0]
                        rows.append((workers, rate, achieved, latencies, failures, cpu, in_flight, load))
    finally:
        await drop_schema(SCHEMA)
    print(
        f"{args.tables}-table warehouse, shortlist {args.shortlist}, simulator {args.latency_ms:.0f} ms, "
        f"{args.seconds:.0f} s per rate, distinct questions"
    )
    budget = 3 * args.latency_ms / 1000
    for workers, rate, achieved, latencies, failures, cpu, in_flight, load in rows:
        p50, p99 = _percentile(latencies, 0.5), _percentile(latencies, 0.99)
        print(
            f"  workers {workers}  offered {rate:5.1f}/s  achieved {achieved:5.1f} routes/s  "
            f"p50 {p50 * 1000:5.0f} ms  p99 {p99 * 1000:5.0f} ms  failures {failures}  "
            f"RATIO p99 / latency = {p99 / (args.latency_ms / 1000):.2f}  "
            f"{'OK' if p99 <= budget and failures == 0 else 'over'} (goal 25/s at <= 3.0)"
        )
        print(
            f"      CPU ms per route: {cpu}; simulator max in flight {in_flight} "
            f"(limit {args.concurrency} per worker); load average {load:.1f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
