"""Slowloris against ``tablerouter serve``: are the slow connections closed in time, and do other
clients keep their latency?

``tablerouter serve`` runs as a process of its own (the lexical judge on the demo, a fresh
SQLite store, auth off) with ``TABLEROUTER_HEADER_TIMEOUT_S``. Rounds alternate, so a machine
busy with other work slows both alike:

- baseline: ``--clients`` keep-alive clients send ``POST /route`` one after another;
- attack: the same clients, while ``--attackers`` slowloris connections are held open: each
  sends half a request head and then one more header line every ``--trickle`` seconds, and
  connects again as soon as the server closes it (so 500 stay open, as in the real attack).

It prints the clients' p99 latency in each condition and their ratio, and how long the server
let each slowloris connection live, against the head timeout. The LM is not involved: what is
measured is the server's handling of connections, not routing.

    uv run python bench/slowloris.py --attackers 500 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time

import httpx

from app.harness.stores import closed_port
from bench.common import SERVE_CLEARED, is_ready

READY_TIMEOUT_S = 180.0
HALF_HEAD = b"POST /route HTTP/1.1\r\nHost: tablerouter\r\nContent-Type: application/json\r\n"
QUESTION = {"question": "Which customers placed the most orders?"}


def start_service(tmp: str, port: int, header_timeout_s: float) -> subprocess.Popen[bytes]:
    """``tablerouter serve`` on ``port``, ready."""
    env = {k: v for k, v in os.environ.items() if k not in SERVE_CLEARED}
    env |= {
        "TABLEROUTER_AUTH": "false",
        "TABLEROUTER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/store.db",
        "TABLEROUTER_DEMO_WAREHOUSE_PATH": f"{tmp}/demo.db",
        "TABLEROUTER_HEADER_TIMEOUT_S": str(header_timeout_s),
        "TABLEROUTER_REFRESH_INTERVAL_S": "0",
    }
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.monotonic()
    while not is_ready(f"http://127.0.0.1:{port}/readyz"):
        if process.poll() is not None or time.monotonic() - started > READY_TIMEOUT_S:
            process.kill()
            raise RuntimeError("tablerouter serve did not become ready")
        time.sleep(0.1)
    return process


async def _client(url: str, requests: int, latencies: list[float]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for _ in range(requests):
            started = time.perf_counter()
            response = await client.post("/route", json=QUESTION)
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()


async def clients_round(url: str, clients: int, requests: int) -> list[float]:
    """Latencies (s) of ``clients`` keep-alive clients sending ``requests`` routes each."""
    latencies: list[float] = []
    await asyncio.gather(*(_client(url, requests, latencies) for _ in range(clients)))
    return latencies


async def _slowloris(port: int, trickle_s: float, lifetimes: list[float], stop: asyncio.Event) -> None:
    """One attacker: half a head, a header line now and then; connect again once closed."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(trickle_s)
            continue
        opened = time.monotonic()
        writer.write(HALF_HEAD)
        try:
            while not stop.is_set():
                try:
                    async with asyncio.timeout(trickle_s):
                        if not await reader.read(4096):
                            break  # closed by the server
                except TimeoutError:
                    writer.write(b"X-Slow: 1\r\n")
                    await writer.drain()
                else:
                    break  # the server answered (408): it closes next
        except OSError:
            pass
        if not stop.is_set():
            lifetimes.append(time.monotonic() - opened)
        writer.close()


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def run(args: argparse.Namespace, port: int) -> None:
    url = f"http://127.0.0.1:{port}"
    await clients_round(url, args.clients, 5)  # warm-up
    baseline: list[float] = []
    attacked: list[float] = []
    lifetimes: list[float] = []
    for round_ in range(args.rounds):
        baseline += await clients_round(url, args.clients, args.requests)
        stop = asyncio.Event()
        attack = [
            asyncio.create_task(_slowloris(port, args.trickle, lifetimes, stop))
            for _ in range(args.attackers)
        ]
        await asyncio.sleep(1.0)  # the attack in place before the clients start
        attacked += await clients_round(url, args.clients, args.requests)
        # Let every attacker's connection run into the head timeout at least once.
        await asyncio.sleep(args.header_timeout)
        stop.set()
        await asyncio.gather(*attack)
        print(f"round {round_ + 1}: {len(lifetimes)} slowloris connections closed so far", flush=True)
    within = sum(t <= args.header_timeout + 0.5 for t in lifetimes)
    print(f"\n{args.attackers} slowloris connections at once, head timeout {args.header_timeout:g} s:")
    share = within / max(1, len(lifetimes))
    print(f"  closed by the server: {len(lifetimes)}; within the timeout + 0.5 s: {within} ({share:.1%})")
    print(f"  longest a slowloris connection lived: {max(lifetimes, default=0.0):.2f} s")
    print(f"clients ({args.clients} x {args.requests} routes per round, {args.rounds} rounds each):")
    print(f"  p99 baseline {p99(baseline) * 1000:.1f} ms, under attack {p99(attacked) * 1000:.1f} ms")
    print(f"  ratio under attack / baseline: {p99(attacked) / p99(baseline):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attackers", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=25, help="routes per client per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--header-timeout", type=float, default=5.0)
    parser.add_argument(
        "--trickle", type=float, default=1.0, help="seconds between a slowloris' header lines"
    )
    args = parser.parse_args()
    port = closed_port()
    with tempfile.TemporaryDirectory(prefix="tablerouter-slowloris-") as tmp:
        process = start_service(tmp, port, args.header_timeout)
        try:
            asyncio.run(run(args, port))
        finally:
            process.terminate()
            process.wait(60)


if __name__ == "__main__":
    main()
