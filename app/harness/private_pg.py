"""A PostgreSQL server of one's own: initdb into a temporary folder, started and stopped at will.

For outages and authentication: the shared server on 5432 trusts every local connection and
must never be stopped, so a warehouse or store that is down, then comes up, or that checks
passwords, is this one (tests through tests/fixtures/private_pg.py, benchmarks directly). It
listens on 127.0.0.1 at a port chosen before it first starts (a source can point at it while
nothing listens there yet) and asks for a password (scram-sha-256).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from app.harness.stores import closed_port

# A throwaway cluster's password: it listens on loopback only and lives as long as one run.
PASSWORD = "pw-Private-7c1e"  # noqa: S105
# PostgreSQL refuses to run as root; the packages' postgres account runs it then.
_AS_POSTGRES = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


async def _run(*argv: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *_AS_POSTGRES, *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {err.decode(errors='replace')}")


@dataclass
class PrivatePostgres:
    """An initialised cluster at ``port``; ``start``/``stop`` it, ``url`` to reach a database."""

    folder: Path
    port: int

    def url(self, database: str = "postgres", password: str = PASSWORD) -> str:
        """An asyncpg URL of ``database`` as the superuser with ``password``."""
        return f"postgresql+asyncpg://postgres:{password}@127.0.0.1:{self.port}/{database}"

    async def start(self, server_options: str = "") -> None:
        """Start the server and wait until it takes connections (``server_options``: more ``-c`` flags)."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 {server_options}"
        data, log = str(self.folder / "data"), str(self.folder / "log")
        await _run("pg_ctl", "-D", data, "-o", options, "-l", log, "-w", "start")

    async def stop(self) -> None:
        """Stop the server if it runs (fast: open sessions are ended)."""
        if not (self.folder / "data" / "postmaster.pid").exists():
            return
        await _run("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")


def can_run_private_postgres() -> bool:
    """Whether initdb and pg_ctl are installed."""
    return shutil.which("initdb") is not None and shutil.which("pg_ctl") is not None


@asynccontextmanager
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    """A fresh, stopped cluster on a free port (stopped again and removed afterwards)."""
    folder = Path(tempfile.mkdtemp(prefix="tablerouter-pg-"))
    password_file = folder / "password"
    password_file.write_text(PASSWORD + "\n")
    if _AS_POSTGRES:
        shutil.chown(folder, "postgres")
        shutil.chown(password_file, "postgres")
    server = PrivatePostgres(folder, closed_port())
    try:
        await _run(
            "initdb",
            "-D",
            str(folder / "data"),
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            f"--pwfile={password_file}",
        )
        yield server
    finally:
        await server.stop()
        shutil.rmtree(folder, ignore_errors=True)
