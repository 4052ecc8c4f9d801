"""One migration of an SQLite store at a time, across processes.

PostgreSQL takes an advisory lock inside migrations/env.py. SQLite's Python driver runs DDL
outside a transaction, so replicas sharing one store file and starting together would each find an
empty version table and create the same tables ("table api_key already exists"). They take an
exclusive lock on a file beside the database instead; the later ones then find head and do nothing.
"""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

__all__ = ["SQLITE_LOCK_WAIT_S", "sqlite_migration_lock"]

log = logging.getLogger(__name__)

# How long a process waits for another one's migration before giving up with an error.
SQLITE_LOCK_WAIT_S = 120.0


@contextmanager
def sqlite_migration_lock(url: str, wait_s: float = SQLITE_LOCK_WAIT_S) -> Iterator[None]:
    """Hold the store's migration lock file (a no-op for other backends and in-memory SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        yield
        return
    lock_path = Path(f"{parsed.database}.migrate-lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        deadline = time.monotonic() + wait_s
        waiting = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waiting:  # a replica that starts slowly here says why, once
                    log.info("another process is migrating this store: waiting for it (%s)", lock_path)
                    waiting = True
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"another process has been migrating this store for over {wait_s:.0f} s "
                        f"(lock file {lock_path})"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
