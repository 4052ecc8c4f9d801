"""The route-log writer: routes are queued in process and written in batches off the hot path.

A route puts its record on a bounded queue and returns; one background task takes whatever has
queued up (up to a batch) and inserts it in one transaction, so under load the batches grow
instead of the writes queuing one by one. Nothing a route does waits on the store.

When a batch fails the writer asks the store a trivial query:
- the store answers: the batch itself is bad, so its rows are written one by one and only a
  row the store refuses is lost (logged, counted ``failed``); one bad row never takes another
  key's rows with it;
- the store is down: the batch is kept and tried again with exponential backoff (capped,
  jittered) until the store takes it. Meanwhile routes keep queuing; when the queue is full a
  record goes to the spill file (``RouteLogSpill``) instead, and once the store is back the
  spill files are replayed. Only a record that finds both the queue and the spill file full is
  dropped (counted).
Records stay readable (``pending``) until their batch is done, so a route can be read back the
moment it is answered. Shutdown drains the queue while the store answers and spills the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from app.observability.metrics import ROUTE_LOG_RETRIES, ROUTE_LOG_ROWS
from app.store.health import StoreHealth
from app.store.records import RouteRecord
from app.store.route_log import RouteLogRepository
from app.store.route_log_spill import RouteLogSpill

__all__ = ["RouteLogStats", "RouteLogWriter", "WriterTiming"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RouteLogStats:
    """Counters of the route-log writer since start-up."""

    queued: int  # waiting or being written now
    written: int  # rows inserted (replayed ones included)
    failed: int  # rows the store refused one by one
    dropped: int  # records that found the queue and the spill file full
    batches: int
    spilled: int  # records put in the spill file
    replayed: int  # spilled records read back and written
    retries: int  # writes tried again while the store was down


@dataclass(frozen=True, slots=True)
class WriterTiming:
    """The writer's waits: backoff while the store is down, and how long shutdown drains."""

    backoff_first_s: float = 0.2
    backoff_max_s: float = 5.0
    drain_timeout_s: float = 30.0


class RouteLogWriter:
    """Batches route records into the route log in a background task."""

    def __init__(
        self,
        repository: RouteLogRepository,
        health: StoreHealth,
        queue_size: int,
        batch_size: int,
        *,
        spill: RouteLogSpill | None = None,
        timing: WriterTiming = WriterTiming(),
    ) -> None:
        self._repository = repository
        self._health = health
        self._queue: asyncio.Queue[RouteRecord] = asyncio.Queue(queue_size)
        self._batch_size = batch_size
        self._spill = spill
        self._timing = timing
        self._pending: dict[str, RouteRecord] = {}
        self._batch_done = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._written = self._failed = self._dropped = self._batches = 0
        self._spilled = self._replayed = self._retries = 0

    def start(self) -> None:
        """Start the background writer."""
        self._task = asyncio.create_task(self._run(), name="route-log-writer")

    def record(self, record: RouteRecord) -> None:
        """Queue ``record`` for writing (or spill it when the queue is full); never blocks, never raises."""
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self._overflow(record)
            return
        self._pending[record.route_id] = record

    def _overflow(self, record: RouteRecord) -> None:
        if self._spill is not None and self._spill.write(record):
            self._spilled += 1
            ROUTE_LOG_ROWS.labels("spilled").inc()
            return
        self._dropped += 1
        ROUTE_LOG_ROWS.labels("dropped").inc()
        if self._dropped % 1000 == 1:
            log.warning("route log queue and spill file full: %d routes not logged so far", self._dropped)

    def pending(self, route_id: str) -> RouteRecord | None:
        """The record of ``route_id`` if it is queued or being written now."""
        return self._pending.get(route_id)

    async def wait_written(self, route_id: str) -> None:
        """Wait until ``route_id`` is no longer pending (written, or failed)."""
        async with self._batch_done:
            await self._batch_done.wait_for(lambda: route_id not in self._pending)

    def stats(self) -> RouteLogStats:
        return RouteLogStats(
            len(self._pending),
            self._written,
            self._failed,
            self._dropped,
            self._batches,
            self._spilled,
            self._replayed,
            self._retries,
        )

    async def _run(self) -> None:
        await self._health.migrated.wait()  # a store that came up late is migrated first
        await self._replay()  # what earlier processes spilled and did not replay
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                raise  # shutdown: the batch stays pending, and aclose spills it
            except Exception:  # a bug must not stop the writer: the batch is counted lost
                log.exception("route log: %d routes not written", len(batch))
                self._failed += len(batch)
            for record in batch:
                self._pending.pop(record.route_id, None)
                self._queue.task_done()
            async with self._batch_done:
                self._batch_done.notify_all()
            if self._spill is not None and self._spill.waiting():
                await self._replay()

    async def _write(self, batch: Sequence[RouteRecord]) -> None:
        """Write ``batch``: whole, else row by row when the store answers, else again after a backoff."""
        left, delay = list(batch), self._timing.backoff_first_s
        while left:
            try:
                await self._repository.insert_many(left)
            except Exception as exc:  # a bad row or a store that is down: told apart by a probe
                if await self._health.probe():
                    log.warning(
                        "route log: a batch of %d routes was refused (%r): row by row", len(left), exc
                    )
                    left = await self._write_rows(left)
                    continue
                self._retries += 1
                ROUTE_LOG_RETRIES.inc()
                # Full jitter: replicas whose store came back do not all write at the same instant.
                await asyncio.sleep(random.uniform(0, delay))
                delay = min(delay * 2, self._timing.backoff_max_s)
                continue
            self._health.answered()
            self._written += len(left)
            self._batches += 1
            ROUTE_LOG_ROWS.labels("written").inc(len(left))
            return

    async def _write_rows(self, rows: list[RouteRecord]) -> list[RouteRecord]:
        """Write ``rows`` one by one; the rows not tried because the store went away meanwhile."""
        for index, row in enumerate(rows):
            try:
                await self._repository.insert_many([row])
            except Exception as exc:  # this row, or the store again: asked once more
                if not await self._health.probe():
                    return rows[index:]
                self._failed += 1
                ROUTE_LOG_ROWS.labels("failed").inc()
                log.error("route log: route %s refused by the store, not logged: %r", row.route_id, exc)
                continue
            self._written += 1
            self._batches += 1
            ROUTE_LOG_ROWS.labels("written").inc()
        return []

    async def _replay(self) -> None:
        """Write every spill file no live process holds, then remove it."""
        if self._spill is None:
            return
        for path, handle in self._spill.claim():
            try:
                records = await asyncio.to_thread(self._spill.read, handle)
                for start in range(0, len(records), self._batch_size):
                    await self._write(records[start : start + self._batch_size])
            except BaseException:
                handle.close()  # unlocked, the file stays for the next replay
                raise
            self._spill.done(path, handle)
            self._replayed += len(records)
            ROUTE_LOG_ROWS.labels("replayed").inc(len(records))
            log.info("route log: %d spilled routes replayed from %s", len(records), path.name)

    async def aclose(self) -> None:
        """Write what is queued while the store answers (up to the drain timeout), spill the rest, stop."""
        if self._task is None:
            return
        if self._health.up:
            try:
                await asyncio.wait_for(self._queue.join(), self._timing.drain_timeout_s)
            except TimeoutError:
                log.error("route log: %d routes not written at shutdown", len(self._pending))
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._spill_pending()
        log.info("route log writer stopped: %s", asdict(self.stats()))

    def _spill_pending(self) -> None:
        """At shutdown: what the store did not take goes to the spill file for the next process."""
        unwritten = list(self._pending.values())
        self._pending.clear()
        for record in unwritten:
            self._overflow(record)
        if unwritten:
            log.warning("route log: %d routes not written at shutdown, spilled or dropped", len(unwritten))
        if self._spill is not None:
            self._spill.close()
