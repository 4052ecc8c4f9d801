"""What importing the MCP server at start-up would cost: ``app.main`` alone vs with ``app.mcp.server``.

The service mounts ``/mcp`` without importing the MCP SDK and imports it on the first MCP
request (``app/mcp/mount.py``). This measures what an eager import would add to every start:
fresh interpreters importing ``app.main``, alternating with ones that also import
``app.mcp.server`` (the SDK and the tools), bytecode cached as in the Docker image (one warm-up
each, not counted), medians side by side.

    uv run python bench/mcp_import.py --runs 9
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

IMPORTS = {"app.main": "import app.main", "app.main + app.mcp.server": "import app.main, app.mcp.server"}


def _seconds(code: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tablerouter-pycache-") as pycache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = pycache
        for code in IMPORTS.values():
            _seconds(code, env)  # warm-up: writes the bytecode cache
        times: dict[str, list[float]] = {name: [] for name in IMPORTS}
        for _ in range(args.runs):  # alternating, so a busy machine slows both alike
            for name, code in IMPORTS.items():
                times[name].append(_seconds(code, env))
    base = statistics.median(times["app.main"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<28} median {median * 1000:7.0f} ms  ({median / base:.2f}x)")
    extra = statistics.median(times["app.main + app.mcp.server"]) - base
    print(f"an eager MCP import would add {extra * 1000:.0f} ms to every start ({args.runs} runs each)")


if __name__ == "__main__":
    main()
