"""Router replicas as real processes: ``tablerouter serve`` on free loopback ports.

Used by the scale-out tests and ``bench.scaleout``. Each replica gets its settings from the
environment, exactly as in a container, and runs in a scratch directory so no ``.env`` of the
developer leaks in.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from app.simulator.launcher import free_port

READY_TIMEOUT = 90.0


@dataclass
class Replica:
    """One router process (a child of ours, or of a ``ReplicaForker``)."""

    port: int
    pid: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> None:
        """SIGKILL: no shutdown, no lease released, as when a machine dies."""
        self._signal_and_wait(signal.SIGKILL, 10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if not self._signal_and_wait(signal.SIGTERM, 15):
            self.kill()

    def _signal_and_wait(self, sig: signal.Signals, timeout: float) -> bool:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True


class SpawnReplica(Protocol):
    def __call__(self, env: Mapping[str, str], workdir: Path) -> Replica: ...


def _replica_files(workdir: Path, env: Mapping[str, str]) -> tuple[int, Path, dict[str, str]]:
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    full_env = dict(env)
    full_env.setdefault("TABLEROUTER_DATABASE_URL", f"sqlite+aiosqlite:///{workdir}/store-{port}.db")
    return port, workdir / f"replica-{port}.log", full_env


def spawn_replica(env: Mapping[str, str], workdir: Path) -> Replica:
    """Start ``tablerouter serve`` with ``env`` added to this environment; does not wait."""
    port, log, extra = _replica_files(workdir, env)
    cmd = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--log-level", "warning"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env={**os.environ, **extra}, cwd=workdir, stdout=out, stderr=subprocess.STDOUT
        )
    return Replica(port, proc.pid, log, proc)


class ReplicaForker:
    """Forks replicas from a parent that imported the service once (``app.harness.replica_forker``).

    A fresh interpreter spends seconds importing DSPy and LiteLLM; forking from a parent that
    did it already starts a replica in well under a second. Each child runs
    ``tablerouter serve`` exactly as the console script does.
    """

    def __init__(self) -> None:
        cmd = [sys.executable, "-m", "app.harness.replica_forker"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def __call__(self, env: Mapping[str, str], workdir: Path) -> Replica:
        port, log, extra = _replica_files(workdir, env)
        order = {"port": port, "env": extra, "cwd": str(workdir), "log": str(log)}
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(order).encode() + b"\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError("the replica forker died")
        return Replica(port, int(answer), log)

    def close(self) -> None:
        """End the forker (its children are stopped by their own fixtures)."""
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        self.proc.wait(timeout=10)


def wait_ready(replicas: list[Replica], timeout: float = READY_TIMEOUT) -> None:
    """Wait until every replica answers ``/readyz``; raise with its log if one dies or stalls."""
    deadline = time.monotonic() + timeout
    pending = list(replicas)
    while pending:
        replica = pending[0]
        if not replica.alive():
            raise RuntimeError(f"replica on {replica.port} exited:\n{replica.log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{replica.url}/readyz", timeout=2).status_code == 200:
                pending.pop(0)
                continue
        if time.monotonic() > deadline:
            raise RuntimeError(f"replica on {replica.port} not ready:\n{replica.log.read_text()[-3000:]}")
        time.sleep(0.1)


@contextlib.contextmanager
def running_replicas(
    n: int, env: Mapping[str, str], workdir: Path, spawn: SpawnReplica = spawn_replica
) -> Iterator[list[Replica]]:
    """``n`` replicas started together and ready; all stopped at the end."""
    replicas = [spawn(env, workdir) for _ in range(n)]
    try:
        wait_ready(replicas)
        yield replicas
    finally:
        for replica in replicas:
            replica.stop()


@dataclass
class RedisServer:
    """A private redis-server on a free port, to stop and start without touching the shared one."""

    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        cmd += ["--appendonly", "no", "--dir", str(self.workdir)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on {self.port}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
