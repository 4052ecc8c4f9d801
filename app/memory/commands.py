"""``tablerouter memory import --source S FILE`` and ``tablerouter memory forget --source S ID``.

Both work on the service's store (``TABLEROUTER_DATABASE_URL``) directly, like ``keys``: an
import is checked against the source's newest stored catalog snapshot, in the dialect of its
configured URL. A running service loads what was imported within ``TABLEROUTER_MEMORY_REFRESH_S``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from app.memory.entries import BadRow, check_rows
from app.settings import get_settings
from app.store.database import Store
from app.store.route_memory import MemoryRepository
from app.store.snapshots import SnapshotRepository

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``memory`` subcommands."""
    actions = parser.add_subparsers(dest="memory_action", required=True)
    imported = actions.add_parser(
        "import", help='remember JSON lines {"question", "sql"}, {"question", "tables"} or {"sql"}'
    )
    imported.add_argument("--source", required=True, help="the source the rows are about")
    imported.add_argument("file", type=Path, help="JSON lines (or one JSON list) of rows")
    forget = actions.add_parser("forget", help="forget one remembered entry by its id")
    forget.add_argument("--source", required=True)
    forget.add_argument("entry_id", type=int)


def _rows(path: Path) -> tuple[list[tuple[int, Any]], list[BadRow]]:
    """Each row with its line (its position, for a JSON list); lines that are not JSON are bad."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        return list(enumerate(json.loads(text), start=1)), []
    rows: list[tuple[int, Any]] = []
    bad: list[BadRow] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            bad.append(BadRow(number, f"not JSON: {exc.msg}"))
    return rows, bad


async def _import(source: str, path: Path) -> int:
    settings = get_settings()
    config = settings.sources.get(source)
    if config is None:
        print(f"memory: no source {source!r} in TABLEROUTER_SOURCES", file=sys.stderr)
        return 2
    rows, unreadable = _rows(path)
    store = Store(settings.database_url.get_secret_value())
    try:
        stored = await SnapshotRepository(store).newest(source)
        if stored is None:
            print(
                f"memory: no catalog snapshot of {source!r} stored yet: start the service first",
                file=sys.stderr,
            )
            return 2
        dialect = make_url(config.url.get_secret_value()).get_backend_name()
        checked = check_rows(rows, stored.catalog, dialect, None)
        repository = MemoryRepository(store)
        imported = await repository.add(source, checked.entries)
        await repository.add_joins(source, checked.joins)
    finally:
        await store.aclose()
    bad = sorted([*unreadable, *checked.bad], key=lambda b: b.line)
    for row in bad:
        print(f"line {row.line}: {row.reason}", file=sys.stderr)
    print(f"{imported} rows remembered, {len(checked.joins)} join conditions read, {len(bad)} bad rows")
    return 1 if bad and not imported else 0


async def _forget(source: str, entry_id: int) -> int:
    store = Store(get_settings().database_url.get_secret_value())
    try:
        found = await MemoryRepository(store).forget(source, entry_id)
    finally:
        await store.aclose()
    if not found:
        print(f"memory: no entry {entry_id} in source {source!r}", file=sys.stderr)
        return 1
    print(f"entry {entry_id} forgotten")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``memory import`` or ``memory forget``."""
    try:
        if args.memory_action == "import":
            return asyncio.run(_import(args.source, args.file))
        return asyncio.run(_forget(args.source, args.entry_id))
    except (OSError, ValueError) as exc:
        print(f"memory: {exc}", file=sys.stderr)
        return 2
