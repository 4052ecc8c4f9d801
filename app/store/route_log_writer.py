"""The route-log writer: routes are queued in process and written in batches off the hot path.

A route puts its record on a bounded queue and returns; one background task takes whatever has
queued up (up to a batch) and inserts it in one transaction, so under load the batches grow
instead of the writes queuing one by one. A failed batch is retried once after a pause, then
logged and counted as failed: never an error for the route. A full queue drops the record
(counted). Records stay readable (``pending``) until their batch is done, so a route can be read
back the moment it is answered; shutdown drains the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict, dataclass

from app.store.records import RouteRecord
from app.store.route_log import RouteLogRepository

__all__ = ["RouteLogStats", "RouteLogWriter"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RouteLogStats:
    """Counters of the route-log writer since start-up."""

    queued: int  # waiting or being written now
    written: int
    failed: int  # records whose batch failed twice
    dropped: int  # records that found the queue full
    batches: int


class RouteLogWriter:
    """Batches route records into the route log in a background task."""

    def __init__(
        self,
        repository: RouteLogRepository,
        queue_size: int,
        batch_size: int,
        retry_delay_s: float = 1.0,
        drain_timeout_s: float = 30.0,
    ) -> None:
        self._repository = repository
        self._queue: asyncio.Queue[RouteRecord] = asyncio.Queue(queue_size)
        self._batch_size = batch_size
        self._retry_delay_s = retry_delay_s
        self._drain_timeout_s = drain_timeout_s
        self._pending: dict[str, RouteRecord] = {}
        self._batch_done = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._written = self._failed = self._dropped = self._batches = 0

    def start(self) -> None:
        """Start the background writer."""
        self._task = asyncio.create_task(self._run(), name="route-log-writer")

    def record(self, record: RouteRecord) -> None:
        """Queue ``record`` for writing; never blocks, never raises."""
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self._dropped += 1
            if self._dropped % 1000 == 1:
                log.warning("route log queue full: %d routes not logged so far", self._dropped)
            return
        self._pending[record.route_id] = record

    def pending(self, route_id: str) -> RouteRecord | None:
        """The record of ``route_id`` if it is queued or being written now."""
        return self._pending.get(route_id)

    async def wait_written(self, route_id: str) -> None:
        """Wait until ``route_id`` is no longer pending (written, or failed)."""
        async with self._batch_done:
            await self._batch_done.wait_for(lambda: route_id not in self._pending)

    def stats(self) -> RouteLogStats:
        return RouteLogStats(len(self._pending), self._written, self._failed, self._dropped, self._batches)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            finally:
                for record in batch:
                    self._pending.pop(record.route_id, None)
                    self._queue.task_done()
                async with self._batch_done:
                    self._batch_done.notify_all()

    async def _write(self, batch: list[RouteRecord]) -> None:
        for attempt in (1, 2):
            try:
                await self._repository.insert_many(batch)
            except Exception as exc:  # the store is down or refused the batch: log, never raise
                log.warning("route log: writing %d routes failed (attempt %d): %r", len(batch), attempt, exc)
                if attempt == 1:
                    await asyncio.sleep(self._retry_delay_s)
                continue
            self._written += len(batch)
            self._batches += 1
            return
        self._failed += len(batch)
        log.error("route log: %d routes lost (%d so far)", len(batch), self._failed)

    async def aclose(self) -> None:
        """Write what is queued (up to the drain timeout), then stop."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), self._drain_timeout_s)
        except TimeoutError:
            log.error("route log: %d routes not written at shutdown", len(self._pending))
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        log.info("route log writer stopped: %s", asdict(self.stats()))
