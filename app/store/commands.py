"""The store's subcommands: ``tablerouter migrate`` and ``tablerouter feedback export``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from pathlib import Path

from app.settings import get_settings
from app.store import migrate
from app.store.database import Store
from app.store.feedback import FeedbackRepository, write_dataset

__all__ = ["export_feedback", "run_migrate"]


def run_migrate(args: argparse.Namespace) -> int:
    """Migrate the store at TABLEROUTER_DATABASE_URL."""
    url = get_settings().database_url.get_secret_value()
    if args.downgrade:
        migrate.downgrade(url, args.revision)
    else:
        migrate.upgrade(url, args.revision)
    print(f"store migrated to {args.revision}", file=sys.stderr)
    return 0


async def _export(out_path: Path | None, source: str | None, since: datetime | None) -> int:
    store = Store(get_settings().database_url.get_secret_value())
    try:
        repository = FeedbackRepository(store)
        if out_path is None:
            return await write_dataset(repository, sys.stdout, source, since)
        with out_path.open("w", encoding="utf-8") as out:
            return await write_dataset(repository, out, source, since)
    finally:
        await store.aclose()


def export_feedback(args: argparse.Namespace) -> int:
    """Write the feedback dataset."""
    if args.since is not None and args.since.tzinfo is None:
        print("--since needs a time zone, e.g. 2025-01-31T00:00:00+00:00", file=sys.stderr)
        return 2
    lines = asyncio.run(_export(args.out, args.source, args.since))
    print(f"{lines} routes with feedback exported", file=sys.stderr)
    return 0
