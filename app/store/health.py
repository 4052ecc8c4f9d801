"""Whether the service's own store can be used now, as last seen by whatever part used it.

The parts on a request's path (key look-ups) and the route-log writer report each failure and
success here. Once the store is seen down, a background probe asks it a trivial query every
``probe_interval_s`` until it answers, so the parts that degrade (keys served from the cache,
the route log held back) do not each hammer a store that is gone, and learn at once when it is
back. "Usable" also needs the schema: until the start-up migration has run (it is retried in the
background while the store is down at start) the store counts as down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from app.observability.metrics import STORE_UP
from app.store.database import Store

__all__ = ["STORE_ERRORS", "StoreHealth", "StoreState"]

log = logging.getLogger(__name__)

# What a store that is down, restarting or unreachable raises (driver errors come wrapped).
STORE_ERRORS: tuple[type[BaseException], ...] = (SQLAlchemyError, OSError, TimeoutError)


class StoreState(StrEnum):
    """The store as the service sees it."""

    OK = "ok"  # it answers and its schema is migrated
    DEGRADED = "degraded"  # down or not migrated yet: routes are answered, keys served from cache


class StoreHealth:
    """The store's state, kept current by its users and, while it is down, by a probe."""

    def __init__(self, store: Store, probe_interval_s: float = 1.0, probe_timeout_s: float = 2.0) -> None:
        self._store = store
        self._probe_interval_s = probe_interval_s
        self._probe_timeout_s = probe_timeout_s
        self.migrated = asyncio.Event()  # set once the schema is at head (or not ours to migrate)
        self._answering = True
        self.down_since: float | None = None  # monotonic time it was first seen down
        self._watch: asyncio.Task[None] | None = None
        STORE_UP.set(1)

    @property
    def up(self) -> bool:
        """The store answered last time and its schema is in place."""
        return self._answering and self.migrated.is_set()

    @property
    def state(self) -> StoreState:
        return StoreState.OK if self.up else StoreState.DEGRADED

    def failed(self, exc: BaseException) -> None:
        """A use of the store failed with ``exc``: it is down until a probe says otherwise."""
        if self._answering:
            self._answering = False
            self.down_since = time.monotonic()
            STORE_UP.set(0)
            log.warning("the store is unavailable (%r): serving degraded until it answers", exc)
        self._watch_until_up()

    def answered(self) -> None:
        """A use of the store succeeded."""
        if not self._answering:
            down_s = time.monotonic() - (self.down_since or time.monotonic())
            log.warning("the store answers again after %.1f s", down_s)
        self._answering, self.down_since = True, None
        STORE_UP.set(1 if self.migrated.is_set() else 0)

    async def probe(self) -> bool:
        """Ask the store a trivial query now; True when it answers in time (``up`` also needs the schema)."""
        try:
            async with asyncio.timeout(self._probe_timeout_s), self._store.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except Exception as exc:  # any failure means down; a probe must answer, not raise
            self.failed(exc)
            return False
        self.answered()
        return True

    def _watch_until_up(self) -> None:
        if self._watch is None or self._watch.done():
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to watch from
                self._watch = asyncio.get_running_loop().create_task(
                    self._probe_until_up(), name="store-probe"
                )

    async def _probe_until_up(self) -> None:
        while not self._answering:
            await asyncio.sleep(self._probe_interval_s)
            await self.probe()

    async def aclose(self) -> None:
        """Stop the probe."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
