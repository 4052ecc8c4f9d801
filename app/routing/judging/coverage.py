"""Which of a route's tables have a verdict yet, so a failed chunk is retried only when needed.

Every table sits in VOTES chunks. When a chunk's call fails, its tables may still get verdicts
from their other chunks; retrying it then buys a second opinion at the price of another LM call,
which under a provider's bad minute is the call the retry budget can least afford. So a failed
chunk first asks ``needed``: it is retried at once if one of its tables can no longer get a
verdict elsewhere (every other chunk holding it failed, or waits like this one); it waits while
some other chunk that could judge such a table is still running; and it gives up its retry when
every one of its tables was judged by another chunk. Two failed chunks that share a table never
wait for each other: a waiting chunk does not count as one that may still answer.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Sequence

from app.routing.preparation.chunks import Chunk

__all__ = ["Coverage"]


class _State(enum.Enum):
    RUNNING = "running"  # may still answer: on its first call, or retrying
    WAITING = "waiting"  # failed; waiting to know whether its retry is needed
    ANSWERED = "answered"
    FAILED = "failed"


class Coverage:
    """The chunks of one route and where each stands; ``needed`` decides a failed chunk's retry.

    Nothing is built until a chunk fails: a route whose calls all answer pays one dict entry
    per chunk.
    """

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        self._chunks = chunks
        self._holders: dict[str, list[int]] | None = None  # table -> the chunks holding it
        self._names: dict[int, tuple[str, ...]] = {}
        self._state: dict[int, _State] = {}  # a chunk not in it is running
        self._changed: asyncio.Event | None = None  # made when a chunk waits

    def _set(self, index: int, state: _State) -> None:
        self._state[index] = state
        if self._changed is not None:
            # Wake every waiter to look again; the next waiter makes a fresh event.
            self._changed.set()
            self._changed = None

    def settle(self, index: int, answered: bool) -> None:
        """The chunk is done: judged, or failed for good."""
        self._set(index, _State.ANSWERED if answered else _State.FAILED)

    def _tables(self) -> dict[str, list[int]]:
        """Which chunks hold each table (built when a chunk first fails)."""
        if self._holders is None:
            self._holders = {}
            for chunk in self._chunks:
                self._names[chunk.index] = chunk.names
                for table in chunk.names:
                    self._holders.setdefault(table, []).append(chunk.index)
        return self._holders

    def _verdict(self, index: int) -> bool | None:
        """True: retry now; False: every table was judged elsewhere; None: wait for others."""
        holders = self._tables()
        wait = False
        for name in self._names[index]:
            others = [self._state.get(i, _State.RUNNING) for i in holders[name] if i != index]
            if _State.ANSWERED in others:
                continue
            if _State.RUNNING in others:
                wait = True
                continue
            return True
        return None if wait else False

    async def needed(self, index: int) -> bool:
        """Whether the failed chunk ``index`` must be asked again for its tables to be judged."""
        self._set(index, _State.WAITING)
        while (verdict := self._verdict(index)) is None:
            if self._changed is None:
                self._changed = asyncio.Event()
            await self._changed.wait()
        # Retrying: it may answer again; not retrying: it is done.
        self._set(index, _State.RUNNING if verdict else _State.FAILED)
        return verdict
