"""Snapshots that outlive the process: what a store gives back, and what it must offer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from app.catalog.model import Catalog


@dataclass(frozen=True, slots=True)
class StoredCatalog:
    """A stored snapshot and when the warehouse was last seen to match it."""

    catalog: Catalog
    confirmed_at: datetime


class SnapshotStore(Protocol):
    """Where snapshots outlive the process (app.store.snapshots.SnapshotRepository)."""

    async def newest(self, source: str) -> StoredCatalog | None: ...

    async def save(self, catalog: Catalog, at: datetime) -> bool: ...
