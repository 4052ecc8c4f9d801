"""The bundled demo warehouse: a retail / e-commerce schema of about sixty SQLite tables."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import tempfile
from importlib import resources
from pathlib import Path

__all__ = ["demo_schema_sql", "ensure_demo_warehouse"]

_SCHEMA_RESOURCE = "demo_schema.sql"


def demo_schema_sql() -> str:
    """The DDL (and a few reference rows) of the demo warehouse, read from the package data."""
    return resources.files(__package__).joinpath(_SCHEMA_RESOURCE).read_text(encoding="utf-8")


async def ensure_demo_warehouse(path: str | Path) -> str:
    """Create the demo warehouse at ``path`` unless it exists; return its async SQLAlchemy URL.

    The file is built under a temporary name in the same directory and renamed into place,
    so a crash never leaves half a warehouse and concurrent callers at worst build it twice.
    """
    target = await asyncio.to_thread(_build_if_missing, Path(path))
    return f"sqlite+aiosqlite:///{target}"


def _build_if_missing(path: Path) -> Path:
    target = path.expanduser().resolve()
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp_name)
        try:
            conn.executescript(demo_schema_sql())
            conn.commit()
        finally:
            conn.close()
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return target
