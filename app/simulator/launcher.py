"""The LM simulator in a process of its own, for tests and benchmarks that must not share its CPU."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

__all__ = ["free_port", "simulator_process"]

START_TIMEOUT_S = 60.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def simulator_process(*args: str, oracle: list[dict[str, Any]] | None = None) -> Iterator[str]:
    """Run ``tablerouter lmsim`` in its own process (its CPU is not ours); yields its base URL."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="tablerouter-sim-") as tmp:
        extra = list(args)
        if oracle is not None:
            oracle_file = Path(tmp) / "oracle.jsonl"
            oracle_file.write_text("\n".join(json.dumps(q) for q in oracle))
            extra += ["--oracle", str(oracle_file)]
        cmd = [sys.executable, "-m", "app.cli", "lmsim", "--port", str(port), *extra]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, proc)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the simulator exited with code {proc.returncode} before answering")
        try:
            if httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise TimeoutError(f"the simulator did not answer on {url} within {START_TIMEOUT_S:.0f} s")
