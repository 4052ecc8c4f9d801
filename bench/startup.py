"""Start-up to ready: ``tablerouter serve`` on the demo (lexical judge) until ``/readyz`` says 200.

Each run is a new deployment's first start: a fresh SQLite store and a fresh demo warehouse in a
scratch directory, no LM configured; ``--llm MODEL`` configures one (an OpenAI-compatible server
at a closed port: a start-up makes no LM call, but builds the judge and reads the model's
prices). The time is from spawning the process to the first 200 from ``/readyz``: interpreter
start, imports, migrations, introspection, preparation.

Bytecode is cached as in the Docker image (which compiles it at build): in a scratch
``PYTHONPYCACHEPREFIX`` even where the environment sets ``PYTHONDONTWRITEBYTECODE``, after one
warm-up start per checkout that is not counted. ``--no-bytecode`` measures without a cache: every
start then compiles every module it imports (seconds).

To compare with another checkout (say the commit before a change, as a ``git worktree`` in
/tmp), name it with ``--checkout``: runs alternate between the checkouts, so a machine busy with
other work slows them alike. Each checkout runs ``python -m app.cli`` from its own directory with
this interpreter (its dependencies must be the same).

    uv run python bench/startup.py --runs 7 --checkout . --checkout /tmp/tablerouter-before
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app.harness.stores import closed_port
from bench.common import SERVE_CLEARED, is_ready

READY_TIMEOUT_S = 120.0


def time_to_ready(checkout: Path, pycache: Path | None, llm: str | None = None) -> float:
    """Seconds from spawning ``serve`` in ``checkout`` to its first ``/readyz`` 200."""
    with tempfile.TemporaryDirectory(prefix="tablerouter-startup-") as tmp:
        env = {k: v for k, v in os.environ.items() if k not in SERVE_CLEARED}
        if pycache is not None:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(pycache)
        env |= {
            "TABLEROUTER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/store.db",
            "TABLEROUTER_DEMO_WAREHOUSE_PATH": f"{tmp}/demo.db",
            "TABLEROUTER_REFRESH_INTERVAL_S": "0",
        }
        if llm is not None:
            env |= {
                "TABLEROUTER_LLM_MODEL": llm,
                "TABLEROUTER_LLM_API_BASE": f"http://127.0.0.1:{closed_port()}/v1",
            }
        port = closed_port()
        command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--log-level", "warning"]
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=checkout, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            while not is_ready(f"http://127.0.0.1:{port}/readyz"):
                if process.poll() is not None:
                    raise RuntimeError(f"serve in {checkout} exited with {process.returncode}")
                if time.perf_counter() - started > READY_TIMEOUT_S:
                    raise TimeoutError(f"serve in {checkout} not ready in {READY_TIMEOUT_S:.0f} s")
                time.sleep(0.02)
            return time.perf_counter() - started
        finally:
            process.terminate()
            process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--checkout", type=Path, action="append", help="a source checkout (default: .)")
    parser.add_argument("--no-bytecode", action="store_true", help="no bytecode cache: compile every start")
    parser.add_argument("--llm", metavar="MODEL", help="configure this LM (e.g. openai/gpt-4o-mini)")
    args = parser.parse_args()
    checkouts: list[Path] = [c.resolve() for c in (args.checkout or [Path()])]
    times: dict[Path, list[float]] = {c: [] for c in checkouts}
    with tempfile.TemporaryDirectory(prefix="tablerouter-pycache-") as cache:
        pycache = None if args.no_bytecode else Path(cache)
        if pycache is not None:
            for checkout in checkouts:
                took = time_to_ready(checkout, pycache, args.llm)
                print(f"warm-up (compiling): {checkout}: {took:.2f} s", flush=True)
        _measure(checkouts, args.runs, pycache, times, args.llm)
    label = ("no bytecode cache" if args.no_bytecode else "bytecode cached") + (
        f", LM {args.llm}" if args.llm else ""
    )
    print(f"\nstart-up to /readyz 200, {args.runs} runs each, {label} (median, min-max):")
    for checkout, seconds in times.items():
        print(f"  {checkout}: {statistics.median(seconds):.2f} s ({min(seconds):.2f}-{max(seconds):.2f})")


def _measure(
    checkouts: list[Path], runs: int, pycache: Path | None, times: dict[Path, list[float]], llm: str | None
) -> None:
    for run in range(runs):
        for checkout in checkouts:
            took = time_to_ready(checkout, pycache, llm)
            times[checkout].append(took)
            print(f"run {run + 1}: {checkout}: {took:.2f} s", flush=True)


if __name__ == "__main__":
    main()
