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

from app.routing.chunks import Chunk

__all__ = ["Coverage"]


class _State(enum.Enum):
    RUNNING = "running"  # may still answer: on its first call, or retrying
    WAITING = "waiting"  # failed; waiting to know whether its retry is needed
    ANSWERED = "answered"
    FAILED = "failed"


class Coverage:
    """The chunks of one route and where each stands; ``needed`` decides a failed chunk's retry."""

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        self._names = {c.index: c.names for c in chunks}
        self._holders: dict[str, list[int]] = {}
        for chunk in chunks:
            for name in chunk.names:
                self._holders.setdefault(name, []).append(chunk.index)
        self._state = dict.fromkeys(self._names, _State.RUNNING)
        self._changed = asyncio.Event()

    def _set(self, index: int, state: _State) -> None:
        self._state[index] = state
        # Wake every waiter to look again, and give later waiters a fresh event.
        self._changed.set()
        self._changed = asyncio.Event()

    def settle(self, index: int, answered: bool) -> None:
        """The chunk is done: judged, or failed for good."""
        self._set(index, _State.ANSWERED if answered else _State.FAILED)

    def _verdict(self, index: int) -> bool | None:
        """True: retry now; False: every table was judged elsewhere; None: wait for others."""
        wait = False
        for name in self._names[index]:
            others = [self._state[i] for i in self._holders[name] if i != index]
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
            await self._changed.wait()
        # Retrying: it may answer again; not retrying: it is done.
        self._set(index, _State.RUNNING if verdict else _State.FAILED)
        return verdict
